"""``make tune`` on record: one MLflow parent run (tag ``command=tune``) in the experiment ``posos-intent``, and
each Optuna trial this run finished as a child run of it (tag ``mlflow.parentRunId``).

A child run holds the trial's parameters, its search-recipe scores (``search.<metric>``), its pruning checkpoint
score, its seconds, and whether it was pruned (tag ``pruned``; a pruned trial has no search score), with the
trial's own start and end times. The parent holds the search settings, the best trial (tag ``best_trial``, its
parameters as ``best.<name>``), its search and full-recipe scores against the defaults' full-recipe scores, the
trial counts, whether ``best_params.json`` was written, and ``reports/tuning.json`` as an artefact.

The store, its quiet environment, ``TRACKING=off`` and ``TrackingError`` are ``intent_lib.tracking``'s. The
split's hashes are tagged ``split.*``, not ``split_*``: a train run's baseline is the latest run with
``split_*`` tags, and a tune run holds no predictions to compare with.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import optuna

from intent_lib import tracking
from intent_lib.paths import TUNING_PATH
from intent_lib.tracking import REPORTS_ARTIFACTS_DIR, TrackedRun
from intent_lib.tuning_results import Rescored

COMMAND = "tune"
PARENT_TAG = "mlflow.parentRunId"  # how MLflow nests a run under another
STATUS = {optuna.trial.TrialState.COMPLETE: "FINISHED", optuna.trial.TrialState.PRUNED: "FINISHED",
          optuna.trial.TrialState.FAIL: "FAILED"}


def _millis(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def _figures(prefix: str, scores: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}.{name}": float(value) for name, value in scores.items()}


def log_trial(parent: TrackedRun, trial: optuna.trial.FrozenTrial, objective: str) -> str:
    """Log one finished trial as a child run of ``parent``; return its run id."""
    pruned = trial.state == optuna.trial.TrialState.PRUNED
    run = parent.client.create_run(
        parent.experiment_id, start_time=_millis(trial.datetime_start), run_name=f"trial {trial.number}",
        tags={PARENT_TAG: parent.run_id, "command": f"{COMMAND}.trial", "trial": str(trial.number),
              "state": trial.state.name, "pruned": str(pruned).lower(),
              "default": str(bool(trial.user_attrs.get("default"))).lower()})
    child = TrackedRun(parent.client, run.info.run_id, parent.experiment_id, parent.root)
    tracking.log_values(child, {k: str(v) for k, v in trial.params.items()}, {})
    metrics = _figures("search", trial.user_attrs.get("scores", {}))
    if pruned or len(trial.intermediate_values) > 1:  # the pruning checkpoint is the first step a trial reports
        metrics[f"checkpoint.{objective}"] = float(trial.intermediate_values[min(trial.intermediate_values)])
    if "seconds" in trial.user_attrs:
        metrics["seconds"] = float(trial.user_attrs["seconds"])
    tracking.log_figures(child, metrics)
    parent.client.set_terminated(child.run_id, STATUS.get(trial.state, "FAILED"),
                                 end_time=_millis(trial.datetime_complete))
    return child.run_id


def log_tune(parent: TrackedRun | None, trials: list[optuna.trial.FrozenTrial], rescored: Rescored,
             record: dict[str, Any], written: bool, settings: dict[str, Any]) -> None:
    """Log this run's ``trials`` as child runs, and the outcome on the parent (nothing when tracking is off).

    ``settings`` are the search's parameters (the notebook's, storage URL without its password), ``record``
    the best-parameters record, ``written`` whether ``best_params.json`` was written.
    """
    if parent is None:
        return
    for trial in trials:
        log_trial(parent, trial, rescored.objective)
    best = rescored.best
    params = {k: str(v) for k, v in settings.items()} | {f"best.{k}": str(v) for k, v in best.params.items()}
    tags = {"best_trial": str(best.number), "best_params_written": str(written).lower(),
            "git_commit": str(record["git_commit"]),
            "split.train_sha256": record["split"]["train_sha256"], "split.val_sha256": record["split"]["val_sha256"]}
    tracking.log_values(parent, params, tags)
    metrics = {f"best.search.{rescored.objective}": float(best.value)}
    metrics |= _figures("best.full", rescored.scores["tuned"]) | _figures("default.full", rescored.scores["default"])
    metrics |= _figures("trials", record["study"]["trials"])
    tracking.log_figures(parent, metrics)
    if (parent.root / TUNING_PATH).is_file():
        parent.client.log_artifact(parent.run_id, str(parent.root / TUNING_PATH), REPORTS_ARTIFACTS_DIR)

