# The API: serve the model (make api), classify the test questions through it (make test), benchmark it
# (make bench-api), and the containerised smoke test (make smoke-containers). Included by the main Makefile.

# HOST and PORT: where `make api` listens (API_PORT is an alias of PORT); WORKERS: worker processes, each with
# its own model and micro-batcher (empty: one per core).
HOST ?= 127.0.0.1
API_PORT ?= 4002
PORT ?= $(API_PORT)
WORKERS ?=
API_URL ?= http://localhost:$(PORT)
API_IMAGE ?= posos-intent-api:latest
API_CONTAINER ?= posos-intent-api
MODEL_DIR ?= models
# MODEL: a registered version to serve instead of MODEL_DIR's model (models:/posos-intent@champion,
# models:/posos-intent/3). It is fetched in .venv (which has MLflow; the API has not) into models/registry/, checked,
# and served through the port's link there, which `make reload MODEL=...` moves to another version.
MODEL ?=
FETCH = $(PY) -m intent_lib fetch "$(MODEL)"
TEST_ARGS ?=
BENCH_API_ARGS ?=
BENCH_LOAD_ARGS ?=
SMOKE_DIR ?= build/smoke
SMOKE_LOCAL_DIR ?= build/smoke-local
SMOKE_PORT ?= 4012
# Seconds docker waits after SIGTERM before killing: the drain (5 s) + the graceful timeout (30 s) + a margin,
# as api/settings.py's STOP_TIMEOUT_SECONDS says.
STOP_TIMEOUT ?= 40

.PHONY: api api-image images reload test bench-api bench-load smoke-containers same-model-as-image

api-image: ## Build the API image (api.Dockerfile)
	$(DOCKER) build -f api.Dockerfile -t $(API_IMAGE) .

ifeq ($(RUNTIME),docker)
api: api-image $(if $(MODEL),$(VENV)/.installed) ## Serve the model on HOST:PORT (127.0.0.1:4002; WORKERS=one per core; MODEL=models:/posos-intent@champion: a registered version) from the image or .venv
	$(if $(MODEL),model=$$($(FETCH) --port $(PORT)) || exit 1;) \
	$(DOCKER) run --rm --name $(API_CONTAINER) --stop-timeout $(STOP_TIMEOUT) -p $(HOST):$(PORT):4002 \
	  $(if $(WORKERS),-e WORKERS=$(WORKERS)) -e LOG_FORMAT -e LOG_QUERIES -e DRAIN_SECONDS \
	  $(if $(MODEL),-v "$(CURDIR)/models:/app/models:ro" -e MODEL_PATH="/app/$$model",-v "$(abspath $(MODEL_DIR)):/app/models:ro") $(API_IMAGE)
else
api: $(VENV)/.installed
	$(if $(MODEL),model=$$($(FETCH) --port $(PORT)) || exit 1;) \
	HOST=$(HOST) PORT=$(PORT) WORKERS=$(WORKERS) $(if $(MODEL),MODEL_PATH="$$model") \
	  $(PY) -m api.serve
endif

ifeq ($(RUNTIME),docker)
reload: $(if $(MODEL),$(VENV)/.installed) ## Roll out the model now in MODEL_DIR to the running API (a new version is checked, loaded, then switched); MODEL=models:/posos-intent/1: that registered version (rollback)
	$(if $(MODEL),$(FETCH) --port $(PORT) >/dev/null &&) $(DOCKER) kill -s HUP $(API_CONTAINER)
else
reload: $(VENV)/.installed
	$(if $(MODEL),$(FETCH) --port $(PORT) >/dev/null &&) PORT=$(PORT) $(PY) -m api.reload
endif

test: $(VENV)/.installed ## Classify the test questions through the API at API_URL (starts one if none answers) into the submission CSV (MODEL=models:/...: check that it serves that registered version)
	$(if $(MODEL),model=$$($(FETCH)) || exit 1;) \
	$(PY) -m posos_client.submit --url "$(API_URL)" $(if $(MODEL),--model "$$model") $(TEST_ARGS)

bench-api: $(VENV)/.installed ## API benchmark: GET latency p50/p95/p99 and throughput at concurrency 1/8/32, batch throughput
	$(PY) bench/bench_api.py --url "$(API_URL)" $(BENCH_API_ARGS)

bench-load: $(VENV)/.installed ## Load test: >= 20,000 mixed GET/POST requests at concurrency 64 on 2 workers, batch starvation, GET floods
	$(PY) bench/bench_load.py $(BENCH_LOAD_ARGS)

# Build both images, train on the demo data in the trainer container (in $(SMOKE_DIR), leaving data/ and models/
# alone), serve that model from the api container on $(SMOKE_PORT), and run `make test` against it.
images: trainer-image api-image ## Build both images (CI builds them while the tests run)

smoke-containers: $(VENV)/.installed images ## Containerised smoke test: both images, demo training, API container, make test
	rm -rf "$(SMOKE_DIR)" && mkdir -p "$(SMOKE_DIR)/data" "$(SMOKE_DIR)/models" "$(SMOKE_DIR)/reports" "$(SMOKE_DIR)/state"
	$(DOCKER) run --rm $(DOCKER_USER) -v "$(abspath $(SMOKE_DIR))/data:/app/data" \
	  -v "$(abspath $(SMOKE_DIR))/models:/app/models" -v "$(abspath $(SMOKE_DIR))/reports:/app/reports" \
	  -v "$(abspath $(SMOKE_DIR))/state:/app/state" \
	  $(TRAINER_IMAGE) train
	-$(DOCKER) rm -f $(API_CONTAINER)-smoke >/dev/null 2>&1
	$(DOCKER) run -d --rm --name $(API_CONTAINER)-smoke -p 127.0.0.1:$(SMOKE_PORT):4002 \
	  -v "$(abspath $(SMOKE_DIR))/models:/app/models:ro" $(API_IMAGE)
	status=0; \
	$(MAKE) --no-print-directory test API_URL=http://127.0.0.1:$(SMOKE_PORT) \
	  TEST_ARGS="--no-start --wait 120 --input demo --model $(abspath $(SMOKE_DIR))/models --output $(abspath $(SMOKE_DIR))/reports/submission.csv" \
	  || status=$$?; \
	if [ $$status -ne 0 ]; then $(DOCKER) logs $(API_CONTAINER)-smoke 2>&1 | tail -20; fi; \
	$(DOCKER) rm -f $(API_CONTAINER)-smoke >/dev/null; \
	exit $$status

# The demo model built again here, in .venv (01 and 02 only, no tracking): equal library versions must give the
# bytes the trainer image wrote in $(SMOKE_DIR) (README: byte-identical models).
same-model-as-image: $(VENV)/.installed ## Build the demo model locally and compare its sha256 with the trainer image's (after smoke-containers)
	rm -rf "$(SMOKE_LOCAL_DIR)" && mkdir -p "$(SMOKE_LOCAL_DIR)" && cp -r notebooks "$(SMOKE_LOCAL_DIR)/"
	cd "$(SMOKE_LOCAL_DIR)" && POSOS_ROOT="$$PWD" TRACKING=off DATA_ARCHIVE= \
	  "$(abspath $(PY))" -m intent_lib train --only 01_split 02_train
	$(PY) -c 'import sys; from intent_lib.card import same_build; same, line = same_build(*sys.argv[1:]); \
	  print(line); sys.exit(0 if same else 1)' "$(SMOKE_DIR)/models" "$(SMOKE_LOCAL_DIR)/models"
