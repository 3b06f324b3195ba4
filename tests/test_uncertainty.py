"""Unsure threshold and conformal prediction sets on small fixtures."""

from __future__ import annotations

import numpy as np
import pytest

from intent_lib.uncertainty import (Uncertainty, accuracy_coverage_curve, choose_threshold, conformal_predictor,
                                    conformalize, deferred_intents, set_coverage)

CLASSES = [3, 5, 7, 9, 11]


def _fixture(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and labels drawn from them: perfectly calibrated by construction."""
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.full(len(CLASSES), 0.4), size=n)
    y = np.array([CLASSES[rng.choice(len(CLASSES), p=p)] for p in proba])
    return proba, y


def test_threshold_is_the_lowest_reaching_the_target() -> None:
    y_true = [1, 1, 1, 1, 1]
    y_pred = [1, 1, 0, 1, 0]
    confidence = [0.9, 0.8, 0.7, 0.6, 0.5]
    curve = accuracy_coverage_curve(y_true, y_pred, confidence)
    np.testing.assert_allclose(curve["accuracy"], [1, 1, 2 / 3, 3 / 4, 3 / 5])
    np.testing.assert_allclose(curve["coverage"], [0.2, 0.4, 0.6, 0.8, 1.0])
    assert choose_threshold(y_true, y_pred, confidence, 0.75) == 0.6
    assert choose_threshold(y_true, y_pred, confidence, 0.95) == 0.8
    assert choose_threshold(y_true, [0] * 5, confidence, 0.5) == 1.0  # never reached: always unsure


def test_tied_confidences_are_answered_together() -> None:
    curve = accuracy_coverage_curve([1, 1, 1], [1, 0, 1], [0.5, 0.5, 0.9])
    assert curve["threshold"].tolist() == [0.9, 0.5] and curve["coverage"].tolist() == [1 / 3, 1.0]


def test_unsure_flag_and_sets_always_hold_the_answer() -> None:
    u = Uncertainty(threshold=0.6, target_accuracy=0.9, alpha=0.1, set_threshold=0.3)
    proba = np.array([[0.7, 0.2, 0.1], [0.25, 0.2, 0.55], [0.4, 0.35, 0.25]])
    assert u.unsure(proba.max(axis=1)).tolist() == [False, True, True]
    assert u.sets(proba).tolist() == [[True, False, False], [False, False, True], [True, True, False]]
    assert Uncertainty.from_dict(u.to_dict()) == u


def test_conformal_sets_match_mapie_and_cover() -> None:
    calib_proba, calib_y = _fixture(3000, seed=0)
    test_proba, test_y = _fixture(3000, seed=1)
    alpha = 0.1
    u = Uncertainty(0.5, 0.9, alpha, conformalize(calib_proba, calib_y, CLASSES, alpha))
    _, mapie_sets = conformal_predictor(calib_proba, calib_y, CLASSES, alpha).predict_set(test_proba)
    ours = u.sets(test_proba)
    nonempty = mapie_sets[:, :, 0].any(axis=1)  # MAPIE's LAC may give an empty set; ours keeps the top-1
    np.testing.assert_array_equal(ours[nonempty], mapie_sets[nonempty, :, 0])
    table = set_coverage(test_y, test_proba, CLASSES, u, train_counts={3: 5, 5: 50, 7: 50, 9: 500, 11: 500})
    overall = table.set_index("band").loc["all"]
    assert overall["coverage"] == pytest.approx(1 - alpha, abs=0.02)
    assert 1 <= overall["mean_set_size"] < len(CLASSES)
    assert table["questions"].iloc[1:].sum() == overall["questions"]  # bands partition the rows


def test_deferred_intents_ranks_by_share() -> None:
    u = Uncertainty(0.5, 0.9, 0.1, 0.2)
    table = deferred_intents([1, 1, 2, 2, 2], [0.4, 0.9, 0.1, 0.2, 0.9], u, {1: "un", 2: "deux"})
    assert table["intent"].tolist() == [2, 1] and table["deferred"].tolist() == [2, 1]
    assert table["name"].tolist() == ["deux", "un"]
