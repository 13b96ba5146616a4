"""Inference: the one stack batch prediction, both servers and ``imgrec export`` share.

* :mod:`imgrec.inference.onnx`: ONNX export (logits + embedding), its cache, the check
  against PyTorch, the CPU session.
* :mod:`imgrec.inference.runners`: batch-prediction runners (``torch``, ``onnx``, ``auto``).
* :mod:`imgrec.inference.export_index`: finds a model's checked export without torch (what
  ``imgrec predict`` and ``imgrec serve`` start from); :mod:`imgrec.inference.ort_session`
  the ONNX Runtime CPU session; :mod:`imgrec.inference.scores` logits -> top-k softmax scores.
* :mod:`imgrec.data.pixels` (not here): the numeric part of preprocessing (uint8 ->
  normalized float) and the JPEG draft size, shared by predict and the servers.
* :mod:`imgrec.quantize`: int8 precision (static QDQ quantization, calibration, refusals).
"""
