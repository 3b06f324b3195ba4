# The API: serve the model (make api), classify the test questions through it (make test), benchmark it
# (make bench-api), and the containerised smoke test (make smoke-containers). Included by the main Makefile.

API_PORT ?= 4002
API_URL ?= http://localhost:$(API_PORT)
API_IMAGE ?= posos-intent-api:latest
API_CONTAINER ?= posos-intent-api
MODEL_DIR ?= models
TEST_ARGS ?=
BENCH_API_ARGS ?=
SMOKE_DIR ?= build/smoke
SMOKE_PORT ?= 4012

.PHONY: api api-image test bench-api smoke-containers

api-image: ## Build the API image (api.Dockerfile)
	$(DOCKER) build -f api.Dockerfile -t $(API_IMAGE) .

ifeq ($(RUNTIME),docker)
api: api-image ## Serve the model on port 4002 (the api.Dockerfile image, or uvicorn in .venv); Ctrl-C stops it
	$(DOCKER) run --rm --name $(API_CONTAINER) -p $(API_PORT):4002 \
	  -v "$(abspath $(MODEL_DIR)):/app/models:ro" $(API_IMAGE)
else
api: $(VENV)/.installed
	$(PY) -m uvicorn api.app:app --host 0.0.0.0 --port $(API_PORT)
endif

test: $(VENV)/.installed ## Classify the test questions through the API at API_URL (starts one if none answers) into the submission CSV
	$(PY) -m posos_client.submit --url "$(API_URL)" $(TEST_ARGS)

bench-api: $(VENV)/.installed ## API benchmark: GET latency p50/p95/p99 and throughput at concurrency 1/8/32, batch throughput
	$(PY) bench/bench_api.py --url "$(API_URL)" $(BENCH_API_ARGS)

# Build both images, train on the demo data in the trainer container (in $(SMOKE_DIR), leaving data/ and models/
# alone), serve that model from the api container on $(SMOKE_PORT), and run `make test` against it.
smoke-containers: $(VENV)/.installed ## Containerised smoke test: both images, demo training, API container, make test
	$(DOCKER) build -f trainer.Dockerfile -t $(TRAINER_IMAGE) .
	$(DOCKER) build -f api.Dockerfile -t $(API_IMAGE) .
	rm -rf "$(SMOKE_DIR)" && mkdir -p "$(SMOKE_DIR)/data" "$(SMOKE_DIR)/models" "$(SMOKE_DIR)/reports"
	$(DOCKER) run --rm $(DOCKER_USER) -v "$(abspath $(SMOKE_DIR))/data:/app/data" \
	  -v "$(abspath $(SMOKE_DIR))/models:/app/models" -v "$(abspath $(SMOKE_DIR))/reports:/app/reports" \
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
