"""Against a real MLflow tracking server: CI starts one on loopback (``.ci/run``: a PostgreSQL database of its own,
artefacts in a local folder served through it) and names it in ``POSOS_TEST_MLFLOW_URL``.

A train run on the demo data is on record there with its metrics, parameters and tags; its model is a registered
version; ``make promote`` makes it the champion; the API serving ``models:/posos-intent@champion`` (fetched through
the server) answers as the local model does. Skipped without the server, except in CI (``CI`` set), where a
missing server fails."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import msgspec
import pytest

from intent_lib.data import DEMO_DIR, load_questions
from intent_lib.files import read_json
from intent_lib.model_registry import CHAMPION, REGISTERED_MODEL, SHA_TAG, VERSION_TAG
from intent_lib.paths import METRICS_PATH, MODEL_PATH, PROCESSED_DIR, SPLIT_META, TEST_INPUTS, card_path
from intent_lib.tracking import EXPERIMENT
from posos_client.server import free_port, health, wait_healthy

REPO = Path(__file__).resolve().parents[1]
SERVER_ENV = "POSOS_TEST_MLFLOW_URL"
START_SECONDS = 300  # the server's start on a busy machine
STEPS = ("01_split", "02_train", "03_evaluate")  # enough for a registered model and its figures: CI stays lean
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server_url() -> str:
    url = os.environ.get(SERVER_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{SERVER_ENV} is not set: .ci/run starts the MLflow server these tests need")
        pytest.skip(f"{SERVER_ENV} names no MLflow server (CI starts one)")
    with httpx.Client() as client:  # CI starts it while the suite runs
        deadline = time.monotonic() + START_SECONDS
        while health(client, url) != 200:
            assert time.monotonic() < deadline, f"no MLflow server answers at {url} (CI's log: /tmp/ci-mlflow.log)"
            time.sleep(1)
    return url


def environment(root: Path, url: str) -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items()
            if not k.startswith(("POSOS_", "DATA_ARCHIVE", "MLFLOW_", "TRACKING", "BASELINE", "MODEL"))}
    return kept | {"POSOS_ROOT": str(root), "MLFLOW_TRACKING_URI": url, "RUNTIME": "local",
                   "POSOS_RUNTIME_DIR": str(root / "runtime")}


@pytest.fixture(scope="module")
def trained(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A demo project trained against the server: (root, run id, the runner's stdout)."""
    root = tmp_path_factory.mktemp("served-project")
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    run = subprocess.run([sys.executable, "-m", "intent_lib", "train", "--only", *STEPS], cwd=root,
                         capture_output=True, text=True, env=environment(root, server_url), timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    run_id = next(line.split("tracking run ")[1].split()[0] for line in run.stderr.splitlines()
                  if "tracking run " in line)
    return root, run_id, run.stdout


def mlflow_client(url: str):
    from mlflow import MlflowClient

    return MlflowClient(url)


def test_the_run_is_on_record_with_its_metrics_parameters_tags_and_artefacts(server_url: str, trained) -> None:
    root, run_id, stdout = trained
    assert "View run" not in stdout, "MLflow's own run link stays out of the console (tracking.QUIET_ENVIRONMENT)"
    client = mlflow_client(server_url)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == EXPERIMENT
    summary = read_json(root / METRICS_PATH)["summary"]
    card = read_json(card_path(root / MODEL_PATH))
    metrics = run.data.metrics
    assert metrics["val.accuracy"] == summary["accuracy"] and metrics["val.f1_macro"] == summary["f1_macro"]
    assert metrics["val.answered_share"] == card["validation"]["answered_share"]
    assert metrics["val.conformal_coverage"] == card["validation"]["conformal_coverage"]
    params = run.data.params
    assert params["02_train.model_seed"] == "0" and params["model.C"] == str(card["params"]["C"])
    split = read_json(root / PROCESSED_DIR / SPLIT_META)
    tags = run.data.tags
    assert tags["model_sha256"] == card["model_sha256"] and tags["dataset_sha256"] == split["dataset"]["sha256"]
    assert (tags["split_train_sha256"], tags["split_val_sha256"]) == (split["train_sha256"], split["val_sha256"])
    assert {f"step.{step}": "ran" for step in STEPS}.items() <= tags.items()
    logged = {f.path for folder in ("model", "reports") for f in client.list_artifacts(run_id, folder)}
    assert {"model/intent_model.pkl", "model/model_card.json", "reports/metrics.json"} <= logged


def test_a_3_trial_tune_is_a_parent_run_with_its_trials_as_child_runs(server_url: str, trained) -> None:
    root, train_run_id, _ = trained
    run = subprocess.run([sys.executable, "-m", "intent_lib", "tune", "-p", "n_trials=3", "-p", "n_resamples=50"],
                         cwd=root, capture_output=True, text=True, env=environment(root, server_url), timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    client = mlflow_client(server_url)
    experiment = client.get_run(train_run_id).info.experiment_id
    parents = client.search_runs([experiment], "tags.command = 'tune'")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(child.data.tags["trial"] for child in children) == ["0", "1", "2"]
    for child in children:
        assert child.data.params and "pruned" in child.data.tags and child.info.status == "FINISHED"
    assert parent.data.tags["best_trial"] in {"0", "1", "2"} and "best_params_written" in parent.data.tags


@pytest.fixture(scope="module")
def champion(server_url: str, trained) -> str:
    """The run's registered version, made the champion with `make promote`."""
    root, run_id, _ = trained
    version = mlflow_client(server_url).get_run(run_id).data.tags[VERSION_TAG]
    promote = subprocess.run(["make", "--no-print-directory", "promote", f"VERSION={version}"], cwd=REPO,
                             capture_output=True, text=True, env=environment(root, server_url), timeout=300)
    assert promote.returncode == 0, promote.stdout + promote.stderr
    return version


def test_the_model_is_a_registered_version_and_make_promote_makes_it_the_champion(server_url: str, trained,
                                                                                  champion: str) -> None:
    root, run_id, stdout = trained
    client = mlflow_client(server_url)
    version = client.get_model_version(REGISTERED_MODEL, champion)
    assert version.tags[SHA_TAG] == read_json(card_path(root / MODEL_PATH))["model_sha256"]
    # A fresh database holds this run's version; a reused one may hold the same bytes from an earlier run.
    assert f"{REGISTERED_MODEL} version {champion}" in stdout
    assert str(client.get_model_version_by_alias(REGISTERED_MODEL, CHAMPION).version) == champion


def test_the_api_serving_the_champion_answers_as_the_local_model(server_url: str, trained, champion: str,
                                                                  tmp_path: Path) -> None:
    from api.service import ModelService

    root, _, _ = trained
    questions = load_questions(DEMO_DIR / TEST_INPUTS)["question"].tolist()
    local = ModelService(root / MODEL_PATH)
    local.load()
    expected = msgspec.to_builtins(local.predict(questions, 3))
    port = free_port()
    log = tmp_path / "api.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(["make", "--no-print-directory", "api", f"MODEL=models:/{REGISTERED_MODEL}@{CHAMPION}",
                                   f"PORT={port}", "WORKERS=1"], cwd=REPO, env=environment(root, server_url),
                                  stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=60) as client:
            wait_healthy(client, url, 240, server, log)
            assert client.get(f"{url}/version").json()["registry"]["version"] == champion
            answered = client.post(f"{url}/intent", json={"queries": questions, "top_k": 3}).json()["predictions"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)
    assert len(answered) == len(expected)
    for got, want in zip(answered, expected):
        assert (got["intent"], got["unsure"], got["reason"]) == (want["intent"], want["unsure"], want["reason"])
        assert [c["intent"] for c in got["candidates"]] == [c["intent"] for c in want["candidates"]]
        assert got["confidence"] == pytest.approx(want["confidence"], abs=1e-6)
