"""Variability: vectorised bootstrap scores, the fast refit, and notebook 04 on the demo data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from intent_lib import pipeline
from intent_lib.artefacts import load_checked
from intent_lib.metrics import SUMMARY_KEYS, bootstrap_scores, format_interval, summary_scores, weighted_scores
from intent_lib.model import ModelParams, fit_model
from intent_lib.paths import MODEL_PATH, PROCESSED_DIR
from intent_lib.refit import FeatureCache, SplitData
from intent_lib.split import Split
from intent_lib.variability import bootstrap_predictions, refit_over_seeds



def _predictions(n: int = 400, k: int = 7, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    return y, np.where(rng.random(n) < 0.7, y, rng.integers(0, k, n))


def test_weighted_scores_of_unit_weights_are_the_summary_scores() -> None:
    y, p = _predictions()
    scores, f1 = weighted_scores(np.ones(len(y)), y, p, np.arange(7))
    assert scores.iloc[0].to_dict() == pytest.approx(summary_scores(y, p, labels=np.arange(7)))
    assert f1.shape == (1, 7)


def test_weighted_scores_match_a_resample_drawn_row_by_row() -> None:
    y, p = _predictions()
    rows = np.random.default_rng(3).integers(0, len(y), len(y))
    scores, _ = weighted_scores(np.bincount(rows, minlength=len(y)), y, p, np.arange(7))
    assert scores.iloc[0].to_dict() == pytest.approx(summary_scores(y[rows], p[rows], labels=np.arange(7)))


def test_bootstrap_is_paired_and_its_intervals_hold_the_point() -> None:
    y, p = _predictions()
    a, _ = bootstrap_scores(y, p, np.arange(7), n_resamples=200, seed=5)
    b, _ = bootstrap_scores(y, y, np.arange(7), n_resamples=200, seed=5)  # same draws: accuracy 1 each time
    assert len(a) == 200 and list(a.columns) == list(SUMMARY_KEYS)
    assert (b["accuracy"] == 1).all()
    boot = bootstrap_predictions(y, p, np.arange(7), {}, n_resamples=200, seed=5)
    table = boot.summary()
    assert ((table.low <= table.point) & (table.point <= table.high)).all()
    assert ((boot.per_intent.low <= boot.per_intent.f1) & (boot.per_intent.f1 <= boot.per_intent.high)).all()
    assert format_interval(0.7, 0.68, 0.72) == "0.700 [0.680, 0.720]"


def test_fast_refit_predicts_what_the_full_model_predicts(trained_model_dir: Path) -> None:
    split = Split.read(trained_model_dir / PROCESSED_DIR)
    train, val = split.frames(trained_model_dir)
    params = ModelParams(C=0.7, class_weight_power=0.8, vector_weight=0.9, char_min_df=1)
    full = fit_model(train["question"], train["intention"], params).predict(val["question"].tolist())
    fast = SplitData(split, trained_model_dir).predict(params)
    np.testing.assert_array_equal(fast, full)


@pytest.mark.slow
def test_refits_in_worker_processes_score_as_in_one_process(demo_frame) -> None:
    params, cache = ModelParams(char_min_df=1), FeatureCache(demo_frame["question"])
    alone = refit_over_seeds(demo_frame, params, 0.25, [0, 1, 2], cache)
    shared = refit_over_seeds(demo_frame, params, 0.25, [0, 1, 2], cache, n_jobs=2)
    assert alone.runs["seed"].tolist() == [0, 1, 2]
    pd.testing.assert_frame_equal(alone.runs.drop(columns="seconds"), shared.runs.drop(columns="seconds"))
    pd.testing.assert_frame_equal(alone.per_intent, shared.per_intent)



@pytest.mark.slow
def test_variability_notebook_writes_consistent_intervals(project: Path) -> None:
    pipeline.run_notebooks(project, ("04_variability",), {"n_resamples": 60, "n_seeds": 2, "bootstrap_seed": 3,
                                                            "first_refit_seed": 3})
    record = json.loads((project / "reports" / "variability.json").read_text(encoding="utf-8"))
    boot, seeds = record["bootstrap"], record["seeds"]
    assert boot["n_resamples"] == 60 and seeds["seeds"] == [3, 4] and len(seeds["runs"]) == 2
    _, card = load_checked(project / MODEL_PATH)
    for metric in SUMMARY_KEYS:
        b, s = boot["summary"][metric], seeds["summary"][metric]
        assert 0 <= b["low"] <= b["point"] <= b["high"] <= 1, (metric, b)
        assert 0 <= s["min"] <= s["mean"] <= s["max"] <= 1, (metric, s)
        assert b["point"] == pytest.approx(card["validation"][metric])  # the saved model, scored as 03 scores it
    assert boot["per_intent_f1"], "no per-intent intervals"
    for row in boot["per_intent_f1"]:
        assert 0 <= row["low"] <= row["point"] <= row["high"] <= 1, row
        assert row["support"] >= 0
    assert sum(r["support"] for r in boot["per_intent_f1"]) == card["split"]["val_rows"]
    html = (project / "reports" / "04_variability.html").read_text(encoding="utf-8")
    assert html.count('src="data:image/svg+xml') == 3 and "Training variability" in html  # charts inline
    assert not re.search(r"""(src|href)=["']https?://""", html), "the report must open offline"
