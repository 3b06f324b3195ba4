"""``make tune`` on record (intent_lib.tune_tracking): a parent run in a local SQLite store, a child run per trial
(parameters, score, pruned or not), the outcome on the parent; read back through ``MlflowClient``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from intent_lib import pipeline, tracking, tune_tracking, tuning
from intent_lib.model import ModelParams
from intent_lib.paths import BEST_PARAMS_PATH, RUNS_DIR, TUNING_PATH
from posos_client.server import free_port

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder whose local store (``mlruns/``) tracking writes to."""
    for name in ("MLFLOW_TRACKING_URI", tracking.TRACKING_ENV):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def client(root: Path):
    from mlflow import MlflowClient

    return MlflowClient(tracking.tracking_uri(root))


def runs(root: Path) -> list:
    store = client(root)
    experiment = store.get_experiment_by_name(tracking.EXPERIMENT)
    return store.search_runs([experiment.experiment_id]) if experiment else []


def test_each_trial_is_a_child_run_that_says_whether_it_was_pruned(store: Path) -> None:
    complete = optuna.trial.create_trial(
        params={"C": 1.0}, distributions={"C": optuna.distributions.FloatDistribution(0.05, 5.0, log=True)},
        value=0.8, intermediate_values={100: 0.7, 200: 0.8},
        user_attrs={"scores": {"accuracy": 0.8, "f1_macro": 0.75}, "seconds": 12.5, "default": True})
    pruned = optuna.trial.create_trial(
        params={"C": 0.1}, distributions={"C": optuna.distributions.FloatDistribution(0.05, 5.0, log=True)},
        state=optuna.trial.TrialState.PRUNED, intermediate_values={100: 0.5}, user_attrs={"seconds": 4.0})
    failed = optuna.trial.create_trial(
        params={"C": 0.2}, distributions={"C": optuna.distributions.FloatDistribution(0.05, 5.0, log=True)},
        state=optuna.trial.TrialState.FAIL)
    study = optuna.create_study(direction="maximize")
    for trial in (complete, pruned, failed):
        study.add_trial(trial)
    with tracking.tracked_run(store, command=tune_tracking.COMMAND) as parent:
        ids = [tune_tracking.log_trial(parent, trial, "accuracy") for trial in study.trials]
    found = {run.info.run_id: run for run in runs(store)}
    assert found[parent.run_id].data.tags["command"] == "tune" and found[parent.run_id].info.status == "FINISHED"
    first, second, third = (found[i] for i in ids)
    for child, trial in zip((first, second, third), study.trials):
        assert child.data.tags["mlflow.parentRunId"] == parent.run_id and child.data.tags["trial"] == str(trial.number)
        assert child.info.start_time == int(trial.datetime_start.timestamp() * 1000)
    assert first.data.params == {"C": "1.0"} and first.data.tags["pruned"] == "false"
    assert first.data.tags["default"] == "true" and first.info.status == "FINISHED"
    assert first.data.metrics == {"search.accuracy": 0.8, "search.f1_macro": 0.75, "checkpoint.accuracy": 0.7,
                                  "seconds": 12.5}
    assert second.data.tags["pruned"] == "true" and second.info.status == "FINISHED"
    assert second.data.metrics == {"checkpoint.accuracy": 0.5, "seconds": 4.0}  # no search score
    assert third.info.status == "FAILED" and third.data.tags["pruned"] == "false"


def test_tracking_off_opens_no_tune_run(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tracking.TRACKING_ENV, "off")
    with tracking.tracked_run(store, command=tune_tracking.COMMAND) as parent:
        assert parent is None
    assert not (store / RUNS_DIR).exists()


@pytest.mark.slow
def test_make_tune_is_a_parent_run_with_a_child_run_per_trial(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 3-trial tune on the demo data, read back through MlflowClient."""
    for name in ("MLFLOW_TRACKING_URI", tracking.TRACKING_ENV):
        monkeypatch.delenv(name, raising=False)
    pipeline.run_notebooks(project, ("05_tune",), {"n_trials": 3, "n_resamples": 50, "objective": "accuracy"})
    record = json.loads((project / TUNING_PATH).read_text(encoding="utf-8"))
    found = runs(project)
    parents = [run for run in found if run.data.tags.get("command") == "tune"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    children = sorted((run for run in found if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id),
                      key=lambda run: int(run.data.tags["trial"]))
    assert len(found) == 4 and [run.data.tags["trial"] for run in children] == ["0", "1", "2"]
    searched = {k: str(v) for k, v in tuning.searched(ModelParams()).items()}
    assert children[0].data.params == searched and children[0].data.tags["default"] == "true"
    for child in children:
        assert set(child.data.params) == set(searched) and child.data.tags["pruned"] == "false"  # 3 < startup trials
        assert 0 <= child.data.metrics["search.accuracy"] <= 1 and child.info.status == "FINISHED"
    best = max(children, key=lambda run: run.data.metrics["search.accuracy"])
    tags, metrics, params = parent.data.tags, parent.data.metrics, parent.data.params
    assert tags["best_trial"] == best.data.tags["trial"] == str(record["trial"])
    assert tags["best_params_written"] == str((project / BEST_PARAMS_PATH).exists()).lower()
    assert metrics["best.search.accuracy"] == best.data.metrics["search.accuracy"] == record["study"]["search_score"]
    assert metrics["best.full.accuracy"] == record["score"] and metrics["default.full.accuracy"] == record["default_score"]
    assert metrics["trials.complete"] == 3 and params["n_trials"] == "3" and params["objective"] == "accuracy"
    assert {f"best.{k}" for k in searched} <= set(params)
    assert "split_val_sha256" not in tags and tags["split.val_sha256"] == record["split"]["val_sha256"]  # no baseline
    assert [f.path for f in client(project).list_artifacts(parent.info.run_id, "reports")] == ["reports/tuning.json"]
    html = (project / "reports" / "05_tune.html").read_text(encoding="utf-8")
    assert f"MLflow run `{parent.info.run_id}`" in html or parent.info.run_id in html


@pytest.mark.slow
def test_an_unreachable_server_stops_tune_before_any_trial(project: Path) -> None:
    env = {**os.environ, "POSOS_ROOT": str(project), "PYTHONPATH": str(REPO),
           "MLFLOW_TRACKING_URI": f"http://someone:secret@127.0.0.1:{free_port()}"}
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT", tracking.TRACKING_ENV):
        env.pop(name, None)
    run = subprocess.run([sys.executable, "-m", "intent_lib", "tune", "-p", "n_trials=3"], cwd=project, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 1 and "secret" not in run.stderr
    # The runner's own lines (a kernel stopped after a failed cell may log a ZMQ error of its own: ipykernel's noise)
    errors = [line for line in run.stderr.splitlines() if re.match(r"\d\d:\d\d:\d\d ERROR ", line)]
    assert len(errors) == 1 and "TrackingError" in errors[0] and "TRACKING=off" in errors[0], run.stderr
    assert int(re.search(r"failed after (\d+) s", errors[0]).group(1)) <= 10
    assert not (project / TUNING_PATH).exists()
