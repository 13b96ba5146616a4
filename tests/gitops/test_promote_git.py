"""`imgrec models promote V --git`, `rollback --git` and `models status`: the store pointer and
the overlay move together, in one commit whose message names the version, metrics and gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gitops_helpers import make_checkout, run_git
from pipeline_helpers import make_model_dir

from imgrec.cli import main
from imgrec.gitops.overlay import read_production
from imgrec.model_store import ModelStore

GATE = {"passed": True, "reasons": ["accuracy 0.9300 >= production 0.8100 + 0.0000"]}


@pytest.fixture
def setup(tmp_path: Path) -> tuple[ModelStore, Path]:
    store = ModelStore(tmp_path / "my store")  # a space in the path on purpose
    store.register(make_model_dir(tmp_path / "a"), metadata={"metrics": {"accuracy": 0.81}})
    store.register(
        make_model_dir(tmp_path / "b"),
        metadata={"metrics": {"accuracy": 0.93, "f1_macro": 0.925}, "gate": GATE},
        promote=False,
    )
    checkout = make_checkout(tmp_path / "repo", store.uri, 1)
    return store, checkout / "manifests/overlays/local"


def test_promote_and_rollback_with_git(
    setup: tuple[ModelStore, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    store, overlay = setup
    repo = overlay.parents[2]
    assert main(["models", "promote", "2", "--git", "--overlay", str(overlay), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["version"], result["previous"]) == (2, 1)
    assert store.production_version() == 2
    assert read_production(overlay).version == 2
    message = run_git("log", "-1", "--format=%B", cwd=repo)
    assert message.startswith("models: promote local to version 2 (accuracy 0.9300, f1_macro")
    assert "gate passed" in message and GATE["reasons"][0] in message
    changed = run_git("show", "--name-only", "--format=", "HEAD", cwd=repo).split()
    assert changed == ["manifests/overlays/local/production-model.yaml"]
    text = (overlay / "production-model.yaml").read_text()
    assert "# The production model of this overlay" in text  # comments survive the edit
    assert "versions/0002/torchserve" in text

    assert main(["models", "status", "--overlays", str(overlay.parent), "--json"]) == 2
    out, err = capsys.readouterr()
    rows = {Path(r["overlay"]).name: r for r in map(json.loads, out.splitlines())}
    assert rows["local"]["state"] == "in_sync" and rows["local"]["git_version"] == 2
    assert rows["production"]["state"] == "missing_version"
    assert "error[production_mismatch]" in err and "prod-store" in err
    assert main(["models", "status", "--overlays", str(overlay)]) == 0

    assert main(["models", "rollback", "--git", "--overlay", str(overlay)]) == 0
    assert "production is now version 1" in capsys.readouterr().out
    assert store.production_version() == 1 and read_production(overlay).version == 1
    assert run_git("log", "-1", "--format=%s", cwd=repo).startswith(
        "models: rollback local to version 1 (accuracy 0.8100; no gate)"
    )


def test_canary_and_branch(setup: tuple[ModelStore, Path]) -> None:
    _, overlay = setup
    repo = overlay.parents[2]
    args = ["models", "promote", "2", "--git", "--overlay", str(overlay)]
    assert main([*args, "--canary", "20", "--branch", "promote-v2"]) == 0
    assert run_git("branch", "--show-current", cwd=repo).strip() == "promote-v2"
    prod = read_production(overlay)
    assert (prod.version, prod.canary_percent) == (2, 20)
    assert "as a 20% canary" in run_git("log", "-1", "--format=%s", cwd=repo)


def test_refusals_change_nothing(
    setup: tuple[ModelStore, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, overlay = setup
    repo = overlay.parents[2]
    head = run_git("rev-parse", "HEAD", cwd=repo)
    base = ["models", "promote", "--git", "--overlay", str(overlay)]

    assert main([*base[:2], "9", *base[2:]]) == 2
    assert capsys.readouterr().err.startswith("error[not_found]: model version 9 does not exist")

    assert main([*base[:2], "2", *base[2:], "--store", str(tmp_path / "other")]) == 2
    assert "error[production_mismatch]" in capsys.readouterr().err

    assert main([*base[:2], "2", "--git"]) == 2
    assert "--git needs --overlay" in capsys.readouterr().err

    # a checksum that no longer matches: the version is refused before anything moves
    weights = Path(store.get(2).model_uri) / "weights.safetensors"
    saved = weights.read_bytes()
    weights.write_bytes(saved[:-1] + bytes([saved[-1] ^ 1]))
    assert main([*base[:2], "2", *base[2:]]) == 2
    assert "error[invalid_model]" in capsys.readouterr().err
    weights.write_bytes(saved)

    # the store moved without git: status names the mismatch, promote --git of a third
    # version refuses until the two agree
    store.register(make_model_dir(tmp_path / "c"), metadata={"metrics": {"accuracy": 0.5}})
    store.promote(2)
    assert main(["models", "status", "--overlays", str(overlay)]) == 2
    err = capsys.readouterr().err
    assert "error[production_mismatch]" in err and "store production is 2, git names 1" in err
    assert main([*base[:2], "3", *base[2:]]) == 2
    assert "has version 2 in production but" in capsys.readouterr().err

    (overlay / "production-model.yaml").write_text("# edited by hand\n")
    assert main([*base[:2], "2", *base[2:]]) == 2
    assert "error[invalid_overlay]" in capsys.readouterr().err
    run_git("checkout", "--", ".", cwd=repo)
    assert run_git("rev-parse", "HEAD", cwd=repo) == head
    assert store.production_version() == 2  # only the direct promote above moved it


def test_production_version_to_github_output(
    setup: tuple[ModelStore, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store, _ = setup
    out = tmp_path / "github_output"
    out.write_text("earlier=1\n")
    monkeypatch.setenv("GITHUB_OUTPUT", str(out))
    assert main(["models", "list", "--store", store.uri, "--github-output", "version"]) == 0
    assert out.read_text() == "earlier=1\nversion=1\n"  # what retrain.yml reads
    empty = str(tmp_path / "empty store")
    assert main(["models", "list", "--store", empty, "--github-output", "before"]) == 0
    assert out.read_text().endswith("before=0\n")
    monkeypatch.delenv("GITHUB_OUTPUT")
    assert main(["models", "list", "--store", store.uri, "--github-output", "v"]) == 2
    assert "error[invalid_config]: --github-output needs $GITHUB_OUTPUT" in capsys.readouterr().err
