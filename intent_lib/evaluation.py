"""Evaluate a saved model on the validation split and write its metrics file (notebook 03)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from intent_lib.intents import intent_names
from intent_lib.metrics import (confusion, coverage_table, expected_calibration_error, per_intent_table,
                                reliability_table, summary_scores, top_confusions)
from intent_lib.files import write_json


@dataclass
class Evaluation:
    """Validation predictions and every figure the report shows."""

    val: pd.DataFrame  # ID, question, intention, predicted, confidence
    labels: list[int]
    names: dict[int, str]
    summary: dict[str, float]
    per_intent: pd.DataFrame
    matrix: np.ndarray

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


def evaluate(model: Pipeline, val: pd.DataFrame) -> Evaluation:
    """Predict the validation rows and compute the summary, per-intent table and confusion matrix."""
    proba = model.predict_proba(val["question"].tolist())
    labels = [int(c) for c in model.classes_]
    scored = val.assign(predicted=model.classes_[proba.argmax(axis=1)], confidence=proba.max(axis=1))
    names = intent_names(labels)
    summary = summary_scores(scored["intention"], scored["predicted"], labels=labels) | {
        "ece": expected_calibration_error(scored["intention"], scored["predicted"], scored["confidence"]),
        "n": len(scored)}
    return Evaluation(scored, labels, names, summary,
                      per_intent_table(scored["intention"], scored["predicted"], labels, names),
                      confusion(scored["intention"], scored["predicted"], labels))


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
    }
    write_json(content, path, default=_jsonable)
    return content


def _jsonable(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value)}")
