# syntax=docker/dockerfile:1
# One image for every role and environment: the signal service (default), the Dagster webserver / daemon, the MLflow
# server, batch jobs (`tradeops pipelines run ...`). TRADEOPS_ENV picks the config profile (dev, staging, prod);
# backends come from env vars (TRADEOPS_DATABASE_URL, TRADEOPS_MLFLOW_TRACKING_URI, TRADEOPS_LAKE_URI, ...).
#
# The base is pinned to a patch release. To pin the exact bytes too, append the digest that
#   docker buildx imagetools inspect python:3.11.14-slim-bookworm
# prints (FROM python:3.11.14-slim-bookworm@sha256:...), or pass --build-arg PYTHON_IMAGE=...@sha256:...
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
# torch is the CPU build, hosted on PyTorch's index; the lock's hashes decide which files are accepted
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN python -m venv /opt/venv
WORKDIR /src
# the runtime lock: requirements.lock without the dev extra, same versions, every file hash-checked
COPY requirements-runtime.lock ./
RUN /opt/venv/bin/pip install --require-hashes -r requirements-runtime.lock
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN /opt/venv/bin/pip install --no-deps . \
    && /opt/venv/bin/pip check

FROM ${PYTHON_IMAGE} AS runtime
# libgomp1: LightGBM's OpenMP runtime (torch and scikit-learn bundle their own); no compilers, no headers
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 tradeops \
    && useradd --system --uid 10001 --gid tradeops --home-dir /var/lib/tradeops --create-home --shell /usr/sbin/nologin tradeops \
    && install -d -o tradeops -g tradeops /var/lib/tradeops/dagster /var/lib/tradeops/mlartifacts
COPY --from=builder /opt/venv /opt/venv
COPY config /app/config
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TRADEOPS_ENV=prod \
    TRADEOPS_PROFILE_DIR=/app/config \
    TRADEOPS_HOME=/var/lib/tradeops \
    DAGSTER_HOME=/var/lib/tradeops/dagster \
    MLFLOW_DISABLE_TELEMETRY=true \
    DAGSTER_DISABLE_TELEMETRY=1
USER tradeops
VOLUME ["/var/lib/tradeops"]
EXPOSE 8000
ENTRYPOINT ["tradeops"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
