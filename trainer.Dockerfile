# Trainer image: runs the research pipeline (python -m intent_lib train|tune) on the CPU.
# data/, models/, reports/ and state/ (predictions, tuning, step stamps: a rerun reuses steps) are mounted volumes;
# the passphrase is passed at run time, never baked in.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    POSOS_ROOT=/app MPLCONFIGDIR=/tmp

RUN apt-get update \
    && apt-get install -y --no-install-recommends gnupg \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements/train.lock requirements/train.lock
RUN pip install -r requirements/train.lock

COPY pyproject.toml README.md ./
COPY intent_lib intent_lib
RUN pip install --no-deps . \
    && useradd --create-home --uid 1000 trainer \
    && mkdir -p data models reports state \
    && chown trainer:trainer data models reports state
COPY notebooks notebooks

USER 1000:1000
ENTRYPOINT ["python", "-m", "intent_lib"]
CMD ["train"]
