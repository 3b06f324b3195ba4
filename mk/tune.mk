# Hyperparameter search: `make tune [TRIALS=40] [TIMEOUT=s] [OBJECTIVE=f1_macro|accuracy]
# [STORAGE=memory|sqlite|URL] [WORKERS=1] [SAMPLER_SEED=0] [PRUNE=True]`; each set variable becomes a -p override of
# notebooks/05_tune. The run is on record in MLflow (a parent run, a child run per trial) unless TRACKING=off.
.PHONY: tune

TUNE_PARAMS := $(if $(TRIALS),-p 'n_trials=$(TRIALS)') $(if $(TIMEOUT),-p 'timeout=$(TIMEOUT)') \
  $(if $(OBJECTIVE),-p 'objective=$(OBJECTIVE)') $(if $(STORAGE),-p 'storage=$(STORAGE)') \
  $(if $(WORKERS),-p 'workers=$(WORKERS)') $(if $(SAMPLER_SEED),-p 'sampler_seed=$(SAMPLER_SEED)') \
  $(if $(PRUNE),-p 'prune=$(PRUNE)')

tune: $(VENV)/.installed ## Optuna search on the validation split (cheap trials, best re-scored in full, on record in MLflow) -> tuned parameters for the next make train (TRIALS TIMEOUT OBJECTIVE STORAGE WORKERS SAMPLER_SEED PRUNE)
	$(PY) -m intent_lib tune $(TUNE_PARAMS) $(TUNE_ARGS)
