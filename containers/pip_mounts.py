"""Lend this machine's pip set-up to ``podman build`` without putting it into the image.

Machines behind a proxy or with local wheel indexes configure pip in /etc/pip.conf, the
user's pip.conf and ``PIP_*`` variables, and name a CA bundle, local indexes and constraint
files there. This writes the effective configuration (``pip config list``, variables
overriding files) to one pip.conf and prints the ``podman build`` options that bind it, read
only, to /etc/pip.conf of every RUN step, together with every local path it names. Bind mounts
of a build never become part of a layer::

    python3 containers/pip_mounts.py build/pip.conf      # -> -v build/pip.conf:/etc/pip.conf:ro ...
"""

import configparser
import os
import re
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


MOUNT_ROOT = "/run/pip-host"
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


def build_options(conf_path: str, python: str = sys.executable) -> list[str]:
    """Write ``conf_path`` and return the ``podman build`` options binding it and its paths."""
    listing = subprocess.run(
        [python, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    ).stdout
    sections = effective_config(listing)
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_dict(relocated(sections))
    os.makedirs(os.path.dirname(os.path.abspath(conf_path)), exist_ok=True)
    with open(conf_path, "w", encoding="utf-8") as f:
        parser.write(f)
    options = ["-v", f"{os.path.abspath(conf_path)}:/etc/pip.conf:ro"]
    for path in local_paths(sections):
        options += ["-v", f"{path}:{MOUNT_ROOT}{path}:ro"]
    return options


if __name__ == "__main__":
    print("\n".join(build_options(sys.argv[1])))
