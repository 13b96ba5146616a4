"""The Dockerfile keeps up with the code: its COPY sources exist and are in the build
context, and every top-level package the installed code imports is installed in the image.

The image installs the packages pyproject.toml finds (``tool.setuptools.packages.find``)
and the project's dependencies; so every third-party module imported anywhere in that code,
also inside functions, must come from a distribution in the dependency closure of
``[project].dependencies`` (dev extras are not in the image). The build itself imports every
module (containers/check_imports.py), which catches module-level imports at build time.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import importlib.metadata
import re
import shlex
import sys
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from imgrec.mlops.image_inputs import DockerIgnore

ROOT = Path(__file__).resolve().parents[2]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def installed_packages() -> list[str]:
    """Folders the image installs: the packages pyproject finds (``imgrec``) and the card's
    top-level folders linked into it as sub-packages (``imgrec/serving -> ../serving``)."""
    patterns = _pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    roots = [p.rstrip("*") for p in patterns]
    roots = [r for r in roots if (ROOT / r / "__init__.py").is_file()]
    linked = [
        link.resolve().name
        for root in roots
        for link in sorted((ROOT / root).iterdir())
        if link.is_symlink() and (link / "__init__.py").is_file()
    ]
    return roots + linked


def dockerfile_instructions(text: str) -> list[tuple[str, list[str]]]:
    """``[(INSTRUCTION, arguments)]`` with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")
    ))  # fmt: skip
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), shlex.split(rest)))
    return out


def copy_sources(text: str) -> list[str]:
    """Sources of every COPY/ADD from the build context (not ``--from`` another stage)."""
    sources = []
    for word, args in dockerfile_instructions(text):
        if word not in ("COPY", "ADD") or any(a.startswith("--from") for a in args):
            continue
        paths = [a for a in args if not a.startswith("--")]
        sources += paths[:-1]
    return sources


def context_excludes(path: str) -> bool:
    """Whether the checkout's .dockerignore leaves ``path`` out of the build context."""
    return DockerIgnore.of(ROOT).excludes(path)


def test_every_copy_source_exists_and_is_in_the_build_context() -> None:
    sources = copy_sources((ROOT / "Dockerfile").read_text())
    assert sources, "the Dockerfile copies nothing?"
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the checkout"
        if source != ".":
            assert not context_excludes(source), f"COPY {source}: .dockerignore drops it"


def test_build_context_holds_every_installed_package_and_the_import_check() -> None:
    needed = [*installed_packages(), "pyproject.toml", "constraints.txt", "README.md",
              "containers/check_imports.py"]  # fmt: skip
    for path in needed:
        assert not context_excludes(path), f".dockerignore leaves {path} out of the image"
    for path in ("data", "runs", "tests", ".venv", "model-store", "imgrec/__pycache__"):
        assert context_excludes(path), f".dockerignore lets {path} into the image"
    assert {"imgrec", "components", "pipelines", "serving"} <= set(installed_packages())


def test_dockerignore_rules_behave_like_docker() -> None:
    rules = DockerIgnore(["# a comment", "*", "!imgrec", "**/__pycache__", "!containers/a.py",
                          "docs/*.md", "!docs/keep.md"])  # fmt: skip
    assert rules.excludes("tests") and rules.excludes("tests/x.py")
    assert not rules.excludes("imgrec/cli/app.py")
    assert rules.excludes("imgrec/cli/__pycache__") and rules.excludes("imgrec/__pycache__/a.pyc")
    assert not rules.excludes("containers/a.py") and rules.excludes("containers/b.py")
    assert rules.excludes("docs/a.md") and not rules.excludes("docs/keep.md")
    # Excluded folders are walked only where a "!" rule may let something back in.
    assert rules.may_keep_below("containers") and rules.may_keep_below("docs")
    assert not rules.may_keep_below("tests") and not rules.may_keep_below("imgrec/__pycache__")


def imported_top_levels(folder: Path) -> dict[str, str]:
    """``{top-level module: a file importing it}`` for absolute imports under ``folder``."""
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


@functools.cache
def image_extras() -> list[str]:
    """The extras the image installs: those of ``imgrec[all]`` (``all = ["imgrec[a,b,c]"]``)."""
    [everything] = _pyproject()["project"]["optional-dependencies"]["all"]
    return sorted(Requirement(everything).extras)


def test_the_image_installs_the_extras_of_all() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    named = set(re.findall(r"\*x\['([a-z]+)'\]", dockerfile))
    assert named == set(image_extras()), "the Dockerfile's extras differ from imgrec[all]'s"


def runtime_closure() -> set[str]:
    """Canonical names of every distribution the image installs: ``[project].dependencies``
    and the extras of ``imgrec[all]`` (markers evaluated for this Python)."""
    seen: set[tuple[str, frozenset[str]]] = set()  # a name again with other extras counts
    optional = _pyproject()["project"]["optional-dependencies"]
    wanted = [*_pyproject()["project"]["dependencies"]]
    wanted += [r for extra in image_extras() for r in optional[extra]]
    todo = [Requirement(r) for r in wanted]
    todo = [r for r in todo if r.marker is None or r.marker.evaluate({"extra": ""})]
    while todo:  # markers of a dependency's requirements are evaluated before they are queued
        req = todo.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = importlib.metadata.distribution(req.name)
        except importlib.metadata.PackageNotFoundError:
            continue  # not installed here: a marker-only dependency of another platform
        envs = [{"extra": e} for e in (req.extras or {""})]
        for text in dist.requires or []:
            sub = Requirement(text)
            if sub.marker is None or any(sub.marker.evaluate(env) for env in envs):
                todo.append(sub)
    return {name for name, _ in seen}


@functools.cache
def _providers() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


@pytest.mark.parametrize("package", installed_packages())
def test_every_imported_package_is_installed_in_the_image(package: str) -> None:
    first_party = set(installed_packages())
    closure = runtime_closure()
    providers = _providers()
    missing = []
    for module, where in sorted(imported_top_levels(ROOT / package).items()):
        if module in sys.stdlib_module_names or module in first_party or module == "__future__":
            continue
        dists = {canonicalize_name(d) for d in providers.get(module, [])}
        if not dists & closure:
            missing.append(f"{module} (imported in {where}; from {sorted(dists) or '?'})")
    assert not missing, "not installed in the image: " + "; ".join(missing)


@pytest.mark.parametrize("package", installed_packages())
def test_every_data_file_of_a_package_is_installed(package: str) -> None:
    """The image installs the packages (not editable): a template, stylesheet or model card
    the code reads must match ``tool.setuptools.package-data`` or it is missing there."""
    patterns = _pyproject()["tool"]["setuptools"]["package-data"]["*"]
    left_out = [
        str(path.relative_to(ROOT))
        for path in (ROOT / package).rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
        and not any(fnmatch.fnmatch(path.name, p) for p in patterns)
    ]  # fmt: skip
    assert not left_out, f"not installed (add to package-data): {left_out}"


def test_the_torch_pins_of_the_image_and_the_venv_are_constraints_txt() -> None:
    """The image installs torch in its own layer from ``ARG TORCH_PINS`` (so other pins do not
    rebuild it) and ``make install`` from ``TORCH``: both must be constraints.txt's pins."""
    pins = {
        line.split("==")[0]: line
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if line.split("==")[0] in ("torch", "torchvision")
    }
    dockerfile = (ROOT / "Dockerfile").read_text()
    arg = re.search(r'^ARG TORCH_PINS="([^"]+)"', dockerfile, re.M)
    assert arg and sorted(arg.group(1).split()) == sorted(pins.values()), arg
    make = re.search(r"^TORCH := (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert make and sorted(make.group(1).split()) == sorted(pins.values()), make
