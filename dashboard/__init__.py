"""imgrec's dashboard: one web page set over the model store, pipeline runs, the prediction
log, drift reports and the serving endpoint (``imgrec dashboard``, docs/dashboard.md)."""
