"""Every usage error of every command is click's short message and exit code 2, no traceback.

The commands are discovered from the Typer app itself, so a command added later is covered
without anyone listing it here.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer

from imgrec.cli import _load_commands, click_exceptions, main
from imgrec.cli.app import app

ROOT = Path(__file__).resolve().parents[2]


def _walk(command: object, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        if not getattr(sub, "hidden", False):
            yield from _walk(sub, (*path, name))


def _commands() -> list[tuple[tuple[str, ...], object]]:
    _load_commands()
    return list(_walk(typer.main.get_command(app)))


COMMANDS = _commands()
IDS = [" ".join(path) or "imgrec" for path, _ in COMMANDS]


def _is_group(command: object) -> bool:
    return hasattr(command, "commands")


def _arguments(command: object) -> list:
    return [p for p in getattr(command, "params", []) if p.param_type_name == "argument"]


def _run(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def _assert_usage_error(code: int, out: str, err: str, path: tuple[str, ...], what: str) -> None:
    assert code == 2, (code, err)
    assert out == "", out
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert lines[0].startswith(f"Usage: imgrec {' '.join(path)}".rstrip()), err
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1 and what in errors[0], err
    assert len(lines) <= 5, err  # usage, try --help, blank, one error line


def test_the_walk_finds_every_command_and_sub_command() -> None:
    found = set(IDS)
    assert {"imgrec", "train", "predict", "serve", "data", "data sample", "models promote"} <= found
    assert len(found) >= 15, found


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_unknown_option(capsys, path, command) -> None:
    code, out, err = _run(capsys, [*path, "--no-such-option-zz"])
    _assert_usage_error(code, out, err, path, "No such option: --no-such-option-zz")


def _can_miss_something(command: object) -> bool:
    # a command whose arguments are all optional (serve MODEL) has nothing to leave out
    params = getattr(command, "params", [])
    return _is_group(command) or any(p.required for p in params) or not _arguments(command)


MISSING = [(p, c) for p, c in COMMANDS if _can_miss_something(c)]


@pytest.mark.parametrize(
    ("path", "command"), MISSING, ids=[" ".join(p) or "imgrec" for p, _ in MISSING]
)
def test_missing_argument_or_command(capsys, path, command) -> None:
    if _is_group(command):
        code, out, err = _run(capsys, [*path, "no-such-command-zz"])
        _assert_usage_error(code, out, err, path, "No such command 'no-such-command-zz'")
        return
    required = [p for p in getattr(command, "params", []) if p.required]
    if required:  # nothing given: click names the first missing argument or option
        code, out, err = _run(capsys, list(path))
        _assert_usage_error(code, out, err, path, "Missing ")
        assert any(p.name in err or p.opts[0] in err for p in required), err
    else:  # takes no arguments at all: an extra one is refused
        code, out, err = _run(capsys, [*path, "extra-zz"])
        _assert_usage_error(code, out, err, path, "(extra-zz)")


def _takes_a_number(param: object) -> bool:
    kind = getattr(param, "type", None)  # a click ParamType; recent Typers keep the annotation
    if kind is not None:
        return getattr(kind, "name", "") in ("integer", "float")
    return getattr(getattr(param, "type_descriptor", None), "annotation", None) in (int, float)


def _numeric_option(command: object) -> str | None:
    for param in getattr(command, "params", []):
        if param.param_type_name == "option" and _takes_a_number(param):
            return str(param.opts[0])
    return None


NUMERIC = [(p, c) for p, c in COMMANDS if _numeric_option(c)]


@pytest.mark.parametrize(("path", "command"), NUMERIC, ids=[" ".join(p) for p, _ in NUMERIC])
def test_bad_numeric_value(capsys, path, command) -> None:
    option = _numeric_option(command)
    dummies = [f"arg{i}" for i, p in enumerate(_arguments(command)) if p.required]
    code, out, err = _run(capsys, [*path, *dummies, str(option), "not-a-number"])
    _assert_usage_error(code, out, err, path, f"Invalid value for '{option}'")


def test_typo_in_command_suggests_the_command(capsys) -> None:
    code, out, err = _run(capsys, ["trian", "data/"])
    _assert_usage_error(code, out, err, (), "Did you mean 'train'?")


def test_typo_in_option_suggests_the_option(capsys) -> None:
    code, out, err = _run(capsys, ["train", "data/", "--epochz", "3"])
    _assert_usage_error(code, out, err, ("train",), "--epochs")


def test_debug_shows_the_traceback(capsys) -> None:
    with pytest.raises(click_exceptions().UsageError):
        main(["--debug", "trian"])


def test_console_entry_point_version_and_usage_error() -> None:
    run = [sys.executable, "-m", "imgrec"]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    version = subprocess.run([*run, "--version"], capture_output=True, text=True, env=env)
    assert version.returncode == 0 and version.stdout.startswith("imgrec "), version
    typo = subprocess.run([*run, "serve", "--port", "abc"], capture_output=True, text=True, env=env)
    assert typo.returncode == 2 and typo.stdout == "", typo
    assert "Traceback" not in typo.stderr and "Error: Invalid value for '--port'" in typo.stderr
