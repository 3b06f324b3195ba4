"""Metrics against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from intent_lib.metrics import (confusion, coverage_table, expected_calibration_error, format_interval,
                                per_intent_table, score_table, summary_scores, top_confusions)

Y_TRUE = [0, 0, 0, 1, 1, 2]
Y_PRED = [0, 0, 1, 1, 2, 2]
# class 0: tp 2, fp 0, fn 1 -> p 1, r 2/3, f1 0.8
# class 1: tp 1, fp 1, fn 1 -> p 1/2, r 1/2, f1 1/2
# class 2: tp 1, fp 1, fn 0 -> p 1/2, r 1, f1 2/3


def test_summary_scores_match_hand_computation() -> None:
    s = summary_scores(Y_TRUE, Y_PRED)
    assert s["accuracy"] == pytest.approx(4 / 6)
    assert s["f1_micro"] == s["precision_micro"] == s["recall_micro"] == pytest.approx(4 / 6)
    assert s["precision_macro"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert s["recall_macro"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    assert s["f1_macro"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_macro_average_counts_labels_never_predicted_nor_seen() -> None:
    s = summary_scores([0, 1], [0, 1], labels=[0, 1, 2])
    assert s["f1_macro"] == pytest.approx(2 / 3)


def test_per_intent_table_and_confusions() -> None:
    table = per_intent_table(Y_TRUE, Y_PRED, [0, 1, 2], {0: "zéro", 1: "un", 2: "deux"})
    assert table["support"].tolist() == [3, 2, 1]
    assert table["f1"].round(4).tolist() == [0.8, 0.5, 0.6667]
    assert table["name"].tolist() == ["zéro", "un", "deux"]
    matrix = confusion(Y_TRUE, Y_PRED, [0, 1, 2])
    assert matrix.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    top = top_confusions(matrix, [0, 1, 2])
    assert top[["true", "predicted", "count"]].values.tolist() == [[1, 2, 1], [0, 1, 1]] or \
        top[["true", "predicted", "count"]].values.tolist() == [[0, 1, 1], [1, 2, 1]]
    assert top["share_of_true"].max() == pytest.approx(0.5)


def test_expected_calibration_error() -> None:
    # Two bins: confidence 0.9 (right 1 of 2 -> gap 0.4), confidence 0.3 (right 1 of 2 -> gap 0.2).
    ece = expected_calibration_error([1, 1, 1, 1], [1, 0, 1, 0], [0.9, 0.9, 0.3, 0.3], n_bins=10)
    assert ece == pytest.approx(0.5 * 0.4 + 0.5 * 0.2)
    assert expected_calibration_error([1, 0], [1, 0], [1.0, 1.0]) == pytest.approx(0.0)


def test_coverage_table() -> None:
    table = coverage_table([1, 1, 1, 1], [1, 0, 1, 1], np.array([0.95, 0.9, 0.4, 0.2]), thresholds=(0.0, 0.5, 0.99))
    assert table["coverage"].tolist() == [1.0, 0.5, 0.0]
    assert table["accuracy"].tolist()[:2] == [0.75, 0.5] and np.isnan(table["accuracy"].iloc[2])


def test_reports_show_scores_and_intervals_to_the_same_decimals() -> None:
    assert format_interval(0.70812, 0.68, 0.7301) == "0.708 [0.680, 0.730]"
    table = score_table({"accuracy": 0.70812, "n": 1406, "fit_seconds": 51.23}, "validation")
    assert table["validation"].to_dict() == {"accuracy": "0.708", "n": "1,406", "fit_seconds": "51.2"}
