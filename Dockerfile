# The imgrec image: every Kubeflow component (components/) and the KServe predictor
# (`imgrec serve`, manifests/base/servingruntime.yaml) run in it.
#   make image                                                        # here: podman, local base
#   docker build -t ghcr.io/imgrec/imgrec:0.1.0 .                       # CPU, python:3.11-slim
#   docker build --build-arg BASE=nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04 \
#                --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 \
#                -t ghcr.io/imgrec/imgrec:0.1.0-cuda .                  # GPU
# The build context is whitelisted in .dockerignore (the packages setuptools installs).
ARG BASE=python:3.11-slim
FROM ${BASE}

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 GX_ANALYTICS_ENABLED=false \
    VIRTUAL_ENV=/opt/imgrec/venv PATH=/opt/imgrec/venv/bin:$PATH

# Python: the slim image has it; Debian, Ubuntu and CUDA bases get the distribution's python3
# (3.11 on bookworm). Whichever it is, imgrec lives in its own venv (PEP 668 bases refuse a
# system-wide pip). The base decides the apt versions, so they are not pinned here.
# hadolint ignore=DL3008
RUN if ! command -v python3 >/dev/null; then \
      apt-get update \
      && apt-get install -y --no-install-recommends python3 python3-venv \
      && apt-get clean && rm -rf /var/lib/apt/lists/*; \
    fi \
 && python3 -m venv "${VIRTUAL_ENV}" \
 && useradd --no-log-init --create-home --uid 1000 imgrec

WORKDIR /opt/imgrec/src
# torch in its own layer, the biggest one (gigabytes when the wheel bundles CUDA): it is
# rebuilt only when these pins change (tests/containers checks they are constraints.txt's);
# the next layer brings torch's own dependencies to the versions constraints.txt pins.
ARG TORCH_PINS="torch==2.14.1 torchvision==0.29.1"
RUN printf '%s\n' ${TORCH_PINS} > /tmp/torch.txt \
 && pip install --index-url "${TORCH_INDEX}" -r /tmp/torch.txt \
 && rm /tmp/torch.txt

# The project's dependencies (pyproject.toml) with the extras of `all`, pinned by constraints.txt.
COPY pyproject.toml constraints.txt ./
RUN python3 -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; x = p['optional-dependencies']; print(*p['dependencies'], *x['serve'], *x['pipelines'], *x['monitor'], *x['openvino'], sep='\n')" > /tmp/requirements.txt \
 && pip install -c constraints.txt -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# The code. Every module must import here: a module whose import fails stops the build.
COPY . ./
WORKDIR /
RUN pip install --no-deps /opt/imgrec/src \
 && python3 /opt/imgrec/src/containers/check_imports.py /opt/imgrec/src/pyproject.toml \
 && pip uninstall -y pip \
 && rm -rf /opt/imgrec/src

# Numeric, so that Kubernetes runAsNonRoot can verify it (a name cannot be checked).
USER 1000:1000
WORKDIR /home/imgrec
