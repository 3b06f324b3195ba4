"""The out-of-scope rule: neighbour scores, out-of-fold scoring, the threshold quantile, the card and the pickle."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from intent_lib.artefacts import ModelIntegrityError, load_checked
from intent_lib.evaluation import scope_figures
from intent_lib.files import read_json
from intent_lib.reasons import reason, reason_shares
from intent_lib.scope import (REFERENCE_ATTRIBUTE, ScopeRule, neighbour_scores, out_of_fold_scores,
                              own_out_of_scope_set, served_rule)


def unit_rows(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_neighbour_score_is_the_mean_cosine_to_the_k_nearest() -> None:
    reference = np.eye(4, dtype=np.float32)
    query = np.array([[0.8, 0.6, 0.0, 0.0]], dtype=np.float32)
    assert neighbour_scores(query, reference, 1) == pytest.approx([0.8])
    assert neighbour_scores(query, reference, 2) == pytest.approx([0.7])
    assert neighbour_scores(query, reference, 10) == pytest.approx([0.35])  # k is capped at the reference's rows


def test_out_of_fold_scores_never_see_the_row_itself() -> None:
    """One fold per row is leave-one-out: each row scored against all the others, never against itself."""
    rows = unit_rows(40)
    scores = out_of_fold_scores(rows, k=3, folds=len(rows))
    similarity = rows @ rows.T
    np.fill_diagonal(similarity, -np.inf)
    expected = np.sort(similarity, axis=1)[:, -3:].mean(axis=1)
    assert scores == pytest.approx(expected, abs=1e-5)
    assert neighbour_scores(rows, rows, 3) == pytest.approx(1 / 3 + 2 / 3 * np.sort(similarity, axis=1)[:, -2:].mean(axis=1),
                                                            abs=1e-5)  # in sample, each row finds itself


def test_a_duplicate_in_another_fold_is_found() -> None:
    rows = unit_rows(30)
    rows = np.vstack([rows, rows[:1]])  # row 30 repeats row 0
    scores = out_of_fold_scores(rows, k=1, folds=len(rows))
    assert scores[[0, 30]] == pytest.approx([1.0, 1.0]) and (scores[1:30] < 0.99).all()


@pytest.mark.parametrize("share", [0.03, 0.1])
def test_the_threshold_is_the_quantile_of_the_out_of_fold_scores(share: float) -> None:
    rows = unit_rows(500)
    rule, scores = ScopeRule.fit(rows, k=5, flagged_share=share, folds=10)
    assert rule.threshold in scores and rule.threshold == np.quantile(scores, share, method="lower")
    assert share - 0.005 <= (scores < rule.threshold).mean() <= share
    assert scores == pytest.approx(out_of_fold_scores(rule.reference, 5, 10))


def test_a_question_unlike_the_reference_is_flagged() -> None:
    cluster = unit_rows(100, seed=2) * 0.3 + np.eye(16, dtype=np.float32)[0]
    cluster /= np.linalg.norm(cluster, axis=1, keepdims=True)
    rule, _ = ScopeRule.fit(cluster, k=5)
    inside, outside = cluster[:1] * 0.99 + 0.01, np.eye(16, dtype=np.float32)[[1]]
    assert rule.flag(np.vstack([inside, outside])).tolist() == [False, True]


def test_the_rule_keeps_its_reference_as_float16_and_scores_like_it() -> None:
    rows = unit_rows(50)
    rule, _ = ScopeRule.fit(rows)
    assert np.array_equal(rule.reference, rows.astype(np.float16).astype(np.float32))
    card_entry = rule.to_dict()
    assert card_entry == {"k": 10, "threshold": rule.threshold, "reference_rows": 50}
    again = ScopeRule.from_card(card_entry, rows.astype(np.float16))
    assert np.array_equal(again.score(rows), rule.score(rows))


def test_the_own_out_of_scope_set_is_varied() -> None:
    own = own_out_of_scope_set()
    assert len(own) >= 100 and own["question"].is_unique and (own["question"].str.strip() != "").all()
    assert {"everyday", "noise", "other_language"} <= set(own["kind"])


def test_the_served_model_carries_its_rule_and_the_card_says_how_it_was_chosen(trained_model_dir: Path) -> None:
    model_path = trained_model_dir / "models" / "intent_model.pkl"
    model, card = load_checked(model_path)
    entry = card["out_of_scope"]
    assert entry["reference_rows"] == card["training"]["n_rows"] and entry["k"] == 10
    assert 0 < entry["oof_rate"] <= entry["flagged_share"] == 0.03
    assert 0 <= entry["validation_rate"] <= 1
    rule = served_rule(model, card)
    assert rule is not None and rule.threshold == entry["threshold"]
    assert served_rule(model, card | {"out_of_scope": None}) is None


def test_a_card_whose_rule_the_pickle_lacks_is_refused(trained_model_dir: Path) -> None:
    model, card = load_checked(trained_model_dir / "models" / "intent_model.pkl")
    bare = pickle.loads(pickle.dumps(model))
    delattr(bare, REFERENCE_ATTRIBUTE)
    with pytest.raises(ModelIntegrityError, match="out-of-scope rule"):
        served_rule(bare, card)
    with pytest.raises(ModelIntegrityError, match="out-of-scope rule"):
        served_rule(model, card | {"out_of_scope": card["out_of_scope"] | {"reference_rows": 1}})


def test_the_report_figures_are_the_cards_and_each_sets_flagged_share(trained_model_dir: Path) -> None:
    figures = scope_figures(trained_model_dir / "models" / "intent_model.pkl", trained_model_dir / "data")
    summary = figures.summary()
    entry = read_json(trained_model_dir / "models" / "model_card.json")["out_of_scope"]
    assert summary["oof_rate"] == pytest.approx(entry["oof_rate"]) and summary["threshold"] == entry["threshold"]
    assert summary["validation_rate"] == entry["validation_rate"]
    assert summary["test_questions"] == 60 and summary["own_set_questions"] == len(own_out_of_scope_set())
    assert 0 <= summary["test_rate"] <= 1 and summary["own_set_caught"] > 0.5  # the demo data is tiny; the real
    assert set(summary["own_set_caught_by_kind"]) == set(own_out_of_scope_set()["kind"])  # figures: 03_evaluate


def test_reason_shares_count_each_answer_once() -> None:
    assert reason_shares([None, "no_content", "low_confidence", "low_confidence"]) == {
        "unsure": 0.75, "no_content": 0.25, "out_of_scope": 0.0, "low_confidence": 0.5}
    assert reason(content=False, out_of_scope=True, low_confidence=True) == "no_content"
    assert reason(content=True, out_of_scope=True, low_confidence=True) == "out_of_scope"
    assert reason(content=True, out_of_scope=False, low_confidence=False) is None
