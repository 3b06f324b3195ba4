# posos-intent: `make help` lists the targets. Everything runs in Docker when an engine answers
# (RUNTIME=docker), else locally in .venv (RUNTIME=local); set RUNTIME to force either.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
DOCKER ?= docker
RUNTIME ?= $(shell $(DOCKER) info >/dev/null 2>&1 && echo docker || echo local)
PYTEST_ARGS ?=
# Test files run side by side, one pytest worker per core (pytest-xdist; a file's tests stay in one worker, so its
# fixtures are made once): most tests wait on servers, kernels and subprocesses. TEST_WORKERS=0: one process.
TEST_WORKERS ?= auto
LINT_PATHS ?= intent_lib api posos_client bench
LOCK_FLAGS := --python-version 3.11 --python-platform x86_64-unknown-linux-gnu --no-header --annotation-style line -q
export DATA_ARCHIVE POSOS_PASSPHRASE POSOS_PASSPHRASE_FILE
# Nothing goes over the network by default: MLflow's usage telemetry off for every target (train, lab, runs).
export MLFLOW_DISABLE_TELEMETRY ?= true

TRAINER_IMAGE ?= posos-intent-trainer:latest
# Files written into mounted folders belong to the caller; HOME must then be writable.
# The archive the trainer container mounts: DATA_ARCHIVE, else the layout's default (evaluated only when used).
ARCHIVE = $(or $(DATA_ARCHIVE),$(shell python3 -c 'from intent_lib.paths import DEFAULT_ARCHIVE; print(DEFAULT_ARCHIVE)'))
GIT_COMMIT := $(shell git rev-parse HEAD 2>/dev/null)$(shell git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo -dirty)
# A SQLite run store is mounted in the trainer container at its own absolute path: MLflow records artefact folders
# as absolute paths, so runs logged inside and outside the container stay readable by both.
RUNS_STORE_DIR = $(patsubst %/,%,$(dir $(RUNS_ARTIFACT_ROOT)))
DOCKER_USER := --user $(shell id -u):$(shell id -g) -e HOME=/tmp

.PHONY: help venv train trainer-image layers lint check check-fast lab bench results lock clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "; printf "Usage: make <target> [VAR=value]\n\n"} /^[a-zA-Z_-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@printf "\nRUNTIME=$(RUNTIME) (docker when an engine answers; force with RUNTIME=local|docker)\n"

$(VENV)/.installed: requirements/dev.lock pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check uv
	# Bytecode compiled once here (pip does it by default, uv does not): where PYTHONDONTWRITEBYTECODE is set, as on
	# our machines, every process (notebook kernel, fit worker, API worker) would compile scikit-learn, spaCy... (~4 s).
	$(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY) -r requirements/dev.lock
	$(VENV)/bin/uv pip install -q --python $(PY) --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name posos-intent --display-name "posos-intent (.venv)" \
	  --env MLFLOW_DISABLE_TELEMETRY true >/dev/null
	touch $@

venv: $(VENV)/.installed ## Create .venv from the lock (done for you by the other targets)

trainer-image: ## Build the trainer image (trainer.Dockerfile)
	$(DOCKER) build -f trainer.Dockerfile -t $(TRAINER_IMAGE) .

train: ## Decrypt the data (or use the demo data), run the steps that changed (FORCE=1: all), write models/, reports/, state/ (TRAIN_ARGS="-p name=value --only 03_evaluate")
ifeq ($(RUNTIME),docker)
train: trainer-image
	mkdir -p data models reports state $(RUNS_STORE_DIR)
	$(DOCKER) run --rm $(DOCKER_USER) \
	  -v "$(CURDIR)/data:/app/data" -v "$(CURDIR)/models:/app/models" -v "$(CURDIR)/reports:/app/reports" \
	  -v "$(CURDIR)/state:/app/state" \
	  $(if $(RUNS_STORE_DIR),-v "$(RUNS_STORE_DIR):$(RUNS_STORE_DIR)") -e MLFLOW_TRACKING_URI="$(RUNS_URI)" \
	  -e MLFLOW_DISABLE_TELEMETRY -e TRACKING -e BASELINE \
	  $(if $(wildcard $(ARCHIVE)),-v "$(abspath $(ARCHIVE)):/run/posos/archive:ro" -e DATA_ARCHIVE=/run/posos/archive) \
	  $(if $(POSOS_PASSPHRASE_FILE),-v "$(abspath $(POSOS_PASSPHRASE_FILE)):/run/posos/passphrase:ro" -e POSOS_PASSPHRASE_FILE=/run/posos/passphrase) \
	  $(if $(POSOS_PASSPHRASE),-e POSOS_PASSPHRASE) \
	  -e POSOS_GIT_COMMIT="$(GIT_COMMIT)" $(TRAINER_IMAGE) train $(if $(FORCE),--force) $(TRAIN_ARGS)
else
train: $(VENV)/.installed
	$(PY) -m intent_lib train $(if $(FORCE),--force) $(TRAIN_ARGS)
endif

layers: $(VENV)/.installed ## Check the import layers ARCHITECTURE.md draws (import-linter, contracts in pyproject.toml)
	$(VENV)/bin/lint-imports --no-cache

lint: layers ## Check the import layers, then repeated code (pylint's duplicate-code over LINT_PATHS)
	$(VENV)/bin/pylint $(LINT_PATHS)

check: lint ## Run the lint, then the whole test suite, as CI does, a worker per core (PYTEST_ARGS="-k api" to select; TEST_WORKERS=0: one process)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

check-fast: layers ## Check the import layers, run the tests not marked slow (no notebooks, servers or browsers): under 2 minutes
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow" $(PYTEST_ARGS)

LAB_PORT ?= 8888
lab: $(VENV)/.installed ## Open the notebooks in JupyterLab on 127.0.0.1:LAB_PORT with the project's kernel (LAB_ARGS for more flags)
	$(VENV)/bin/jupyter lab notebooks/ --ip 127.0.0.1 --port $(LAB_PORT) $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

bench: $(VENV)/.installed ## Model benchmark: accuracy, macro-F1, ECE, fit time, latency, pickle size
	$(PY) bench/bench_model.py $(BENCH_ARGS)

results: $(VENV)/.installed ## Distil the last run's figures (reports/, the card, bench/results/) into the snapshot in docs/, render README's and docs/' generated blocks from it
	$(PY) -m intent_lib.results $(RESULTS_ARGS)

lock: $(VENV)/.installed ## Re-pin every dependency: dev.lock from pyproject.toml, then train/serve within it
	$(VENV)/bin/uv pip compile pyproject.toml --all-extras $(LOCK_FLAGS) -o requirements/dev.lock
	$(VENV)/bin/uv pip compile pyproject.toml --extra train -c requirements/dev.lock $(LOCK_FLAGS) -o requirements/train.lock
	$(VENV)/bin/uv pip compile pyproject.toml --extra serve -c requirements/dev.lock $(LOCK_FLAGS) -o requirements/serve.lock

clean: ## Remove generated models, reports, state (predictions, tuning, stamps) and processed data (keeps data/*.csv and .venv)
	rm -rf models state reports/*.html reports/*.json reports/*.csv reports/executed data/processed

-include mk/*.mk
