"""The built image at work (slow): the pipeline's steps inside it with kfp's DockerRunner on
podman, and its predictor answering V1/V2 and the manifests' health probes.

Needs ``make image`` of this checkout. Without the image, or with an image built from other
files (its ``imgrec.inputs`` label is not this checkout's digest), these tests skip with the
reason; ``make test-image`` (CI) sets ``IMGREC_REQUIRE_IMAGE=1``, which makes that a failure.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from PIL import Image

from imgrec.components import component_image
from imgrec.mlops import run_local
from imgrec.mlops.image_inputs import INPUTS_LABEL, context_files, inputs_digest
from imgrec.mlops.podman import STALE_OK_ENV, docker_api, podman_command, require_image
from imgrec.model_store import ModelStore

for _helpers in ("pipeline", "serving"):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / _helpers))
from pipeline_helpers import make_imagefolder  # noqa: E402
from serving_helpers import free_port  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FAST = {"epochs": "3", "train_threads": "2", "min_images": "8", "gate_absolute_floor": "0.0"}

pytestmark = [pytest.mark.slow, pytest.mark.image]


def _image_problem() -> str | None:
    """Why the image cannot be tested: no podman, not built, or built from other files."""
    try:
        podman = podman_command()
    except Exception as exc:
        return str(exc)
    label = subprocess.run([*podman, "image", "inspect", "--format",
                            f'{{{{index .Labels "{INPUTS_LABEL}"}}}}', component_image()],
                           capture_output=True, text=True, check=False)  # fmt: skip
    if label.returncode != 0:
        return f"image {component_image()} not built (make image)"
    if label.stdout.strip() != inputs_digest(REPO):
        return f"image {component_image()} was built from other files than this checkout's " \
            "(make image)"  # fmt: skip
    return None


@pytest.fixture(scope="module")
def image() -> str:
    problem = _image_problem()
    if problem:
        if os.environ.get("IMGREC_REQUIRE_IMAGE") == "1":
            pytest.fail(problem)
        pytest.skip(problem)
    return component_image()


@pytest.fixture(scope="module")
def runs(image: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same tiny dataset through both runners, each into its own store, at the same time:
    the subprocess run in a process of its own (kfp's local settings are per process), so
    their step imports overlap on two cores."""
    root = tmp_path_factory.mktemp("container-runs")
    data = make_imagefolder(root / "my data", n_train=16, n_val=6)
    out: dict[str, Any] = {"data": data}
    for runner in ("subprocess", "container"):
        out[f"{runner}_store"] = root / f"store-{runner}"
    params = [f"--param={k}={v}" for k, v in FAST.items()]
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    beside = subprocess.Popen(
        [sys.executable, "-m", "imgrec", "pipeline", "run", "--local", "--runner", "subprocess",
         "--data", str(data), "--store", str(out["subprocess_store"]), "--runs-dir",
         str(root / "runs-subprocess"), "--json", *params],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
    )  # fmt: skip
    try:
        out["container"] = run_local(str(data), str(out["container_store"]), FAST,
                                     runs_dir=str(root / "runs"), runner="container")  # fmt: skip
    finally:
        stdout, stderr = beside.communicate(timeout=900)
    assert beside.returncode == 0, stderr[-3000:]
    out["subprocess"] = json.loads(stdout.strip().splitlines()[-1])
    return out


def test_container_steps_register_the_same_model_as_subprocess_steps(
    runs: dict[str, Any],
) -> None:
    sub, con = runs["subprocess"], runs["container"]
    assert con["status"] == "succeeded", (con.get("failed_step"), con.get("error"), con["log"])
    assert con["runner"] == "container" and sub["runner"] == "subprocess"
    assert (con["registered_version"], con["production_version"]) == (1, 1)
    assert con["gate"]["passed"] and con["gate"]["reasons"] == sub["gate"]["reasons"]
    assert con["metrics"].keys() == sub["metrics"].keys() and con["metrics"]["n"] == 12
    # Same code, seed and data; the CPU kernels in the image may round differently: within
    # one validation image of each other.
    assert abs(con["metrics"]["accuracy"] - sub["metrics"]["accuracy"]) <= 1 / 12 + 1e-9
    assert set(con["reports"]) == set(sub["reports"])
    log = Path(con["log"]).read_text()
    assert log.count(f"Running in image '{component_image()}'") == 7  # every step in the image
    v1 = ModelStore(runs["container_store"]).get(1)
    assert v1.metrics["accuracy"] == pytest.approx(con["metrics"]["accuracy"])
    # Files written by the steps belong to the caller, not to a container user.
    owners = {p.stat().st_uid for p in Path(runs["container_store"]).rglob("*")}
    assert owners == {os.getuid()}


def test_a_failing_step_in_the_container_fails_the_run(image: str, tmp_path: Path) -> None:
    data = make_imagefolder(tmp_path / "d", classes=("a", "b", "c"), n_train=8, n_val=3)
    for f in (data / "val" / "c").iterdir():
        f.unlink()
    (data / "val" / "c").rmdir()
    summary = run_local(str(data), str(tmp_path / "s"), FAST,
                        runs_dir=str(tmp_path / "runs"), runner="container")  # fmt: skip
    assert summary["status"] == "failed" and summary["failed_step"] == "validate"
    assert "class 'c' has 0 images in val" in summary["error"]
    assert summary["registered_version"] is None


def test_an_image_that_is_not_built_is_refused_before_any_step(
    image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from imgrec.cli import main

    monkeypatch.setenv("IMGREC_COMPONENT_IMAGE", "localhost/imgrec-never-built:0")
    data = make_imagefolder(tmp_path / "d", n_train=8, n_val=3)
    code = main(["pipeline", "run", "--local", "--runner", "container", "--data", str(data),
                 "--store", str(tmp_path / "s"), "--runs-dir", str(tmp_path / "runs")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and err.startswith("error[image_not_found]: image 'localhost/imgrec-never")
    assert "make image" in err and not list((tmp_path / "runs").rglob("ingest"))


@pytest.fixture(scope="module")
def stale_image(image: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The image under another tag with another inputs label: one built from other files."""
    tag = f"localhost/imgrec-stale-test:{os.getpid()}"
    folder = tmp_path_factory.mktemp("stale-image")
    (folder / "Dockerfile").write_text(f"FROM {image}\n")
    subprocess.run([*podman_command(), "build", "--tag", tag, "--label", f"{INPUTS_LABEL}=0",
                    str(folder)], capture_output=True, check=True)  # fmt: skip
    yield tag
    subprocess.run([*podman_command(), "rmi", tag], capture_output=True, check=False)


def test_an_image_of_other_files_is_refused_before_any_step(
    image: str, stale_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from imgrec.cli import main

    monkeypatch.setenv("IMGREC_COMPONENT_IMAGE", stale_image)
    monkeypatch.delenv(STALE_OK_ENV, raising=False)
    data = make_imagefolder(tmp_path / "d", n_train=8, n_val=3)
    code = main(["pipeline", "run", "--local", "--runner", "container", "--data", str(data),
                 "--store", str(tmp_path / "s"), "--runs-dir", str(tmp_path / "runs")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and err.startswith(f"error[image_stale]: image '{stale_image}' was not built")
    assert f"checkout {inputs_digest(REPO)[:12]}" in err and "make image" in err
    assert not list((tmp_path / "runs").rglob("ingest"))
    # Allowed on purpose: a warning naming both, then the run goes on.
    monkeypatch.setenv(STALE_OK_ENV, "1")
    with docker_api() as client:
        require_image(client, stale_image)
        require_image(client, image)  # this checkout's: silent
    assert capsys.readouterr().err.count("warning: image") == 1


def test_podman_reads_the_build_context_as_the_digest_does(tmp_path: Path) -> None:
    """The digest's file list (imgrec/mlops/image_inputs.py reads .dockerignore) is exactly
    what podman sends as the build context."""
    base = "localhost/imgrec-base:bookworm"
    if subprocess.run([*podman_command(), "image", "exists", base], check=False).returncode:
        pytest.skip(f"{base} not made (make image)")
    tag = f"localhost/imgrec-context-test:{os.getpid()}"
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"FROM {base}\nCOPY . /context/\n")
    podman = podman_command()
    subprocess.run([*podman, "build", "--tag", tag, "--label", "imgrec.test=context", "-f",
                    str(dockerfile), str(REPO)], capture_output=True, check=True)  # fmt: skip
    try:
        listed = subprocess.run([*podman, "run", "--rm", tag, "find", "/context", "-type", "f"],
                                capture_output=True, text=True, check=True).stdout  # fmt: skip
    finally:
        subprocess.run([*podman, "rmi", tag], capture_output=True, check=False)
    in_podman = sorted(p.removeprefix("/context/") for p in listed.split())
    assert in_podman == context_files(REPO)


def test_the_image_holds_no_build_tools_caches_or_build_mounts(image: str) -> None:
    """Non-root, no pip or compiler, no apt lists or caches, and nothing of the machine's pip
    set-up that ``make image`` lent to the build (containers/pip_mounts.py)."""
    script = (
        "id -u; for t in pip pip3 gcc cc make; do command -v $t; done; ls -A /var/lib/apt/lists; "
        "ls -d /root/.cache /root/.config /root/.pip-host /home/imgrec/.cache /opt/imgrec/src "
        "/run/pip-host /etc/pip.conf 2>/dev/null; "
        "python3 -c 'import importlib.util as u; print(u.find_spec(\"pip\"))'"
    )
    out = subprocess.run([*podman_command(), "run", "--rm", image, "sh", "-c", script],
                         capture_output=True, text=True, check=False).stdout.split()  # fmt: skip
    assert out == ["1000", "None"], out


def _probes() -> dict[str, str]:
    """The predictor's probe paths from the manifests (name ``imgrec``)."""
    spec = yaml.safe_load((REPO / "manifests/base/inferenceservice.yaml").read_text())
    model = spec["spec"]["predictor"]["model"]
    return {kind: model[kind]["httpGet"]["path"] for kind in ("readinessProbe", "livenessProbe")}


def _serve_args() -> list[str]:
    """The serving runtime's container command, as the manifests give it."""
    runtime = yaml.safe_load((REPO / "manifests/base/servingruntime.yaml").read_text())
    container = runtime["spec"]["containers"][0]
    args = [a.replace("{{.Name}}", "imgrec") for a in container["args"]]
    env = [f"--env={e['name']}={e['value']}" for e in container["env"]]
    return [*env, container["image"], *container["command"], *args]


def test_the_image_serves_the_registered_model(runs: dict[str, Any]) -> None:
    model = ModelStore(runs["container_store"]).get(1).model_uri
    port = free_port()
    args = _serve_args()
    assert args[args.index("--port") + 1] == "8080" and "/mnt/models" in args
    args[args.index("--port") + 1] = str(port)
    args[args.index("--host") + 1] = "127.0.0.1"
    name = f"imgrec-serve-test-{port}"
    cmd = [*podman_command(), "run", "--rm", "--name", name,
           "-v", f"{model}:/mnt/models:ro", *args]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        probes = _probes()
        _wait_ready(url + probes["readinessProbe"], proc)
        assert httpx.get(url + probes["livenessProbe"], timeout=10).status_code == 200
        png = io.BytesIO()
        Image.open(next((runs["data"] / "val" / "circle").iterdir())).save(png, "PNG")
        b64 = base64.b64encode(png.getvalue()).decode()
        v1 = httpx.post(f"{url}/v1/models/imgrec:predict", timeout=60,
                        json={"instances": [{"image": {"b64": b64}}]}).json()  # fmt: skip
        assert v1["predictions"][0]["labels"][0] in ("circle", "square")
        body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [b64]}]}
        v2 = httpx.post(f"{url}/v2/models/imgrec/infer", json=body, timeout=60).json()
        labels = {o["name"]: o["data"] for o in v2["outputs"]}["label"]
        assert labels[0] == v1["predictions"][0]["labels"][0]
        user = subprocess.run([*podman_command(), "exec", name, "id", "-u"],
                              capture_output=True, text=True, check=True)  # fmt: skip
        assert user.stdout.strip() == "1000"  # the image's own non-root user
    finally:
        subprocess.run([*podman_command(), "stop", "-t", "10", name],
                       capture_output=True, check=False)  # fmt: skip
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode is not None, out


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read().decode(errors="replace")[-3000:])  # type: ignore[union-attr]
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} not ready after {timeout_s} s")
