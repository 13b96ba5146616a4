"""Monitoring of live traffic and the retraining trigger (``monitoring.trigger``)."""
