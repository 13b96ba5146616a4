"""Warm step start-ups for the local pipeline: each step forked from a process that has
already imported the heavy libraries (kfp's subprocess runner, ``runner="subprocess"``).

kfp's ``SubprocessRunner`` starts every step as a fresh ``python -m kfp.dsl.executor_main``;
each then imports torch, torchvision, Great Expectations, matplotlib, kfp... before doing any
work: seconds per step on an idle machine, 30-70 s per step on the 2-core machine under load
(a profile of the validate step: 68 of its 86 s importing great_expectations). Here a *zygote*
process imports them once per run; each step's command line is unchanged except that
``python3`` names a tiny client, which hands its argv, environment, working folder and its
stdin/stdout/stderr (``SCM_RIGHTS``) to the zygote over a Unix socket. The zygote forks; the
child takes those file descriptors, environment and folder and runs
``kfp.dsl.executor_main`` exactly as the fresh interpreter would (the step is still its own
process: its exit code is the client's, its output goes where kfp reads it)::

    with warm_steps() as python:     # the path kfp puts in place of "python3"
        ...                          # run the pipeline

The zygote imports libraries only (no threads are started before a fork). Steps run one at a
time (the local pipeline is sequential); the zygote ends with the run, or, inside
:func:`kept_warm`, serves every run that fits it (``make run``: the first pipeline and the
retraining import once, beside the photos). ``IMGREC_COLD_STEPS=1`` turns this off (each step a
fresh interpreter, kfp's own behaviour).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imgrec.tasks.classify.train import TRAINING_MODULES

# What every step imports anyway (the components' bodies and kfp's executor).
PRELOAD = (
    "kfp.dsl.executor",  # not executor_main itself: runpy runs that one fresh
    *TRAINING_MODULES,  # torch and the engine: `train` itself loads them after its data scan
    "torchvision",
    "imgrec.mlops.steps",
    "imgrec.tasks.classify.evaluate",
    "imgrec.mlops.validate",
    "great_expectations",
    "matplotlib.pyplot",
    "monitoring.reference",
)
_CLIENT = """\
import json, os, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect({sock!r})
msg = json.dumps({{"argv": sys.argv[1:], "env": dict(os.environ), "cwd": os.getcwd()}}).encode()
socket.send_fds(s, [struct.pack("!I", len(msg)) + msg], [0, 1, 2])
data = b""
while len(data) < 4:
    chunk = s.recv(4 - len(data))
    if not chunk:
        sys.exit(70)
    data += chunk
sys.exit(struct.unpack("!i", data)[0])
"""


def _recv_exact(conn: socket.socket, n: int, first: bytes = b"") -> bytes:
    data = first
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("client went away")
        data += chunk
    return data


def _run_child(request: dict[str, Any], fds: list[int]) -> None:
    """In the forked child: become the step's interpreter, run kfp's executor, exit."""
    import runpy

    code = 0
    try:
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the process's own descriptors
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        os.chdir(str(request["cwd"]))
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in request["env"].items()})
        argv = [str(a) for a in request["argv"]]
        if argv[:1] != ["-m"] or len(argv) < 2:
            raise SystemExit(f"warm step: expected '-m MODULE ...', got {argv[:3]}")
        sys.argv = [argv[1], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, int) and exc.code is not None:
            print(exc.code, file=sys.stderr)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def serve(sock_path: str, preload: tuple[str, ...] = PRELOAD) -> None:
    """The zygote: import ``preload``, then fork one child per request until stdin closes."""
    import importlib
    import selectors

    before = dict(os.environ)
    for name in preload:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(4)
    # what the imports put in the environment themselves (scikit-learn's KMP_* defaults...)
    set_by_imports = {k: v for k, v in os.environ.items() if before.get(k) != v}
    print("ready", json.dumps(set_by_imports), flush=True)
    sel = selectors.DefaultSelector()
    sel.register(server, selectors.EVENT_READ)
    sel.register(sys.stdin, selectors.EVENT_READ)
    while True:
        ready = [key.fileobj for key, _ in sel.select()]
        if sys.stdin in ready and not sys.stdin.readline():
            # the run is over; no child is left. Exit at once: tearing down the interpreter
            # with torch, GX and matplotlib imported took 5 s on the 2-core machine.
            sys.stdout.flush()
            os._exit(0)
        if server not in ready:
            continue
        conn, _ = server.accept()
        with conn:
            head, fds, _, _ = socket.recv_fds(conn, 65536, 3)
            head = _recv_exact(conn, 4, head[:4]) if len(head) < 4 else head
            size = struct.unpack("!I", head[:4])[0]
            request = json.loads(_recv_exact(conn, size, head[4:]))
            pid = os.fork()
            if pid == 0:
                server.close()
                _run_child(request, fds)
            for fd in fds:
                os.close(fd)
            _, status = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(status)
            with contextlib.suppress(OSError):
                conn.sendall(struct.pack("!i", code if code >= 0 else 128 - code))


class Zygote:
    """One zygote process: started at construction (its imports run while the caller goes on),
    waited for on the first :meth:`client`, ended by :meth:`close`."""

    def __init__(self, env: dict[str, str] | None, preload: tuple[str, ...]) -> None:
        self.env, self.preload = env, preload
        self._tmp = tempfile.TemporaryDirectory(prefix="imgrec-warm-")
        sock = os.path.join(self._tmp.name, "zygote.sock")
        self._client = Path(self._tmp.name, "python3")
        self._client.write_text(f"#!{sys.executable} -S\n" + _CLIENT.format(sock=sock))
        self._client.chmod(0o755)
        self._ready = False
        self._set_by_imports: dict[str, str] = {}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "imgrec.mlops.warm_steps", sock, ",".join(preload)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )

    def client(self) -> str:
        """The client's path (kfp's "python3"), once the zygote has imported and listens."""
        if not self._ready:
            assert self._proc.stdout is not None
            word, _, extra = self._proc.stdout.readline().strip().partition(" ")
            if word != "ready":
                raise RuntimeError("the warm-step zygote did not start")
            self._set_by_imports = json.loads(extra or "{}")
            self._ready = True
        return str(self._client)

    def fits(self, env: dict[str, str] | None, preload: tuple[str, ...]) -> bool:
        """Whether a run with ``env`` and ``preload`` may fork from this zygote: a zygote
        started for it would have imported the same modules under the same environment (a
        variable the imports set themselves -- scikit-learn's ``KMP_*`` defaults, which this
        process gains by importing it too -- is the same either way)."""
        if self._proc.poll() is not None or preload != self.preload:
            return False
        self.client()  # the zygote's own additions are known once it is ready
        mine = self.env if self.env is not None else dict(os.environ)
        theirs = env if env is not None else dict(os.environ)
        for key in (mine.keys() | theirs.keys()) - _NOT_READ_AT_START:
            value = theirs.get(key)
            if value != mine.get(key) and not (
                key in self._set_by_imports and value in (None, self._set_by_imports[key])
            ):
                return False
        return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            assert self._proc.stdin is not None
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout:
            self._proc.stdout.close()
        self._tmp.cleanup()


# Set as defaults by scikit-learn, joblib and threadpoolctl when imported (``make run``'s own
# process gains them with Evidently, the zygote does not import them). Only Intel's OpenMP
# runtime reads them, which nothing here loads (torch and scikit-learn bring GNU libgomp), and a
# step sees its client's values anyway.
_NOT_READ_AT_START = frozenset({"KMP_DUPLICATE_LIB_OK", "KMP_INIT_AT_FORK"})
_KEPT: list[Zygote] = []  # the zygote of the innermost kept_warm(), if any


def cold_steps() -> bool:
    """Whether ``IMGREC_COLD_STEPS`` asks for kfp's own behaviour: every step a fresh
    interpreter, no zygote."""
    return os.environ.get("IMGREC_COLD_STEPS", "") not in ("", "0")


def step_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The zygote's environment for a local run: this process's, ``OMP_WAIT_POLICY`` passive
    unless chosen (read once, when the zygote imports torch)."""
    out = {**(os.environ if env is None else env)}
    out.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return out


@contextlib.contextmanager
def kept_warm(
    env: dict[str, str] | None = None, preload: tuple[str, ...] = PRELOAD
) -> Iterator[Zygote]:
    """One zygote for every local run inside (``make run``: the first pipeline and the
    retraining), started now so that its imports run beside what the caller does next::

        with kept_warm():            # the imports start here, in their own process
            predict_photos(...)      # meanwhile
            run_local(...)           # its steps fork from the zygote (waits for it if need be)
            run_local(...)           # and so do this run's: nothing is imported twice

    A run whose environment differs from ``step_env(env)`` starts its own zygote as before.
    """
    zygote = Zygote(step_env(env), preload)
    _KEPT.append(zygote)
    try:
        yield zygote
    finally:
        _KEPT.remove(zygote)
        zygote.close()


@contextlib.contextmanager
def warm_steps(
    env: dict[str, str] | None = None, preload: tuple[str, ...] = PRELOAD
) -> Iterator[str]:
    """A zygote for one run; yields the client's path (kfp's "python3" meanwhile): the one
    :func:`kept_warm` keeps when it fits, else one started for this run.

    ``env``: the zygote's environment (default: this process's). A step sees its own client's
    environment and working folder, but what is read once at start-up comes from the zygote:
    ``sys.path`` (``PYTHONPATH``) and what the preloaded libraries read at import
    (``OMP_WAIT_POLICY``).
    """
    if _KEPT and _KEPT[-1].fits(env, preload):
        yield _KEPT[-1].client()
        return
    zygote = Zygote(env, preload)
    try:
        yield zygote.client()
    finally:
        zygote.close()


if __name__ == "__main__":
    serve(sys.argv[1], tuple(n for n in sys.argv[2].split(",") if n))
