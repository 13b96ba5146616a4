"""Lend this machine's pip set-up to ``podman build`` without putting it into the image.

Machines behind a proxy or with local wheel indexes configure pip in /etc/pip.conf, the
user's pip.conf and ``PIP_*`` variables, and name a CA bundle, local indexes and constraint
files there. This writes the effective configuration (``pip config list``, variables
overriding files) as pip's user configuration into a staging folder and prints the
``podman build`` options (one per line) that bind it over ``/root`` (the HOME of a build's
RUN steps) with every local path it names below it, read only.

Why ``/root``: a bind mount's target that does not exist in the image is created in the
layer (an empty /etc/pip.conf, /run/...), so the mount points would stay in the image. /root
exists in every base, and what the mounts need below it is created in the staging folder on
the host. pip's cache and anything else written to HOME during the build stays there too::

    python3 containers/pip_mounts.py build/pip-host
"""

import configparser
import os
import re
import shutil
import subprocess
import sys

_LINE = re.compile(r"^(?P<scope>[^.]*)\.(?P<key>[\w-]+)='(?P<value>.*)'$")
_ENV_SCOPE = ":env:"


def effective_config(listing: str) -> dict[str, dict[str, str]]:
    """``{section: {key: value}}`` from ``pip config list``; ``PIP_*`` values win over files."""
    sections: dict[str, dict[str, str]] = {}
    env: dict[str, str] = {}
    for line in listing.splitlines():
        match = _LINE.match(line.strip())
        if not match:
            continue
        scope, key, value = match["scope"], match["key"], match["value"]
        if scope == _ENV_SCOPE:
            env[key] = value
        else:
            sections.setdefault(scope, {})[key] = value
    sections.setdefault("global", {}).update(env)
    return sections


BUILD_HOME = "/root"
MOUNT_ROOT = BUILD_HOME + "/.pip-host"
"""Where the host's paths appear in a RUN step: apart from the image's own files (a CA bundle
bound over /etc/ssl/certs/ca-certificates.crt would break installing ca-certificates)."""


def _path_of(word: str) -> str | None:
    path = word.removeprefix("file://")
    return path if path.startswith("/") and os.path.exists(path) else None


def local_paths(sections: dict[str, dict[str, str]]) -> list[str]:
    """The outermost existing absolute paths the configuration names, file:// URLs too."""
    found = {p for values in sections.values() for v in values.values() for w in v.split()
             if (p := _path_of(w))}  # fmt: skip
    # A file:// simple index links to its wheels in a sibling folder (../files/...).
    found |= {os.path.dirname(p.rstrip("/")) for p in found if p.rstrip("/").endswith("/simple")}
    return sorted(p for p in found if not any(p.startswith(o.rstrip("/") + "/") for o in found))


def relocated(sections: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """The configuration with every local path moved under :data:`MOUNT_ROOT`."""

    def move(word: str) -> str:
        path = _path_of(word)
        return word.replace(path, MOUNT_ROOT + path, 1) if path else word

    return {
        name: {key: " ".join(move(w) for w in value.split()) for key, value in values.items()}
        for name, values in sections.items()
    }


def build_options(staging: str, python: str = sys.executable) -> list[str]:
    """Fill ``staging`` (emptied first) and return the ``podman build`` options binding it."""
    listing = subprocess.run(
        [python, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    ).stdout
    sections = effective_config(listing)
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_dict(relocated(sections))
    staging = os.path.abspath(staging)
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(os.path.join(staging, ".config", "pip"))
    with open(os.path.join(staging, ".config", "pip", "pip.conf"), "w", encoding="utf-8") as f:
        parser.write(f)
    options = ["-v", f"{staging}:{BUILD_HOME}"]
    for path in local_paths(sections):
        options += ["-v", f"{path}:{MOUNT_ROOT}{path}:ro"]
    return options


if __name__ == "__main__":
    print("\n".join(build_options(sys.argv[1])))
