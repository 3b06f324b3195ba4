# The run store: every `make train` is an MLflow run there (intent_lib/tracking.py). `make runs` opens the MLflow UI
# on 127.0.0.1:RUNS_PORT over it: the local SQLite store, or MLFLOW_TRACKING_URI's. Included by the main Makefile.
RUNS_PORT ?= 5000
RUNS_ARGS ?=
# The store's URI and, for a SQLite store, its artefact folder (evaluated only when used).
RUNS_URI = $(shell python3 -c 'from intent_lib.tracking import tracking_uri; from intent_lib.paths import project_root; print(tracking_uri(project_root()))')
RUNS_ARTIFACT_ROOT = $(shell python3 -c 'from intent_lib.tracking import artifact_location; print(artifact_location("$(RUNS_URI)") or "")')

.PHONY: runs promote

runs: $(VENV)/.installed ## Browse the tracked runs (metrics, parameters, comparisons) in the MLflow UI on 127.0.0.1:RUNS_PORT (5000)
	@case "$(RUNS_URI)" in http://*|https://*) echo "runs: MLFLOW_TRACKING_URI names a tracking server: its UI is at that address."; exit 0;; esac; \
	$(VENV)/bin/mlflow server --backend-store-uri "$(RUNS_URI)" \
	  $(if $(RUNS_ARTIFACT_ROOT),--default-artifact-root "$(RUNS_ARTIFACT_ROOT)") \
	  --host 127.0.0.1 --port $(RUNS_PORT) --workers 1 $(RUNS_ARGS)

promote: $(VENV)/.installed ## Make registered version VERSION the champion (models:/posos-intent@champion, what make api MODEL= serves)
	$(PY) -m intent_lib promote "$(VERSION)"
