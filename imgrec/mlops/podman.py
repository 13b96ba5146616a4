"""A Docker-compatible API for kfp's ``DockerRunner``: ``$DOCKER_HOST``, else podman's own.

Without ``DOCKER_HOST``, ``podman system service`` is started on a private socket for the
duration and ``DOCKER_HOST`` points at it (kfp's runner calls ``docker.from_env()`` per
step). podman is ``$IMGREC_PODMAN`` (a command line), else the checkout's
``containers/podman`` (podman with this machine's settings), else ``podman`` on ``PATH``::

    with docker_api() as client:          # a docker.DockerClient
        require_image(client, "ghcr.io/imgrec/imgrec:0.1.0")  # built here, from these files
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imgrec.errors import ContainerEngineError

_CHECKOUT_PODMAN = Path(__file__).resolve().parents[2] / "containers" / "podman"
_NO_ENGINE_HINT = "run `make image` (it installs podman), or set DOCKER_HOST to a Docker API"


def podman_command() -> list[str]:
    """The podman command line to use (see the module docstring for the order)."""
    if os.environ.get("IMGREC_PODMAN", "").strip():
        return shlex.split(os.environ["IMGREC_PODMAN"])
    if _CHECKOUT_PODMAN.is_file() and shutil.which("podman"):
        return [str(_CHECKOUT_PODMAN)]
    found = shutil.which("podman")
    if not found:
        raise ContainerEngineError(
            "no container engine: podman is not installed and DOCKER_HOST is not set",
            hint=_NO_ENGINE_HINT,
        )
    return [found]


@contextlib.contextmanager
def docker_api(timeout: float = 60.0) -> Iterator[Any]:
    """A connected ``docker.DockerClient``; a podman service started here is stopped after."""
    import docker

    if os.environ.get("DOCKER_HOST"):
        client = _connect(docker, os.environ["DOCKER_HOST"], None, timeout)
        try:
            yield client
        finally:
            client.close()
        return
    folder = tempfile.mkdtemp(prefix="imgrec-podman-")
    url = f"unix://{folder}/api.sock"
    log_path = os.path.join(folder, "service.log")
    with open(log_path, "w", encoding="utf-8") as log:
        service = subprocess.Popen(
            [*podman_command(), "system", "service", "--time=0", url],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        client = _connect(docker, url, (service, log_path), timeout)
        os.environ["DOCKER_HOST"] = url
        try:
            yield client
        finally:
            os.environ.pop("DOCKER_HOST", None)
            client.close()
    finally:
        service.terminate()
        try:
            service.wait(timeout=15)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait()
        shutil.rmtree(folder, ignore_errors=True)


def _connect(docker: Any, url: str, service: tuple[Any, str] | None, timeout: float) -> Any:
    """Ping ``url`` until it answers; a service that exits or never answers is an error."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client = docker.DockerClient(base_url=url, timeout=600)
            client.ping()
            return client
        except Exception as exc:  # not listening yet, or refused
            exited = service is not None and service[0].poll() is not None
            if exited or time.monotonic() > deadline:
                said = Path(service[1]).read_text(errors="replace")[-500:] if service else ""
                raise ContainerEngineError(
                    f"no Docker-compatible API at {url}: {said.strip() or exc}",
                    hint=_NO_ENGINE_HINT,
                ) from exc
            time.sleep(0.2)


STALE_OK_ENV = "IMGREC_ALLOW_STALE_IMAGE"
"""Set to 1 to run the steps in an image built from other files anyway (with a warning)."""


def require_image(client: Any, image: str, root: Path | None = None) -> None:
    """Refuse to start when ``image`` is not in the engine's local store (nothing is pulled),
    or when it was not built from the files of the checkout ``root`` (default: the one imgrec
    is imported from; none when imgrec is installed): its build-inputs label must be the
    checkout's digest (:mod:`imgrec.mlops.image_inputs`), so a stale image never runs a step
    unnoticed. ``$IMGREC_ALLOW_STALE_IMAGE=1`` turns that refusal into a warning."""
    import docker

    import imgrec.mlops.image_inputs as image_inputs

    try:
        labels = client.images.get(image).labels or {}
    except docker.errors.ImageNotFound:
        raise ContainerEngineError(
            f"image {image!r} is not built on this machine",
            hint="build it with `make image`, or name another with IMGREC_COMPONENT_IMAGE",
            code="image_not_found",
        ) from None
    root = root or image_inputs.checkout_root()
    if root is None:
        return  # an installed imgrec: no build inputs to compare the image with
    want = image_inputs.inputs_digest(root)
    have = labels.get(image_inputs.INPUTS_LABEL)
    if have == want:
        return
    built = labels.get(image_inputs.REVISION_LABEL, "unknown")
    message = (
        f"image {image!r} was not built from this checkout's files (image built at revision "
        f"{built}, inputs {(have or 'unlabelled')[:12]}; checkout {want[:12]} at "
        f"{image_inputs.revision(root)})"
    )
    if os.environ.get(STALE_OK_ENV) == "1":
        print(f"warning: {message}; running the steps in it anyway ({STALE_OK_ENV}=1)",
              file=sys.stderr)  # fmt: skip
        return
    raise ContainerEngineError(
        message,
        hint=f"rebuild it with `make image` (only changed layers are rebuilt), or set "
        f"{STALE_OK_ENV}=1 to run in it anyway",
        code="image_stale",
    )


__all__ = ["STALE_OK_ENV", "docker_api", "podman_command", "require_image"]
