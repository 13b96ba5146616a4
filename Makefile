# imgrec: `make run` and `make test` do all set-up themselves (a .venv with pinned packages).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PIP := $(VENV)/bin/pip
# checkov pins dependencies that clash with ours (constraints.txt), so it has its own venv,
# pinned by constraints-tools.txt (`pip freeze` of that venv).
TOOLS := .venv-tools
TOOLS_STAMP := $(TOOLS)/.installed
# torch/torchvision are pinned explicitly: other resolvers pull multi-GB CUDA builds from the index.
TORCH := torch==2.14.1 torchvision==0.29.1
# On shared CPUs torch's OpenMP threads busy-wait against each other (an epoch went from ~6 s
# to minutes under load); passive waiting keeps the tests and the quickstart predictable.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: install run test lint format bench clean browser image test-image

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt $(TORCH)
	$(PIP) install -q -c constraints.txt -e '.[all,dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m imgrec.quickstart

test: $(STAMP) browser
	$(PY) -m pytest -q

# The dashboard's browser tests drive Debian's chromium through Playwright (no browser download).
CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# checkov over manifests/ and the Dockerfile (skips and their reasons: .checkov.yaml); actionlint,
# zizmor, hadolint, kubernetes-validate and the kserve/Kubeflow models run in the tests (tests/lint).
lint: $(STAMP) $(TOOLS_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	BC_SKIP_MAPPING=TRUE $(TOOLS)/bin/checkov --config-file .checkov.yaml -d manifests
	BC_SKIP_MAPPING=TRUE $(TOOLS)/bin/checkov --config-file .checkov.yaml -f Dockerfile

$(TOOLS_STAMP): constraints-tools.txt
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q -r constraints-tools.txt
	touch $(TOOLS_STAMP)

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The component + serving image, built with podman (containers/podman holds the machine's
# flags). BASE: a local Debian bookworm made with debootstrap when no registry is reachable;
# BASE=python:3.11-slim with one. TORCH_INDEX empty: the CPU wheel index, or PyPI's torch
# where that index is unreachable (the report says which torch the image holds).
IMAGE ?= ghcr.io/imgrec/imgrec:0.1.0
BASE ?= localhost/imgrec-base:bookworm
TORCH_INDEX ?=

image:
	PYTHON=$(PYTHON) TORCH_PINS="$(TORCH)" containers/build-image.sh "$(IMAGE)" "$(BASE)" "$(TORCH_INDEX)"

# The image at work: the pipeline's steps inside it (--runner container) and its predictor.
# `make image` first: it returns at once when the image carries this checkout's inputs label
# (imgrec.inputs); the tests fail on an image built from other files.
test-image: $(STAMP) image
	IMGREC_REQUIRE_IMAGE=1 IMGREC_COMPONENT_IMAGE=$(IMAGE) $(PY) -m pytest -q -m image --durations=5 \
	  tests/containers/test_image_runs.py

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
