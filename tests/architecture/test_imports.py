"""The import rules of docs/design.md ("Layers"), checked on the source.

* No import cycles anywhere in the repository's packages, function-level imports included.
* The core (``imgrec/``) imports nothing from the layers above it (``imgrec.serving``,
  ``.components``, ``.pipelines``, ``.monitoring``, ``.dashboard``: the card's top-level
  folders, installed as sub-packages of imgrec through the links ``imgrec/serving -> ../serving``
  etc., so nothing named ``serving`` lands in users' site-packages), except the application shell:
  the CLI (``imgrec.cli``), ``imgrec.quickstart`` (what ``make run`` starts) and
  ``imgrec.mlops.local_run`` (runs the kfp pipeline of ``pipelines/`` on this machine), and
  ``python -m imgrec``.
* No core module imports the shell.
"""

from __future__ import annotations

import ast

from import_graph import ROOT, UPPER_FOLDERS, cycles, graph, modules

UPPER = tuple(f"imgrec.{folder}" for folder in UPPER_FOLDERS)
SHELL = ("imgrec.cli", "imgrec.__main__", "imgrec.quickstart", "imgrec.mlops.local_run")
# ``imgrec.mlops.run_local`` forwards to the shell's local_run on call (the public name of it)
FACADES = {"imgrec.mlops": {"imgrec.mlops.local_run"}}


def _in(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _imported_names(path) -> set[str]:  # type: ignore[no-untyped-def]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_no_import_cycles() -> None:
    packages = [p for p in ("imgrec", *UPPER_FOLDERS) if (ROOT / p).is_dir()]
    found = cycles(graph(*packages))
    assert found == [], "import cycles (break them; see docs/design.md):\n" + "\n".join(
        " <-> ".join(c) for c in found
    )


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_core_imports_no_layer_above_it() -> None:
    upward = {
        name: sorted(n for n in _imported_names(path) if _in(n, UPPER))
        for name, path in modules("imgrec").items()
        if not _in(name, SHELL)
    }
    assert {k: v for k, v in upward.items() if v} == {}


def test_the_core_does_not_import_the_shell() -> None:
    into_shell = {
        name: sorted(
            n for n in _imported_names(path) if _in(n, SHELL) and n not in FACADES.get(name, ())
        )
        for name, path in modules("imgrec").items()
        if not _in(name, SHELL)
    }
    assert {k: v for k, v in into_shell.items() if v} == {}


def test_the_layers_are_imported_only_as_sub_packages_of_imgrec() -> None:
    """``import serving`` works from a checkout's root but not once installed, and a module
    imported under two names is two modules (two registries, exceptions that don't match)."""
    bare = {
        str(path.relative_to(ROOT)): sorted(
            n for n in _imported_names(path) if _in(n, UPPER_FOLDERS)
        )
        for folder in ("imgrec", *UPPER_FOLDERS, "tests", "benchmarks")
        for path in sorted((ROOT / folder).rglob("*.py"))
    }
    assert {k: v for k, v in bare.items() if v} == {}


def test_the_installed_packages_are_imgrec_alone() -> None:
    import tomllib

    found = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert found["packages"]["find"]["include"] == ["imgrec*"]
    for folder in UPPER_FOLDERS:
        link = ROOT / "imgrec" / folder
        assert link.is_symlink() and link.resolve() == (ROOT / folder).resolve(), link
