"""Tuning: search space and recipe, storages, workers sharing one study (SQLite, PostgreSQL), the full re-score that
decides against the defaults, the trials table, notebook 05 on the demo data."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import optuna
import pytest

from intent_lib import pipeline, tracking, tuning, tuning_results, tuning_storage, tuning_workers
from intent_lib.best_params import read_best_params, summary_text, write_best_params
from intent_lib.classifier import CalibratedLinearSVC
from intent_lib.model import ModelParams, build_model
from intent_lib.paths import BEST_PARAMS_PATH, OPTUNA_DB, OPTUNA_WORKERS_DB, PROCESSED_DIR, RUNS_DIR, TUNING_PATH
from intent_lib.refit import SplitData
from intent_lib.split import Split

REPO = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get("POSOS_TEST_POSTGRES_URL")


def test_the_defaults_lie_in_the_search_space() -> None:
    trial = optuna.trial.FixedTrial(tuning.searched(ModelParams()))
    assert tuning.suggest_params(trial) == ModelParams()


def test_storage_choices(tmp_path: Path) -> None:
    assert tuning_storage.resolve_storage("memory", 1, tmp_path)[0] is None
    (tmp_path / OPTUNA_WORKERS_DB).write_text("old study")
    url, note = tuning_storage.resolve_storage("memory", 2, tmp_path)
    assert url == f"sqlite:///{tmp_path / OPTUNA_WORKERS_DB}" and "SQLite" in note
    assert not (tmp_path / OPTUNA_WORKERS_DB).exists()  # a fresh study each run, as in memory
    assert tuning_storage.resolve_storage("sqlite", 2, tmp_path)[0] == f"sqlite:///{tmp_path / OPTUNA_DB}"
    url = "postgresql://tuner:s3cret@db.example:5432/optuna"
    assert tuning_storage.resolve_storage(url, 4, tmp_path)[0] == url
    assert "s3cret" not in tuning_storage.redact(url) and "db.example" in tuning_storage.redact(url)
    assert tuning_workers.shares(7, 3) == [3, 2, 2]


def test_postgresql_urls_get_the_installed_driver() -> None:
    url = tuning_storage.database_url("postgresql://u@h/db")
    assert url in ("postgresql://u@h/db", "postgresql+psycopg2://u@h/db")
    assert tuning_storage.database_url("sqlite:///x.db") == "sqlite:///x.db"


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
    study = tuning_workers.run_search(root, study, url, n_trials=n_trials, timeout=None, workers=2, seed=0)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == n_trials
    assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in trials)
    defaults = [t for t in trials if t.user_attrs.get("default")]
    assert len(defaults) == 1 and defaults[0].number == 0, "the enqueued defaults ran once, first"
    workers = {t.user_attrs["worker"] for t in trials if not t.user_attrs.get("default")}
    assert len(workers) == 2 and defaults[0].user_attrs["worker"] not in workers, "both worker processes ran trials"
    default = tuning_results.default_trial(study)
    assert default is not None and study.best_value >= default.value


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
            optuna.delete_study(study_name=name, storage=tuning_storage.open_storage(POSTGRES_URL))
        except KeyError:
            pass


def test_a_trial_fits_the_model_calibrated_on_fewer_folds(trained_model_dir: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A trial's classifier is calibrated on ``SEARCH_FOLDS`` folds, and its predictions are the full pipeline's
    with that many folds; without ``folds``, refits keep the model's own recipe (five)."""
    split = Split.read(trained_model_dir / PROCESSED_DIR)
    train, val = split.frames(trained_model_dir)
    data = SplitData(split, trained_model_dir)
    params = ModelParams(sentence_weight=0.0)
    folds_fitted = []
    fit = CalibratedLinearSVC.fit
    monkeypatch.setattr(CalibratedLinearSVC, "fit", lambda self, X, y: folds_fitted.append(self.cv) or fit(self, X, y))
    score = tuning.Objective(data, "accuracy", prune=False)(optuna.trial.FixedTrial(tuning.searched(params)))
    assert folds_fitted == [tuning.SEARCH_FOLDS] and tuning.SEARCH_FOLDS < CalibratedLinearSVC().cv
    model = build_model(params).set_params(classifier__cv=tuning.SEARCH_FOLDS)
    predicted = model.fit(train["question"].tolist(), train["intention"]).predict(val["question"].tolist())
    np.testing.assert_array_equal(data.predict(params, folds=tuning.SEARCH_FOLDS), predicted)
    assert score == data.scores(predicted)["accuracy"]
    folds_fitted.clear()
    data.predict(params)
    assert folds_fitted == [CalibratedLinearSVC().cv]


def _trial(number: int, params: dict, value: float | None, state=optuna.trial.TrialState.COMPLETE,
           **attrs) -> optuna.trial.FrozenTrial:
    distributions = {name: optuna.distributions.FloatDistribution(0.0, 5.0) for name in params}
    return optuna.trial.create_trial(params=params, distributions=distributions, value=value, state=state,
                                     user_attrs=attrs)


def test_the_full_recipe_decides_not_the_search_score(trained_model_dir: Path, tmp_path: Path) -> None:
    """A trial that led the search with a lucky score is refitted with the full recipe; the defaults, refitted
    the same way, stay when it does not beat them, and a stale best_params.json is removed."""
    split = Split.read(trained_model_dir / PROCESSED_DIR)
    data = SplitData(split, trained_model_dir)
    weak = {"C": 0.05, "vector_weight": 0.0, "sentence_weight": 0.0, "class_weight_power": 1.0}
    study = optuna.create_study(direction="maximize")
    study.add_trial(_trial(0, {"C": 1.0}, 0.2, default=True))
    study.add_trial(_trial(1, weak, 0.99))
    study.set_user_attr("objective", "accuracy")
    rescored = tuning_results.rescore(data, study, n_resamples=50)
    assert rescored.best.number == 1 and rescored.tuned == ModelParams.from_dict(weak)
    assert rescored.scores["default"] == data.scores(data.predict(ModelParams()))  # the full recipe, not the search's
    assert rescored.scores["tuned"] == data.scores(data.predict(rescored.tuned))
    assert rescored.scores["tuned"]["accuracy"] < rescored.scores["default"]["accuracy"] and not rescored.wins
    record = tuning_results.best_params_record(study, rescored, None, split, 0, {}, "abc")
    assert record["params"] == ModelParams().to_dict() and record["trial"] == 1
    assert record["score"] == rescored.scores["tuned"]["accuracy"] and record["study"]["search_score"] == 0.99
    stale = tmp_path / "best_params.json"
    stale.write_text("{}")
    assert not write_best_params(record, stale) and not stale.exists()
    better = tuning_results.Rescored(rescored.best, "accuracy", {"default": {"accuracy": 0.5}, "tuned": {"accuracy": 0.6}},
                                     rescored.comparison)
    assert better.wins and tuning_results.best_params_record(study, better, None, split, 0, {}, "abc")["params"] == \
        ModelParams.from_dict(weak).to_dict()


def test_the_trials_table_has_a_column_per_trial() -> None:
    """Whatever the number of parameters, the report's table stays narrow: the best trials as columns."""
    study = optuna.create_study(direction="maximize")
    for number in range(14):
        study.add_trial(_trial(number, {"C": number / 10, "vector_weight": 1.0}, number / 100, seconds=2.0,
                               default=number == 0))
    study.add_trial(_trial(14, {"C": 3.0, "vector_weight": 1.0}, None, optuna.trial.TrialState.PRUNED))
    top = tuning_results.top_trials(tuning_results.trial_table(study), ["C", "vector_weight"], n=10)
    assert list(top.columns) == [f"trial {n}" for n in range(13, 3, -1)]
    assert list(top.index) == ["search score", "seconds", "C", "vector_weight"]
    assert top.loc["C", "trial 13"] == 1.3 and top.loc["search score", "trial 13"] == 0.13
    assert list(tuning_results.top_trials(tuning_results.trial_table(study), ["C"], n=20).columns)[-1] == \
        "trial 0 (defaults)"


@pytest.mark.slow
def test_tune_notebook_writes_best_params_that_train_reads(tmp_path: Path, trained_model_dir: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "project"
    shutil.copytree(trained_model_dir, root)
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    monkeypatch.setenv("POSOS_ROOT", str(root))
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the kernel imports this checkout, whatever the venv points at
    monkeypatch.setenv(tracking.TRACKING_ENV, "off")
    (root / BEST_PARAMS_PATH).parent.mkdir(parents=True, exist_ok=True)
    (root / BEST_PARAMS_PATH).write_text("{}")  # stale: must be replaced, or removed when the defaults win
    pipeline.run_notebooks(root, ("05_tune",), {"n_trials": 3, "n_resamples": 50, "objective": "accuracy"})
    record = json.loads((root / TUNING_PATH).read_text(encoding="utf-8"))
    params, source = read_best_params(root / BEST_PARAMS_PATH)
    assert params == ModelParams.from_dict(record["params"])
    assert (root / BEST_PARAMS_PATH).exists() == (record["score"] > record["default_score"])
    if params == ModelParams():
        assert not (root / BEST_PARAMS_PATH).exists() and source.startswith("defaults")
        assert "defaults stayed best" in summary_text(record, BEST_PARAMS_PATH)
    else:
        written = json.loads((root / BEST_PARAMS_PATH).read_text(encoding="utf-8"))
        assert written == {k: v for k, v in record.items() if k != "measurement"}, "the report adds only its timing"
        assert source.startswith("best_params.json: tuned") and "objective accuracy" in source
        assert "Wrote" in summary_text(record, BEST_PARAMS_PATH)
    assert record["measurement"]["command"] == "make tune TRIALS=3 OBJECTIVE=accuracy WORKERS=1"  # make results
    assert set(record["params"]) == set(ModelParams().to_dict())
    assert record["objective"] == "accuracy" and record["study"]["trials"]["complete"] == 3
    assert record["study"]["recipe"] == {"search_folds": tuning.SEARCH_FOLDS, "full_folds": 5}
    assert record["study"]["seconds"]["search"] > 0 and record["study"]["seconds"]["rescore"] > 0
    assert record["score"] == record["scores"]["accuracy"] and 0 <= record["study"]["search_score"] <= 1
    data = SplitData(Split.read(root / PROCESSED_DIR), root)
    assert record["default_score"] == data.scores(data.predict(ModelParams()))["accuracy"]  # the full recipe
    for row in record["bootstrap"]["intervals"]:
        assert row["low"] <= row["point"] <= row["high"], row
        if row["config"] != "tuned - default":
            assert 0 <= row["low"] and row["high"] <= 1
    tuned_row = next(r for r in record["bootstrap"]["intervals"] if (r["config"], r["metric"]) == ("tuned", "accuracy"))
    assert tuned_row["point"] == pytest.approx(record["score"])
    html = (root / "reports" / "05_tune.html").read_text(encoding="utf-8")
    assert "optimistic" in html and html.count('src="data:image/svg+xml') >= 3 and "Not on record" in html
    assert not (root / RUNS_DIR).exists()  # TRACKING=off
