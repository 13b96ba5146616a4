"""Ending an ``imgrec`` process without tearing the interpreter down.

Once a command is done, Python's own shutdown destroys every module object: with torch,
torchvision, ONNX Runtime and kserve imported that took 3-5 s on a 2-core machine (BENCHMARKS.md,
"Start-up"), after the command's last line, for nothing. :func:`exit_now` does the parts of
the shutdown that matter and then ends the process at once::

    raise SystemExit(main())        # the normal way: work done, then seconds of teardown
    exit_now(main())                # the same exit code, output and exit handlers, no teardown

What still runs, in the interpreter's own order: the wait for non-daemon threads and the
``concurrent.futures`` executors' exit hooks (``threading._shutdown``: a background writer's
queued records are written), the ``atexit`` handlers (logging's flush, temporary folders,
multiprocessing), and a flush of stdout and stderr.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from typing import NoReturn


def exit_code(exc: SystemExit) -> int:
    """The status Python would exit with for ``exc`` (a message goes to stderr, status 1)."""
    if exc.code is None or isinstance(exc.code, int):
        return exc.code or 0
    print(exc.code, file=sys.stderr)
    return 1


def exit_now(code: int, *, join_threads: bool = True) -> NoReturn:
    """Exit with ``code`` after the threads, exit handlers and output are done (see above).
    ``join_threads=False`` skips the wait for threads (``make run``, which has stopped its own
    and would otherwise wait on library threads it does not own)."""
    shutdown = getattr(threading, "_shutdown", None)  # what Py_FinalizeEx calls first
    main = threading.current_thread() is threading.main_thread()
    if join_threads and shutdown is not None and main:
        shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe (`imgrec ... | head`)
            stream.flush()
    os._exit(code)
