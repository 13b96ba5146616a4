"""The task tests drive every layer: they reuse the pipeline and serving test helpers."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
for folder in ("pipeline", "serving"):
    if str(HERE.parent / folder) not in sys.path:
        sys.path.insert(0, str(HERE.parent / folder))
