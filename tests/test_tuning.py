"""Tuning: search space, storages, workers sharing one study (SQLite, PostgreSQL), notebook 05 on the demo data."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import optuna
import pytest

from intent_lib import pipeline, tuning
from intent_lib.best_params import read_best_params, summary_text
from intent_lib.model import ModelParams
from intent_lib.paths import BEST_PARAMS_PATH, OPTUNA_DB, OPTUNA_WORKERS_DB, PROCESSED_DIR, TUNING_PATH
from intent_lib.split import Split

REPO = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get("POSOS_TEST_POSTGRES_URL")


def test_the_defaults_lie_in_the_search_space() -> None:
    trial = optuna.trial.FixedTrial(tuning.searched(ModelParams()))
    assert tuning.suggest_params(trial) == ModelParams()


def test_storage_choices(tmp_path: Path) -> None:
    assert tuning.resolve_storage("memory", 1, tmp_path)[0] is None
    (tmp_path / OPTUNA_WORKERS_DB).write_text("old study")
    url, note = tuning.resolve_storage("memory", 2, tmp_path)
    assert url == f"sqlite:///{tmp_path / OPTUNA_WORKERS_DB}" and "SQLite" in note
    assert not (tmp_path / OPTUNA_WORKERS_DB).exists()  # a fresh study each run, as in memory
    assert tuning.resolve_storage("sqlite", 2, tmp_path)[0] == f"sqlite:///{tmp_path / OPTUNA_DB}"
    url = "postgresql://tuner:s3cret@db.example:5432/optuna"
    assert tuning.resolve_storage(url, 4, tmp_path)[0] == url
    assert "s3cret" not in tuning.redact(url) and "db.example" in tuning.redact(url)
    assert tuning.shares(7, 3) == [3, 2, 2]


def test_postgresql_urls_get_the_installed_driver() -> None:
    url = tuning.database_url("postgresql://u@h/db")
    assert url in ("postgresql://u@h/db", "postgresql+psycopg2://u@h/db")
    assert tuning.database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_a_study_refuses_another_objective(trained_model_dir: Path, tmp_path: Path) -> None:
    split = Split.read(trained_model_dir / PROCESSED_DIR)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    tuning.open_study(url, "s", "accuracy", split)
    assert len(tuning.open_study(url, "s", "accuracy", split).trials) == 1  # joined; default enqueued once
    with pytest.raises(ValueError, match="other settings"):
        tuning.open_study(url, "s", "f1_macro", split)


def _two_workers(root: Path, url: str, name: str, n_trials: int = 5) -> None:
    split = Split.read(root / PROCESSED_DIR)
    study = tuning.open_study(url, name, "f1_macro", split, seed=0)
    study = tuning.run_search(root, study, url, n_trials=n_trials, timeout=None, workers=2, seed=0)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == n_trials
    assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in trials)
    defaults = [t for t in trials if t.user_attrs.get("default")]
    assert len(defaults) == 1 and defaults[0].number == 0, "the enqueued defaults ran once, first"
    workers = {t.user_attrs["worker"] for t in trials if not t.user_attrs.get("default")}
    assert len(workers) == 2 and defaults[0].user_attrs["worker"] not in workers, "both worker processes ran trials"
    assert tuning.default_trial(study) is not None and study.best_value >= tuning.default_trial(study).value


@pytest.mark.slow
def test_two_workers_share_a_sqlite_study(trained_model_dir: Path, tmp_path: Path) -> None:
    _two_workers(trained_model_dir, f"sqlite:///{tmp_path / 'shared.db'}", "two-workers")


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL, reason="set POSOS_TEST_POSTGRES_URL (e.g. postgresql://posos:posos@127.0.0.1:5432/optuna_test) to run on PostgreSQL")
def test_two_workers_share_a_postgresql_study(trained_model_dir: Path) -> None:
    name = f"posos-test-{uuid.uuid4().hex[:12]}"
    try:
        _two_workers(trained_model_dir, POSTGRES_URL, name)
    finally:
        try:
            optuna.delete_study(study_name=name, storage=tuning._storage(POSTGRES_URL))
        except KeyError:
            pass


@pytest.mark.slow
def test_tune_notebook_writes_best_params_that_train_reads(tmp_path: Path, trained_model_dir: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "project"
    shutil.copytree(trained_model_dir, root)
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    monkeypatch.setenv("POSOS_ROOT", str(root))
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the kernel imports this checkout, whatever the venv points at
    (root / BEST_PARAMS_PATH).parent.mkdir(parents=True, exist_ok=True)
    (root / BEST_PARAMS_PATH).write_text("{}")  # stale: must be replaced, or removed when the defaults win
    pipeline.run_notebooks(root, ("05_tune",), {"n_trials": 3, "n_resamples": 50, "objective": "accuracy"})
    record = json.loads((root / TUNING_PATH).read_text(encoding="utf-8"))
    params, source = read_best_params(root / BEST_PARAMS_PATH)
    assert params == ModelParams.from_dict(record["params"])
    if params == ModelParams():
        assert not (root / BEST_PARAMS_PATH).exists() and source.startswith("defaults")
        assert "defaults stayed best" in summary_text(record, BEST_PARAMS_PATH)
    else:
        assert json.loads((root / BEST_PARAMS_PATH).read_text(encoding="utf-8")) == record
        assert source.startswith("best_params.json: tuned") and "objective accuracy" in source
        assert "Wrote" in summary_text(record, BEST_PARAMS_PATH)
    assert set(record["params"]) == set(ModelParams().to_dict())
    assert record["objective"] == "accuracy" and record["study"]["trials"]["complete"] == 3
    assert record["score"] >= record["default_score"] and record["score"] == record["scores"]["accuracy"]
    assert "optimistic" in record["warning"]
    for row in record["bootstrap"]["intervals"]:
        assert row["low"] <= row["point"] <= row["high"], row
        if row["config"] != "tuned - default":
            assert 0 <= row["low"] and row["high"] <= 1
    tuned_row = next(r for r in record["bootstrap"]["intervals"] if (r["config"], r["metric"]) == ("tuned", "accuracy"))
    assert tuned_row["point"] == pytest.approx(record["score"])
    html = (root / "reports" / "05_tune.html").read_text(encoding="utf-8")
    assert "optimistic" in html and html.count('src="data:image/svg+xml') >= 3
