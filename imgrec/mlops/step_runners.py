"""Where the local pipeline's steps run: kfp local runners, one registry entry each.

``subprocess`` runs every step as a subprocess of this Python (the venv imgrec is installed
in); ``container`` runs every step inside the component image with kfp's ``DockerRunner``,
talking to a Docker-compatible API (``$DOCKER_HOST``, or ``podman system service`` started
for the run), with the dataset (read only) and the model store mounted at their own paths::

    place = StepPlace(data="/data/mnist5k", store="/srv/store", image="ghcr.io/imgrec/imgrec:0.1.0")
    with STEP_RUNNERS.get("container")(place) as runner:
        kfp.local.init(runner=runner, pipeline_root=...)

A new runner is one ``@STEP_RUNNERS.register(name)`` context manager yielding a kfp runner.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from imgrec import storage
from imgrec.registry import Registry

# Host variables a step inside a container still needs (S3 endpoint and keys, imgrec
# settings, thread counts); everything else of the host's environment stays outside.
PASSED_ENV_PREFIXES = ("IMGREC_", "AWS_", "OMP_", "MKL_")


@dataclass(frozen=True)
class StepPlace:
    """What a runner needs to know about a run: absolute data and store URIs, the image."""

    data: str
    store: str
    image: str


StepRunner = Callable[[StepPlace], contextlib.AbstractContextManager[Any]]
STEP_RUNNERS: Registry[StepRunner] = Registry(
    "pipeline step runner", list_hint="imgrec pipeline run --help"
)


@STEP_RUNNERS.register("subprocess")
@contextlib.contextmanager
def subprocess_runner(place: StepPlace) -> Iterator[Any]:
    """Each step a subprocess of this venv; nothing is pip-installed at run time. The steps
    start warm (:mod:`imgrec.mlops.warm_steps`) unless ``IMGREC_COLD_STEPS=1``."""
    from kfp import local

    from imgrec.mlops.warm_steps import cold_steps, step_env, warm_steps

    if cold_steps():
        yield local.SubprocessRunner(use_venv=False)
        return
    with warm_steps(step_env()) as python, _steps_started_by(python):
        yield local.SubprocessRunner(use_venv=False)


@contextlib.contextmanager
def _steps_started_by(python: str) -> Iterator[None]:
    """Have kfp's subprocess handler put ``python`` where a step's command says ``python3``
    (its own choice is this interpreter); the one place that replaces it."""
    from kfp.local import subprocess_task_handler as handler

    original = handler.replace_python_executable

    def replace(full_command: list[str], new_executable: str) -> list[str]:
        return list(original(full_command, python))

    handler.replace_python_executable = replace
    try:
        yield
    finally:
        handler.replace_python_executable = original


@STEP_RUNNERS.register("container")
@contextlib.contextmanager
def container_runner(place: StepPlace) -> Iterator[Any]:
    """Each step in ``place.image`` through a Docker-compatible API (podman here).

    Steps run as the calling user's uid:gid, so what they write into the run folder and the
    store belongs to that user, as with the subprocess runner.
    """
    from kfp import local

    from imgrec.mlops.podman import docker_api, require_image

    with docker_api() as client, _exit_codes_kept():
        require_image(client, place.image)
        yield local.DockerRunner(
            mounts=step_mounts(place),
            user=f"{os.getuid()}:{os.getgid()}",
            environment=step_environment(),
        )


@contextlib.contextmanager
def _exit_codes_kept() -> Iterator[None]:
    """Have kfp's DockerRunner start steps with :func:`run_step_container` meanwhile.

    kfp 2.17's ``run_docker_container`` starts each container with ``auto_remove=True`` and,
    when the container is already gone as it asks for the exit code (podman removes it at
    once), reports exit code 0: a failed step passed and the pipeline went on to register a
    model of data that had failed validation. This is the one place that replaces it.
    """
    from kfp.local import docker_task_handler

    original = docker_task_handler.run_docker_container
    docker_task_handler.run_docker_container = run_step_container
    try:
        yield
    finally:
        docker_task_handler.run_docker_container = original


def run_step_container(
    client: Any, image: str, command: list[str], volumes: dict[str, Any], **run_args: Any
) -> int:
    """Run one step's container, stream its output, return its exit code, then remove it."""
    import codecs

    print(f"Running in image {image!r}\n")
    container = client.containers.run(
        image=image,
        command=command,
        volumes=volumes,
        detach=True,
        stdout=True,
        stderr=True,
        **run_args,
    )
    try:
        decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
        for chunk in container.logs(stream=True, follow=True):
            print(decode(chunk), end="")
        return int(container.wait()["StatusCode"])
    finally:
        container.remove(force=True)


def step_mounts(place: StepPlace) -> list[Any]:
    """Bind mounts for a containerised step: the data read-only, the store read-write.

    A CSV dataset mounts its folder (its image paths are relative to it); ``s3://`` URIs
    mount nothing (the step reaches S3 over the network).
    """
    from docker.types import Mount

    mounts = []
    if not storage.is_s3(place.data):
        folder = place.data if os.path.isdir(place.data) else os.path.dirname(place.data)
        mounts.append(Mount(target=folder, source=folder, type="bind", read_only=True))
    if not storage.is_s3(place.store):
        os.makedirs(place.store, exist_ok=True)  # a bind mount needs an existing source
        mounts.append(Mount(target=place.store, source=place.store, type="bind"))
    return mounts


def step_environment() -> dict[str, str]:
    """The environment of a containerised step: the passed-through host variables, a
    writable ``HOME`` for any uid, and the passive OpenMP wait of the subprocess runner."""
    env = {k: v for k, v in os.environ.items() if k.startswith(PASSED_ENV_PREFIXES)}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env["HOME"] = "/tmp"
    return env


__all__ = ["STEP_RUNNERS", "StepPlace", "run_step_container", "step_environment", "step_mounts"]
