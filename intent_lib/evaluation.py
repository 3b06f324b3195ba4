"""Evaluate the train-split model on the validation split and write its metrics file (notebook 03); what the
served model's out-of-scope rule flags.

The served model may have been refitted on the validation rows too (``refit_full``); the reports therefore
score the validation probabilities that ``02_train`` saved from the model fitted on the train rows only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from intent_lib.artefacts import load_checked
from intent_lib.data import load_questions, locate_dataset
from intent_lib.files import write_json
from intent_lib.intents import intent_names
from intent_lib.metrics import (confusion, coverage_table, expected_calibration_error, per_intent_table,
                                reliability_table, summary_scores, top_confusions)
from intent_lib.model import clean_texts
from intent_lib.paths import TEST_INPUTS, validation_predictions_path
from intent_lib.scope import ScopeRule, embed, out_of_fold_scores, own_out_of_scope_set, served_rule
from intent_lib.predictions import load_predictions
from intent_lib.uncertainty import Uncertainty, accuracy_coverage_curve, deferred_intents, set_coverage


@dataclass
class Evaluation:
    """Validation predictions and every figure the report shows."""

    val: pd.DataFrame  # ID, question, intention, predicted, confidence
    labels: list[int]
    names: dict[int, str]
    summary: dict[str, float]
    per_intent: pd.DataFrame
    matrix: np.ndarray
    proba: np.ndarray  # validation probabilities, columns in ``labels`` order

    @property
    def misclassified(self) -> pd.DataFrame:
        wrong = self.val[self.val["intention"] != self.val["predicted"]].copy()
        wrong["true_name"] = wrong["intention"].map(self.names)
        wrong["predicted_name"] = wrong["predicted"].map(self.names)
        return wrong.sort_values("confidence", ascending=False)

    def confusions(self, n: int = 15) -> pd.DataFrame:
        return top_confusions(self.matrix, self.labels, self.names, n)

    def reliability(self) -> pd.DataFrame:
        return reliability_table(self.val["intention"], self.val["predicted"], self.val["confidence"])

    def coverage(self) -> pd.DataFrame:
        return coverage_table(self.val["intention"], self.val["predicted"], self.val["confidence"])

    def accuracy_coverage(self) -> pd.DataFrame:
        return accuracy_coverage_curve(self.val["intention"], self.val["predicted"], self.val["confidence"])

    def deferred(self, uncertainty: Uncertainty, n: int = 10) -> pd.DataFrame:
        return deferred_intents(self.val["intention"], self.val["confidence"], uncertainty, self.names, n)

    def set_coverage(self, uncertainty: Uncertainty, train_counts: dict[int, int]) -> pd.DataFrame:
        return set_coverage(self.val["intention"], self.proba, self.labels, uncertainty, train_counts)


def validation_predictions(predictions_dir: Path, val: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(proba, classes)`` of the train-split model on ``val``'s rows (saved by 02_train in
    ``predictions_dir``), in ``val``'s order."""
    return load_predictions(validation_predictions_path(predictions_dir), val)


def evaluate(val: pd.DataFrame, proba: np.ndarray, classes: np.ndarray) -> Evaluation:
    """Score the validation probabilities: summary, per-intent table and confusion matrix."""
    labels = [int(c) for c in classes]
    scored = val.assign(predicted=np.asarray(classes)[proba.argmax(axis=1)], confidence=proba.max(axis=1))
    names = intent_names(labels)
    summary = summary_scores(scored["intention"], scored["predicted"], labels=labels) | {
        "ece": expected_calibration_error(scored["intention"], scored["predicted"], scored["confidence"]),
        "n": len(scored)}
    return Evaluation(scored, labels, names, summary,
                      per_intent_table(scored["intention"], scored["predicted"], labels, names),
                      confusion(scored["intention"], scored["predicted"], labels), proba)


def write_metrics(evaluation: Evaluation, card: dict[str, Any], path: Path,
                  out_of_scope: dict[str, Any] | None = None) -> dict[str, Any]:
    """``metrics.json``: summary, per-intent rows, confusion matrix with its label order, top confusions, and
    what the out-of-scope rule flags (``ScopeFigures.summary``)."""
    content = {
        "model_version": card["model_version"],
        "dataset": card["dataset"],
        "summary": evaluation.summary,
        "per_intent": evaluation.per_intent.to_dict(orient="records"),
        "confusion_matrix": {"labels": evaluation.labels, "matrix": evaluation.matrix.tolist(),
                             "rows": "true intent", "columns": "predicted intent"},
        "top_confusions": evaluation.confusions().to_dict(orient="records"),
        "coverage": evaluation.coverage().to_dict(orient="records"),
        "uncertainty": card.get("uncertainty"),
        "out_of_scope": out_of_scope,
    }
    write_json(content, path, default=_jsonable)
    return content


def _jsonable(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value)}")


LABELLED_OOF, TEST_SET, OWN_SET = "labelled (out of fold)", "test", "own out-of-scope set"  # ScopeFigures' sets


@dataclass
class ScopeFigures:
    """The served out-of-scope rule's scores on the labelled questions (out of fold), the test questions and the
    project's own out-of-scope set, and the card's entry for it."""

    rule: ScopeRule
    entry: dict[str, Any]
    scores: pd.DataFrame  # set, kind, score, flagged

    def summary(self) -> dict[str, Any]:
        """What metrics.json and the report give: the share flagged in each set, caught by kind in the own set."""
        share = self.scores.groupby("set")["flagged"].mean()
        own = self.scores[self.scores["set"] == OWN_SET]
        return {"threshold": self.rule.threshold, "k": self.rule.k, "flagged_share": self.entry["flagged_share"],
                "oof_rate": float(share[LABELLED_OOF]), "validation_rate": self.entry["validation_rate"],
                "test_rate": float(share[TEST_SET]), "test_questions": int((self.scores["set"] == TEST_SET).sum()),
                "own_set_caught": float(share[OWN_SET]), "own_set_questions": len(own),
                "own_set_caught_by_kind": own.groupby("kind")["flagged"].mean().round(4).to_dict()}


def scope_figures(model_path: Path, data_dir: Path) -> ScopeFigures | None:
    """The served model's scope rule on the three sets (None when its card has no rule); the test questions are
    those of the dataset ``locate_dataset`` picks in ``data_dir``."""
    model, card = load_checked(model_path)
    rule = served_rule(model, card)
    if rule is None:
        return None
    entry = card["out_of_scope"]
    test = load_questions(locate_dataset(data_dir)[0] / TEST_INPUTS)["question"]
    own = own_out_of_scope_set()
    scores = pd.concat([
        pd.DataFrame({"set": LABELLED_OOF, "kind": "labelled",
                      "score": out_of_fold_scores(rule.reference, rule.k, entry["folds"], entry["seed"])}),
        pd.DataFrame({"set": TEST_SET, "kind": "test", "score": rule.score(embed(clean_texts(test)))}),
        pd.DataFrame({"set": OWN_SET, "kind": own["kind"], "score": rule.score(embed(clean_texts(own["question"])))}),
    ], ignore_index=True)
    return ScopeFigures(rule, entry, scores.assign(flagged=scores["score"] < rule.threshold))
