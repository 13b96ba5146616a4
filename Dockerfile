# The imgrec component image: every Kubeflow component (components/) runs in it.
#   docker build -t ghcr.io/imgrec/imgrec:0.1.0 .                                  # CPU
#   docker build --build-arg BASE=nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04 \
#                --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 \
#                -t ghcr.io/imgrec/imgrec:0.1.0-cuda .                             # GPU
# Not buildable on the development machine (no Docker there); see README.
ARG BASE=python:3.11-slim
FROM ${BASE}

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 GX_ANALYTICS_ENABLED=false

# The CUDA base images have no Python; the slim Python image already has it.
RUN if ! command -v python3 >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends python3 python3-pip python3-venv \
      && rm -rf /var/lib/apt/lists/* && ln -sf /usr/bin/python3 /usr/local/bin/python; \
    fi

WORKDIR /opt/imgrec
COPY pyproject.toml constraints.txt README.md ./
COPY imgrec ./imgrec
COPY components ./components
COPY pipelines ./pipelines
COPY serving ./serving
COPY monitoring ./monitoring

# torch from the CPU or CUDA wheel index, then imgrec with its pinned dependencies.
RUN python3 -m pip install --index-url "${TORCH_INDEX}" -c constraints.txt torch torchvision \
 && python3 -m pip install -c constraints.txt . \
 && python3 -c "import imgrec, kfp, great_expectations"

RUN useradd --create-home --uid 1000 imgrec
# Numeric, so that Kubernetes runAsNonRoot can verify it (a name cannot be checked).
USER 1000:1000
WORKDIR /home/imgrec
