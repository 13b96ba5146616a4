"""Model serving for imgrec: the KServe predictor (V1 + V2), a TorchServe handler, exports.

* :func:`serving.server.serve` — run the KServe predictor (``imgrec serve``);
* :mod:`serving.export` — ONNX / ``.mar`` / safetensors exports (``imgrec export``);
* :mod:`serving.torchserve` — build archives and start a real TorchServe with token auth.
"""
