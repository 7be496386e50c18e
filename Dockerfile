# syntax=docker/dockerfile:1
# One image for the five gridloop services; each Deployment picks its command:
#   python -m gridloop_intake | gridloop_dispatch | gridloop_handling | gridloop_verify | gridloop_scoring
# Built from uv.lock (uv sync --frozen): the same versions as `make run` and the tests.
#
#   docker build -t gridloop:0.1.0 .
#   docker run --rm -e DATABASE_URL=... -e NATS_URL=... gridloop:0.1.0 python -m gridloop_intake

ARG PYTHON_IMAGE=python:3.11-slim

# -- build: resolve nothing, install exactly the lock file ---------------------------------
FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION=0.13.8
RUN pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"
ENV UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11
WORKDIR /src
# The local NATS, PostgreSQL, SMTP and S3 servers (`make run`, tests) have no place in a
# cluster: they come with gridloop-devkit, a development dependency that --no-dev leaves out.
# Third-party dependencies first: this layer changes only with uv.lock.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace
# Then the workspace's own packages, installed into the venv (not editable).
COPY libs ./libs
COPY services ./services
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable

# -- run: the venv, the demo city, a non-root user ------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="gridloop" \
      org.opencontainers.image.description="Grid-based city management: intake, dispatch, handling, verify, scoring"
RUN groupadd --system --gid 10001 gridloop \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /app gridloop
COPY --from=build /app/.venv /app/.venv
# The demo city (too large for a ConfigMap); deploy/components/demo-city points CITY_DATA_DIR here.
COPY data/demo-city /app/data/demo-city
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HTTP_HOST=0.0.0.0 \
    CITY_DATA_DIR=/app/data/demo-city
WORKDIR /app
USER 10001:10001
EXPOSE 8001 8002 8003 8004 8005
# No default service: say which one, e.g. `python -m gridloop_intake`.
CMD ["python", "-c", "import sys; sys.exit('gridloop: run one of: python -m gridloop_intake | gridloop_dispatch | gridloop_handling | gridloop_verify | gridloop_scoring')"]
