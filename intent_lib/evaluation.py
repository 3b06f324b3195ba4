"""Evaluate the train-split model on the validation split and write its metrics file (notebook 03).

The served model may have been refitted on the validation rows too (``refit_full``); the reports therefore
score the validation probabilities that ``02_train`` saved from the model fitted on the train rows only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from intent_lib.files import write_json
from intent_lib.intents import intent_names
from intent_lib.metrics import (confusion, coverage_table, expected_calibration_error, per_intent_table,
                                reliability_table, summary_scores, top_confusions)
from intent_lib.paths import validation_predictions_path
from intent_lib.training import load_predictions
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


def validation_predictions(model_path: Path, val: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(proba, classes)`` of the train-split model on ``val``'s rows (saved by 02_train beside the served
    model), in ``val``'s order."""
    return load_predictions(validation_predictions_path(model_path), val)


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


def write_metrics(evaluation: Evaluation, card: dict[str, Any], path: Path) -> dict[str, Any]:
    """``metrics.json``: summary, per-intent rows, confusion matrix with its label order, top confusions."""
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
    }
    write_json(content, path, default=_jsonable)
    return content


def _jsonable(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value)}")
