"""``imgrec`` ends without the interpreter's teardown, but after its threads and exit handlers."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import atexit, sys, threading, time
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path
    from imgrec.cli.exit import exit_now

    out = Path(sys.argv[1])

    class Teardown:  # its __del__ runs only when the interpreter tears its modules down
        def __del__(self):
            print("torn down", flush=True)

    keep = Teardown()

    def late(name):
        time.sleep(0.3)
        (out / name).write_text("done")

    threading.Thread(target=late, args=("thread",)).start()  # not a daemon
    ThreadPoolExecutor(1).submit(late, "executor")  # never shut down by its owner
    atexit.register(lambda: print("exit handler ran"))
    print("last line", end="")  # no newline: still in the buffer
    exit_now(int(sys.argv[2]), join_threads=sys.argv[3] == "join")
    """
)


def _run(tmp_path: Path, code: int, join: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    return subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(code), join],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_exit_now_waits_for_threads_and_handlers_but_skips_the_teardown(tmp_path: Path) -> None:
    done = _run(tmp_path, 3, "join")
    assert done.returncode == 3, done.stderr
    assert (tmp_path / "thread").read_text() == "done"
    assert (tmp_path / "executor").read_text() == "done"
    assert done.stdout.startswith("last line")
    assert "exit handler ran" in done.stdout
    assert "torn down" not in done.stdout


def test_exit_now_without_joining_leaves_threads_behind(tmp_path: Path) -> None:
    done = _run(tmp_path, 0, "no")
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "thread").exists()
    assert "exit handler ran" in done.stdout and "torn down" not in done.stdout


def test_the_console_script_and_python_m_exit_through_it() -> None:
    import tomllib

    root = Path(__file__).resolve().parents[2]
    scripts = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["imgrec"] == "imgrec.cli:run"
    done = subprocess.run(
        [sys.executable, "-m", "imgrec", "train", "--no-such-flag"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root,
    )
    assert done.returncode == 2 and "No such option" in done.stderr


def test_a_system_exit_inside_the_command_still_skips_the_teardown(tmp_path: Path) -> None:
    """The server ends on SIGTERM by raising ``SystemExit(0)`` through its finally blocks."""
    script = tmp_path / "raise.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            import imgrec.cli

            class Teardown:
                def __del__(self):
                    print("torn down", flush=True)

            keep = Teardown()
            def main():
                raise SystemExit(sys.argv[1] if sys.argv[1] == "message" else int(sys.argv[1]))
            imgrec.cli.main = main
            imgrec.cli.run()
            """
        )
    )
    for arg, code in (("0", 0), ("4", 4), ("message", 1)):
        done = subprocess.run(
            [sys.executable, str(script), arg], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == code, done.stderr
        assert "torn down" not in done.stdout
        assert ("message" in done.stderr) == (arg == "message")
