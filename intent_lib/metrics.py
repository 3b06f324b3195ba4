"""Scores of predictions: accuracy, micro/macro precision-recall-F1, per-intent table, confusions, calibration."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

SUMMARY_KEYS = ("accuracy", "precision_micro", "recall_micro", "f1_micro",
                "precision_macro", "recall_macro", "f1_macro")


def summary_scores(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[int] | None = None) -> dict[str, float]:
    """Accuracy and micro/macro precision, recall and F1 (macro over ``labels``, default: labels seen in y_true)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labels = np.unique(y_true) if labels is None else np.asarray(labels)
    scores = {"accuracy": float(accuracy_score(y_true, y_pred))}
    for average in ("micro", "macro"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=average, zero_division=0)
        scores |= {f"precision_{average}": float(p), f"recall_{average}": float(r), f"f1_{average}": float(f)}
    return scores


def per_intent_table(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[int],
                     names: dict[int, str] | None = None) -> pd.DataFrame:
    """One row per intent: name, support, precision, recall, F1 (sorted by label)."""
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    table = pd.DataFrame({"intent": labels, "support": s, "precision": p, "recall": r, "f1": f})
    table.insert(1, "name", [(names or {}).get(int(k), str(k)) for k in labels])
    return table


def confusion(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[int]) -> np.ndarray:
    """Confusion matrix, rows = true intent, columns = predicted, in ``labels`` order."""
    return confusion_matrix(y_true, y_pred, labels=labels)


def top_confusions(matrix: np.ndarray, labels: Sequence[int], names: dict[int, str] | None = None,
                   n: int = 15) -> pd.DataFrame:
    """The ``n`` most frequent (true, predicted) pairs with true != predicted."""
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None)[::-1][:n]
    rows = []
    for flat in order:
        i, j = np.unravel_index(flat, off.shape)
        if off[i, j] == 0:
            break
        rows.append({"true": int(labels[i]), "true_name": (names or {}).get(int(labels[i]), ""),
                     "predicted": int(labels[j]), "predicted_name": (names or {}).get(int(labels[j]), ""),
                     "count": int(off[i, j]), "share_of_true": float(off[i, j] / matrix[i].sum())})
    return pd.DataFrame(rows)


def expected_calibration_error(y_true: Sequence[int], y_pred: Sequence[int], confidence: Sequence[float],
                               n_bins: int = 15) -> float:
    """ECE of the top-1 confidence: bin-weighted |accuracy - mean confidence| over equal-width bins."""
    y_true, y_pred, confidence = map(np.asarray, (y_true, y_pred, confidence))
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in np.unique(bins):
        mask = bins == b
        ece += mask.mean() * abs((y_true[mask] == y_pred[mask]).mean() - confidence[mask].mean())
    return float(ece)


def reliability_table(y_true: Sequence[int], y_pred: Sequence[int], confidence: Sequence[float],
                      n_bins: int = 10) -> pd.DataFrame:
    """Per confidence bin: count, mean confidence and accuracy (the reliability diagram's data)."""
    frame = pd.DataFrame({"correct": np.asarray(y_true) == np.asarray(y_pred), "confidence": confidence})
    frame["bin"] = np.minimum((frame["confidence"] * n_bins).astype(int), n_bins - 1)
    grouped = frame.groupby("bin").agg(count=("correct", "size"), confidence=("confidence", "mean"),
                                       accuracy=("correct", "mean"))
    return grouped.reset_index()


def coverage_table(y_true: Sequence[int], y_pred: Sequence[int], confidence: Sequence[float],
                   thresholds: Sequence[float] = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9)) -> pd.DataFrame:
    """Accuracy and share of questions answered when answering only above each confidence threshold."""
    correct = np.asarray(y_true) == np.asarray(y_pred)
    confidence = np.asarray(confidence)
    rows = []
    for t in thresholds:
        kept = confidence >= t
        rows.append({"threshold": t, "coverage": float(kept.mean()),
                     "accuracy": float(correct[kept].mean()) if kept.any() else float("nan")})
    return pd.DataFrame(rows)
