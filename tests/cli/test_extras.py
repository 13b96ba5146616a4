"""The optional extras (pyproject.toml, imgrec/extras.py): the core works without them, and a
command that needs a missing one says which extra to install, in one line."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import tomllib

from imgrec.extras import EXTRAS, extra_for

ROOT = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~\[;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _project() -> dict:  # type: ignore[type-arg]
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_every_extra_import_comes_from_its_extra_and_not_from_the_core() -> None:
    project = _project()
    core = {_name(r) for r in project["dependencies"]}
    dists_of = importlib.metadata.packages_distributions()
    for extra, modules in EXTRAS.items():
        listed = {_name(r) for r in project["optional-dependencies"][extra]}
        for module in modules:
            dists = {d.lower().replace("_", "-") for d in dists_of.get(module, [])}
            assert dists & listed, f"{module}: {sorted(dists)} not in extra {extra!r}"
            assert not dists & core, f"{module} is an extra's, yet a core dependency"
    assert project["optional-dependencies"]["all"] == ["imgrec[serve,pipelines,monitor,openvino]"]


def test_extra_for_names_the_extra_of_a_dotted_import() -> None:
    assert extra_for("kserve.model_server") == "serve"
    assert extra_for("kfp.dsl") == "pipelines"
    assert extra_for("evidently") == "monitor"
    assert extra_for("torch") is None
    assert extra_for("kservelike") is None


BLOCKED_RUN = textwrap.dedent(
    """
    import importlib, importlib.abc, sys

    BLOCKED = {blocked!r}

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, Block())
    from imgrec.cli import main

    # the core's commands load, and the modules behind train/evaluate/predict/export import
    assert main(["--help"]) == 0
    for name in {core!r}:
        importlib.import_module(name)
    print("CORE-OK", flush=True)
    sys.exit(main(["serve", "efficientnet_lite0", "--port", "0"]))
    """
)
CORE_MODULES = [
    "imgrec.api",
    "imgrec.tasks.classify.train",
    "imgrec.tasks.classify.evaluate",
    "imgrec.tasks.classify.predict",
    "imgrec.tasks.detect.train",
    "imgrec.tasks.detect.predict",
    "imgrec.inference.onnx",
    "imgrec.cli.train",
    "imgrec.cli.predict",
    "imgrec.cli.export",
]


def test_the_core_runs_without_the_extras_and_serve_names_its_extra(tmp_path: Path) -> None:
    blocked = sorted({m for modules in EXTRAS.values() for m in modules})
    script = tmp_path / "blocked.py"
    script.write_text(BLOCKED_RUN.format(blocked=blocked, core=CORE_MODULES))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert "CORE-OK" in done.stdout, done.stderr[-3000:]
    assert done.returncode == 2, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error[missing_extra]: "), done.stderr[-3000:]
    assert "pip install 'imgrec[serve]'" in last
