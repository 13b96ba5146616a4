"""Drift monitoring of live traffic: prediction logs, reference profiles, Evidently reports.

Layers: ``logs`` (streamed log windows), ``reference`` (profiles made where the model is
made), ``signals`` (two-sample tests, Holm), ``drift`` (a classifier's signals and verdict),
``evidently_report`` (report.html, snapshot.json), ``report`` (``imgrec monitor report``),
``trigger`` and ``github`` (the retraining trigger, docs/loop.md), ``day`` (the day of
traffic `make run` plays). See docs/monitoring.md.
"""
