"""The pipeline step runners' registry and the container runner's set-up (no engine needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imgrec.cli import main
from imgrec.errors import ContainerEngineError, UnknownNameError
from imgrec.mlops import podman
from imgrec.mlops.step_runners import STEP_RUNNERS, StepPlace, step_environment, step_mounts


def test_runners_are_registered_and_an_unknown_one_suggests_names() -> None:
    assert STEP_RUNNERS.names() == ["container", "subprocess"]
    with pytest.raises(UnknownNameError, match="did you mean 'container'"):
        STEP_RUNNERS.get("containers")


def test_cli_refuses_an_unknown_runner_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["pipeline", "run", "--local", "--data", str(tmp_path), "--runner", "dokker",
                 "--store", str(tmp_path / "s"), "--runs-dir", str(tmp_path / "r")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error[unknown_name]: unknown pipeline step runner")
    assert not (tmp_path / "r").exists()


def test_mounts_data_read_only_and_store_read_write(tmp_path: Path) -> None:
    data, store = tmp_path / "my data", tmp_path / "new store"
    data.mkdir()
    mounts = step_mounts(StepPlace(str(data), str(store), "img:1"))
    assert [(m["Source"], m["Target"], m["ReadOnly"]) for m in mounts] == [
        (str(data), str(data), True),
        (str(store), str(store), False),
    ]
    assert store.is_dir()  # created: a bind mount needs its source


def test_a_csv_dataset_mounts_its_folder_and_s3_mounts_nothing(tmp_path: Path) -> None:
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label\n")
    mounts = step_mounts(StepPlace(str(csv), "s3://bucket/store", "img:1"))
    assert [m["Source"] for m in mounts] == [str(tmp_path)]
    assert step_mounts(StepPlace("s3://b/data", "s3://b/store", "img:1")) == []


def test_environment_passes_imgrec_and_s3_settings_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("IMGREC_CACHE", "/somewhere")
    monkeypatch.setenv("SECRET_TOKEN", "x")
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    env = step_environment()
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9000"
    assert env["IMGREC_CACHE"] == "/somewhere"
    assert "SECRET_TOKEN" not in env and "PATH" not in env
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and env["HOME"] == "/tmp"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert step_environment()["OMP_WAIT_POLICY"] == "ACTIVE"


def test_podman_command_prefers_the_setting_then_the_checkout_script(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IMGREC_PODMAN", "sudo podman --log-level=warn")
    assert podman.podman_command() == ["sudo", "podman", "--log-level=warn"]
    monkeypatch.delenv("IMGREC_PODMAN")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ContainerEngineError, match="podman is not installed") as err:
        podman.podman_command()
    assert err.value.code == "container_unavailable" and "make image" in err.value.hint


def test_an_unreachable_docker_host_is_a_typed_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    with (
        pytest.raises(ContainerEngineError, match="no Docker-compatible API") as err,
        podman.docker_api(timeout=0.5),
    ):
        pass
    assert err.value.code == "container_unavailable"
    assert os.environ["DOCKER_HOST"].endswith("nothing.sock")  # the user's setting is kept


def test_a_podman_that_exits_at_once_is_a_typed_error_with_its_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "podman"
    fake.write_text("#!/bin/sh\necho 'cannot start: no storage' >&2\nexit 125\n")
    fake.chmod(0o755)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setenv("IMGREC_PODMAN", str(fake))
    with (
        pytest.raises(ContainerEngineError, match="cannot start: no storage"),
        podman.docker_api(timeout=20),
    ):
        pass
    assert "DOCKER_HOST" not in os.environ
