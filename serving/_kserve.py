"""Import kserve without letting it read our command line.

``kserve.model_server`` parses ``sys.argv`` with ``argparse.parse_known_args`` when it is first
imported, and argparse accepts abbreviations: an ``imgrec serve --model-name x`` or ``--workers``
flag would silently become a kserve setting. Every serving module imports kserve through here.
"""

from __future__ import annotations

import sys

_argv = sys.argv
sys.argv = _argv[:1]
try:
    import kserve
    from kserve import model_server as kserve_model_server
    from kserve.errors import InvalidInput
    from kserve.protocol.dataplane import DataPlane
    from kserve.protocol.infer_type import InferInput, InferOutput, InferRequest, InferResponse
    from kserve.protocol.rest.server import RESTServer
finally:
    sys.argv = _argv

__all__ = [
    "DataPlane",
    "InferInput",
    "InferOutput",
    "InferRequest",
    "InferResponse",
    "InvalidInput",
    "RESTServer",
    "kserve",
    "kserve_model_server",
]
