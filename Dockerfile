# syntax=docker/dockerfile:1.7
# One image definition, two targets:
#   docker build --target cpu -t clsp-search:cpu .    # API server and CPU indexing (torch 2.13.0 CPU wheel)
#   docker build --target gpu -t clsp-search:gpu .    # GPU indexer (CUDA runtime, the `gpu` extra)
# The CPU wheel comes from PyTorch's CPU index so pip never pulls the multi-GB CUDA build into the
# server image; the GPU target gets CUDA torch from PyPI (it bundles its CUDA libraries).

ARG PYTHON_VERSION=3.11
ARG TORCH_VERSION=2.13.0
ARG CUDA_IMAGE=nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04

# ---------------------------------------------------------------------------------------- base (CPU)
FROM python:${PYTHON_VERSION}-slim-bookworm AS base-cpu
# Synthesizers and audio tools: the corpus generator renders speech with them, the indexer decodes
# with libsndfile. Same list as the Makefile's DEBIAN_PACKAGES, minus the browser used by tests.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts \
      sox libsox-fmt-base libsndfile1 curl \
 && rm -rf /var/lib/apt/lists/*
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv && pip install --upgrade pip "setuptools<81" wheel

# ----------------------------------------------------------------------------------------------- cpu
FROM base-cpu AS cpu
ARG TORCH_VERSION
# torch first, from the CPU index: the project's unpinned `torch>=2.2` is then already satisfied.
RUN pip install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu
WORKDIR /app
COPY pyproject.toml README.md ./
COPY searchengine ./searchengine
COPY indexer ./indexer
COPY api ./api
COPY cli ./cli
COPY training ./training
COPY web ./web
RUN pip install . && pip check
# A fixed uid so that volume permissions are predictable across hosts.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin clsp \
 && mkdir -p /data /models && chown clsp:clsp /data
USER clsp
ENV HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 CLSP_SEARCH_WEB_DIR=/app/web
# /data holds collections (read-only for the API), /models user checkpoints (always read-only).
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8000/health || exit 1
ENTRYPOINT ["clsp-search"]
CMD ["serve", "/data/collection", "--host", "0.0.0.0", "--port", "8000"]

# ----------------------------------------------------------------------------------------------- gpu
FROM ${CUDA_IMAGE} AS gpu
ARG PYTHON_VERSION
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends software-properties-common \
 && add-apt-repository -y ppa:deadsnakes/ppa \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python${PYTHON_VERSION} python${PYTHON_VERSION}-venv \
      espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts \
      sox libsox-fmt-base libsndfile1 curl \
 && rm -rf /var/lib/apt/lists/*
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH
RUN python${PYTHON_VERSION} -m venv /opt/venv && pip install --upgrade pip "setuptools<81" wheel
WORKDIR /app
COPY pyproject.toml README.md ./
COPY searchengine ./searchengine
COPY indexer ./indexer
COPY api ./api
COPY cli ./cli
COPY training ./training
COPY web ./web
# CUDA torch from PyPI, faiss-gpu and accelerate from the `gpu` extra; faiss-cpu (a base dependency)
# is removed so `import faiss` resolves to the GPU build. nvidia-ml-py lets the benchmarks read GPU load.
RUN pip install ".[gpu]" nvidia-ml-py && pip uninstall -y faiss-cpu && pip install --force-reinstall --no-deps faiss-gpu-cu12
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin clsp \
 && mkdir -p /data /models && chown clsp:clsp /data
USER clsp
ENV HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
VOLUME ["/data"]
# The indexer is a batch job: healthy while its process is alive and the GPU answers.
HEALTHCHECK --interval=60s --timeout=10s --start-period=60s --retries=3 CMD nvidia-smi -L >/dev/null || exit 1
ENTRYPOINT ["clsp-search"]
CMD ["index", "--help"]
