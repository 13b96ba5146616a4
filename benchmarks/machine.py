"""What every benchmark prints beside its figures about the machine it ran on.

Standard library only, so a harness that times other processes (``startup.py``) can import it
without loading torch. The scripts' own folder is on ``sys.path`` when one of them runs::

    from machine import cpu_model  # "AMD EPYC", as lscpu's "Model name"
"""

from __future__ import annotations

from pathlib import Path


def cpu_model() -> str:
    """``lscpu``'s "Model name" (from /proc/cpuinfo); ``unknown`` where there is none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"
