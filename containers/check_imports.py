"""Import every module of the installed imgrec packages; run inside the image at build time.

The packages are the ones pyproject.toml installs (``tool.setuptools.packages.find``), so a
module whose imports are missing from the image stops ``make image`` with its name::

    cd / && python3 /opt/imgrec/src/containers/check_imports.py /opt/imgrec/src/pyproject.toml
"""

import importlib
import importlib.util
import pkgutil
import sys

import tomllib


def main(pyproject: str) -> int:
    with open(pyproject, "rb") as f:
        patterns = tomllib.load(f)["tool"]["setuptools"]["packages"]["find"]["include"]
    roots = [p.rstrip("*") for p in patterns if importlib.util.find_spec(p.rstrip("*"))]
    failed, count = [], 0
    for root in roots:
        package = importlib.import_module(root)
        for module in pkgutil.walk_packages(package.__path__, root + "."):
            if module.name.endswith(".__main__"):  # runs its program when imported
                continue
            count += 1
            try:
                importlib.import_module(module.name)
            except Exception as exc:  # report every broken module, not only the first
                failed.append(f"{module.name}: {type(exc).__name__}: {exc}")
    print(f"imported {count} modules of {', '.join(roots)}")
    for line in failed:
        print(f"cannot import {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
