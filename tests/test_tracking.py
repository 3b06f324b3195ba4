"""Run tracking (intent_lib.tracking, intent_lib.baseline): each train run logged to a SQLite store in a tmp
folder, compared with its baseline; an unreachable server stops the command in one line before any step."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from intent_lib import baseline, tracking
from intent_lib.data import DatasetInfo
from intent_lib.files import read_json, sha256_of, write_json
from intent_lib.paths import (COMPARISON_PATH, EXECUTED_DIR, METRICS_PATH, MODEL_PATH, NOTEBOOKS_DIR, PROCESSED_DIR,
                              PREDICTIONS_DIR, REPORTS_DIR, RUNS_ARTIFACTS, RUNS_DB, RUNS_DIR, VARIABILITY_PATH,
                              card_path, validation_predictions_path)
from intent_lib.split import stratified_split, write_split
from intent_lib.predictions import save_predictions
from posos_client.server import free_port

REPO = Path(__file__).resolve().parents[1]
DECLARED = {"02_train": {"alpha": {"default": "0.1"}, "model_seed": {"default": "0"}},
            "03_evaluate": {"metrics_path": {"default": "str(paths.METRICS_PATH)"}}}


def write_predictions(root: Path, errors: int) -> None:
    """Validation probabilities that are right on every row but the first ``errors``."""
    val = pd.read_csv(root / PROCESSED_DIR / "val.csv")
    classes = np.sort(val["intention"].unique())
    predicted = val["intention"].to_numpy().copy()
    predicted[:errors] = np.roll(classes, 1)[np.searchsorted(classes, predicted[:errors])]
    proba = (predicted[:, None] == classes[None, :]).astype(float) * 0.9 + 0.1 / len(classes)
    save_predictions(validation_predictions_path(root / PREDICTIONS_DIR), val["ID"].to_numpy(), proba, classes)


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite store with MLflow's tables and nothing in them (creating the tables takes seconds)."""
    from mlflow import MlflowClient

    folder = tmp_path_factory.mktemp("store")
    MlflowClient(f"sqlite:///{folder / RUNS_DB}").search_experiments()
    return folder / RUNS_DB


@pytest.fixture
def root(tmp_path: Path, demo_frame: pd.DataFrame, empty_store: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder holding what the train steps leave: split, model and card, predictions, reports; and an
    empty local store."""
    train, val = stratified_split(demo_frame, val_size=0.25, seed=0)
    write_split(train, val, tmp_path / PROCESSED_DIR, tmp_path, seed=0, val_size=0.25,
                dataset=DatasetInfo("demo", "fixture", "d" * 64))
    model = tmp_path / MODEL_PATH
    model.parent.mkdir(parents=True)
    model.write_bytes(b"not really a pickle")
    write_json({"model_sha256": sha256_of(model), "model_version": "0.1.0+test", "git_commit": "abc123",
                "params": {"C": 1.0, "sentence_weight": 0.7}, "params_source": "defaults",
                "validation": {"answered_share": 0.9, "conformal_coverage": 0.93, "mean_set_size": 1.2, "n": 3},
                "uncertainty": {"target_accuracy": 0.9, "alpha": 0.1}}, card_path(model))
    write_predictions(tmp_path, errors=0)
    write_json({"summary": {"accuracy": 0.88, "f1_macro": 0.87, "ece": 0.05, "n": 51}}, tmp_path / METRICS_PATH)
    write_json({"bootstrap": {"summary": {"accuracy": {"point": 0.88, "low": 0.8, "high": 0.95}}},
                "seeds": {"summary": {"accuracy": {"mean": 0.81, "std": 0.03}}}}, tmp_path / VARIABILITY_PATH)
    (tmp_path / REPORTS_DIR / "03_evaluate.html").write_text("<html></html>", encoding="utf-8")
    (tmp_path / RUNS_DIR).mkdir()
    shutil.copy(empty_store, tmp_path / RUNS_DIR / RUNS_DB)
    for name in ("MLFLOW_TRACKING_URI", tracking.TRACKING_ENV, baseline.BASELINE_ENV):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def track(root: Path, steps: dict[str, str] | None = None, overrides: dict | None = None) -> tuple[str, str]:
    """One tracked train run over the files in ``root``: (run id, console line)."""
    with tracking.tracked_run(root) as tracked:
        baseline.check_choice(tracked)
        tracking.finish_run(tracked, steps or {"02_train": "ran"}, DECLARED, overrides or {})
        line = baseline.compare_with_baseline(tracked)
    return tracked.run_id, line


def client(root: Path):
    from mlflow import MlflowClient

    return MlflowClient(tracking.tracking_uri(root))


def test_a_run_is_logged_with_its_parameters_figures_tags_and_artefacts(root: Path) -> None:
    run_id, line = track(root, {"01_split": "reused", "02_train": "ran"}, {"alpha": 0.2})
    run = client(root).get_run(run_id)
    assert run.info.status == "FINISHED"
    experiment = client(root).get_experiment(run.info.experiment_id)
    assert experiment.artifact_location == str(root / RUNS_DIR / RUNS_ARTIFACTS)
    assert client(root).get_experiment(run.info.experiment_id).name == tracking.EXPERIMENT
    params = run.data.params
    assert params["02_train.alpha"] == "0.2" and params["02_train.model_seed"] == "0"  # override, default
    assert params["03_evaluate.metrics_path"] == "str(paths.METRICS_PATH)" and params["model.C"] == "1.0"
    metrics = run.data.metrics
    assert metrics["val.accuracy"] == 0.88 and metrics["val.ece"] == 0.05 and metrics["val.answered_share"] == 0.9
    assert metrics["val.conformal_coverage"] == 0.93 and metrics["val.mean_set_size"] == 1.2
    assert metrics["bootstrap.accuracy.low"] == 0.8 and metrics["seeds.accuracy.std"] == 0.03
    split = read_json(root / PROCESSED_DIR / "split.json")
    tags = run.data.tags
    assert tags["git_commit"] == "abc123" and tags["dataset_sha256"] == "d" * 64
    assert tags["model_sha256"] == sha256_of(root / MODEL_PATH)
    assert (tags["split_train_sha256"], tags["split_val_sha256"]) == (split["train_sha256"], split["val_sha256"])
    assert (tags["step.01_split"], tags["step.02_train"]) == ("reused", "ran")
    logged = {f.path for folder in ("model", "predictions", "reports")
              for f in client(root).list_artifacts(run_id, folder)}
    assert {"model/intent_model.pkl", "model/model_card.json", "predictions/validation_predictions.npz",
            "reports/metrics.json", "reports/variability.json", "reports/03_evaluate.html",
            "reports/comparison.json"} <= logged
    assert line == "no earlier run with the same split to compare with"
    assert read_json(root / COMPARISON_PATH) == {"run_id": run_id, "baseline_run_id": None, "line": line}


def test_the_next_run_is_compared_with_the_latest_on_the_same_split(root: Path) -> None:
    first, _ = track(root)
    second, line = track(root)
    assert line.startswith(f"vs run {first}: Δ accuracy +0.000 [0.000, 0.000]") and "within noise" in line
    write_predictions(root, errors=30)  # this run gets 30 of the 63 validation rows wrong
    third, line = track(root)
    assert line.startswith(f"vs run {second}: Δ accuracy -0.476") and "accuracy down" in line
    comparison = read_json(root / COMPARISON_PATH)
    assert comparison["baseline_run_id"] == second and comparison["deltas"]["accuracy"]["high"] < 0
    run = client(root).get_run(third)
    assert run.data.tags["baseline_run_id"] == second
    assert run.data.metrics["vs_baseline.accuracy"] == pytest.approx(-30 / 63)


def test_baseline_names_a_run_or_fails_before_anything_runs(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, _ = track(root)
    track(root)
    monkeypatch.setenv(baseline.BASELINE_ENV, first)
    assert track(root)[1].startswith(f"vs run {first}:")
    monkeypatch.setenv(baseline.BASELINE_ENV, "0123456789abcdef")
    with pytest.raises(tracking.TrackingError, match="^BASELINE=0123456789abcdef: no such run"):
        track(root)
    monkeypatch.setenv(baseline.BASELINE_ENV, baseline.CHAMPION)
    with pytest.raises(tracking.TrackingError, match="alias champion"):
        track(root)
    statuses = [r.info.status for r in client(root).search_runs([client(root).get_experiment_by_name(
        tracking.EXPERIMENT).experiment_id])]
    assert sorted(statuses) == ["FAILED", "FAILED", "FINISHED", "FINISHED", "FINISHED"]


def test_tracking_off_logs_nothing(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_json({"line": "an earlier run's"}, root / COMPARISON_PATH)
    monkeypatch.setenv(tracking.TRACKING_ENV, "off")
    with tracking.tracked_run(root) as tracked:
        assert tracked is None
    assert client(root).search_experiments(filter_string=f"name = '{tracking.EXPERIMENT}'") == []
    assert not (root / COMPARISON_PATH).exists()


@pytest.mark.slow
def test_an_unreachable_server_stops_the_run_in_one_line_before_any_step(root: Path) -> None:
    (root / NOTEBOOKS_DIR).symlink_to(REPO / NOTEBOOKS_DIR)
    env = {**os.environ, "POSOS_ROOT": str(root), "PYTHONPATH": str(REPO),
           "MLFLOW_TRACKING_URI": f"http://someone:secret@127.0.0.1:{free_port()}"}
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT", tracking.TRACKING_ENV):
        env.pop(name, None)
    run = subprocess.run([sys.executable, "-m", "intent_lib", "train"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 1
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "ERROR" in lines[0] and "TRACKING=off" in lines[0], run.stderr
    assert "secret" not in run.stderr
    seconds = int(re.search(r"failed after (\d+) s", lines[0]).group(1))
    assert seconds <= 10  # MLflow's defaults (7 retries, 120 s timeout) take minutes
    assert not (root / EXECUTED_DIR).exists()  # no step ran


def test_a_baseline_without_predictions_is_said_not_comparable(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, _ = track(root)
    store = client(root)
    bare = store.create_run(store.get_run(first).info.experiment_id).info.run_id  # a run that logged nothing
    store.set_terminated(bare)
    monkeypatch.setenv(baseline.BASELINE_ENV, bare)
    run_id, line = track(root)
    assert line.startswith(f"vs run {bare}: not comparable, its validation predictions could not be read")
    assert client(root).get_run(run_id).info.status == "FINISHED"


@pytest.mark.slow
def test_make_runs_serves_the_store_on_loopback(root: Path) -> None:
    import httpx

    run_id, _ = track(root)
    port = free_port()
    env = {**os.environ, "POSOS_ROOT": str(root)}
    server = subprocess.Popen(["make", "--no-print-directory", "runs", f"RUNS_PORT={port}"], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        found = None
        for _ in range(240):  # the server takes a while to start on a busy machine
            try:
                found = httpx.post(f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search", timeout=5,
                                   json={"experiment_ids": [client(root).get_run(run_id).info.experiment_id]})
                break
            except httpx.TransportError:
                time.sleep(1)
        assert found is not None and found.status_code == 200
        assert [r["info"]["run_id"] for r in found.json()["runs"]] == [run_id]
        assert "<title>MLflow</title>" in httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
