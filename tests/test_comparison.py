"""The paired comparison of two runs' validation predictions (intent_lib.comparison), on synthetic predictions."""

from __future__ import annotations

import numpy as np
import pytest

from intent_lib.comparison import benjamini_hochberg, bootstrap_p_values, compare_predictions

LABELS = list(range(51))


def synthetic(n_per_intent: int = 30, error_rate: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """51 intents, ``n_per_intent`` rows each, a share ``error_rate`` of them predicted as another intent."""
    rng = np.random.default_rng(seed)
    y_true = np.repeat(LABELS, n_per_intent)
    y_pred = y_true.copy()
    wrong = rng.random(len(y_true)) < error_rate
    y_pred[wrong] = (y_true[wrong] + rng.integers(1, 51, wrong.sum())) % 51
    return y_true, y_pred


def test_identical_predictions_differ_by_nothing_within_noise() -> None:
    y_true, y_pred = synthetic()
    result = compare_predictions(y_true, y_pred, y_pred.copy(), LABELS, n_resamples=500)
    for delta in result.deltas.values():
        assert (delta.point, delta.low, delta.high) == (0, 0, 0) and delta.within_noise
    assert result.changed_intents == [] and result.intents_tested == 51
    assert result.verdict() == "within noise"
    assert result.line("run abc").startswith("vs run abc: Δ accuracy +0.000 [0.000, 0.000], Δ macro-F1 +0.000")


def test_a_small_change_stays_within_noise() -> None:
    y_true, y_pred = synthetic(seed=1)
    other = y_pred.copy()
    broken, fixed = np.flatnonzero(other == y_true)[:6], np.flatnonzero(other != y_true)[:4]
    other[broken] = (other[broken] + 1) % 51  # six new errors, four fixed, out of 1,530 rows
    other[fixed] = y_true[fixed]
    result = compare_predictions(y_true, other, y_pred, LABELS, n_resamples=1000)
    accuracy = result.deltas["accuracy"]
    assert accuracy.point == pytest.approx(-2 / len(y_true))
    assert accuracy.low < 0 < accuracy.high and result.verdict() == "within noise"


def test_a_big_change_is_detected_with_the_intents_it_moved() -> None:
    y_true, baseline = synthetic(error_rate=0.3, seed=2)
    better = baseline.copy()
    fixed = np.isin(y_true, [3, 17])  # two intents become perfect, the others stay as they were
    better[fixed] = y_true[fixed]
    result = compare_predictions(y_true, better, baseline, LABELS)
    assert result.deltas["accuracy"].low > 0 and result.deltas["f1_macro"].low > 0
    assert result.verdict() == "accuracy up, macro-F1 up beyond noise"
    assert {c.intent for c in result.changed_intents} == {3, 17}
    assert all(c.delta.point > 0 and c.f1 > c.baseline_f1 and c.p_value < 0.01 for c in result.changed_intents)


def test_a_worse_model_is_reported_as_down() -> None:
    y_true, y_pred = synthetic(error_rate=0.1, seed=3)
    worse = np.where(np.arange(len(y_true)) % 3 == 0, (y_true + 1) % 51, y_pred)
    result = compare_predictions(y_true, worse, y_pred, LABELS, n_resamples=500)
    assert result.deltas["accuracy"].high < 0 and "accuracy down" in result.verdict()


def test_the_comparison_is_reproducible_and_serialisable() -> None:
    y_true, y_pred = synthetic(seed=4)
    _, other = synthetic(seed=5)
    first = compare_predictions(y_true, other, y_pred, LABELS, n_resamples=300, seed=7).to_dict()
    assert first == compare_predictions(y_true, other, y_pred, LABELS, n_resamples=300, seed=7).to_dict()
    assert set(first["deltas"]["accuracy"]) == {"point", "low", "high", "within_noise"}


def test_predictions_of_other_rows_are_refused() -> None:
    with pytest.raises(ValueError, match="same rows"):
        compare_predictions([1, 2, 3], [1, 2, 3], [1, 2], [1, 2, 3])


def test_benjamini_hochberg_steps_up() -> None:
    # Thresholds 0.01, 0.02, 0.03, 0.04, 0.05: the third p-value passes, so the two before it are kept too.
    assert benjamini_hochberg([0.012, 0.015, 0.029, 0.2, np.nan, 0.9], 0.05).tolist() == \
        [True, True, True, False, False, False]
    assert not benjamini_hochberg([0.06, 0.07]).any()


def test_bootstrap_p_values_are_two_sided_and_skip_missing_resamples() -> None:
    differences = np.array([[0.1, 0.0, -0.2, np.nan], [0.2, 0.0, -0.1, np.nan], [0.3, 0.0, 0.1, np.nan]])
    p = bootstrap_p_values(differences)
    assert p[0] == pytest.approx(2 * 1 / 4) and p[1] == 1.0 and p[2] == pytest.approx(2 * 2 / 4)
    assert np.isnan(p[3])
