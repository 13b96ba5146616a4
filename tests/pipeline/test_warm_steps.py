"""Warm step start-ups (imgrec.mlops.warm_steps): a step forked from the zygote behaves as a
fresh ``python -m MODULE`` -- its argv, environment, working folder, stdin/stdout/stderr and
exit code are the client's. (Every local pipeline run in the suite runs its steps this way.)"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from imgrec.mlops.warm_steps import warm_steps

PROBE = """
import os, sys
print("argv", sys.argv[1:], "env", os.environ.get("PROBE"), "cwd", os.getcwd())
print("stdin", sys.stdin.readline().strip())
print("to stderr", file=sys.stderr)
if sys.argv[1] == "crash":
    raise ValueError("boom")
sys.exit(int(sys.argv[1]))
"""


def test_a_forked_step_is_the_clients_process(tmp_path: Path) -> None:
    (tmp_path / "warm_probe.py").write_text(PROBE)
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    with warm_steps(env, preload=("json",)) as python:
        runs = [
            subprocess.run(
                f"PROBE=p{code} {python} -m warm_probe {code}",
                shell=True,
                cwd=work,
                input="hello\n",
                capture_output=True,
                text=True,
                timeout=60,
            )
            for code in ("0", "3", "crash")
        ]
    assert [r.returncode for r in runs] == [0, 3, 1]
    assert runs[1].stdout.splitlines() == [
        f"argv ['3'] env p3 cwd {work}", "stdin hello"
    ]  # fmt: skip
    assert runs[0].stderr == "to stderr\n"
    assert "ValueError: boom" in runs[2].stderr


def test_kept_warm_serves_every_run_that_fits(tmp_path: Path) -> None:
    """``make run``'s two pipeline runs fork from one zygote; a run whose environment would
    have started a different zygote gets its own."""
    from imgrec.mlops.warm_steps import kept_warm, step_env

    (tmp_path / "warm_env_probe.py").write_text(
        'import os\nos.environ.setdefault("PROBE_SET", "1")\n'
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    preload = ("warm_env_probe",)
    with kept_warm(env, preload=preload) as zygote:
        kept = zygote.client()
        with warm_steps(step_env(env), preload=preload) as python:
            assert python == kept
            # a step forked from the kept zygote runs as before
            out = subprocess.run(f"{python} -m warm_env_probe", shell=True, timeout=60)
            assert out.returncode == 0
        # what the preloaded imports set themselves is the same either way
        with warm_steps({**step_env(env), "PROBE_SET": "1"}, preload=preload) as python:
            assert python == kept
        for other in (
            {**step_env(env), "PROBE_SET": "2"},
            {**step_env(env), "IMGREC_PROBE_OTHER": "x"},
        ):
            with warm_steps(other, preload=preload) as python:
                assert python != kept
        with warm_steps(step_env(env), preload=("json",)) as python:
            assert python != kept
    assert not Path(kept).exists()  # ended with the block
