"""Scores of predictions: accuracy, micro/macro precision-recall-F1, per-intent table, confusions, calibration."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

DIGITS = 3  # decimals of every score and interval a report shows
CALIBRATION_BINS = 15  # equal-width confidence bins, for the ECE and the reliability diagram alike
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
                               n_bins: int = CALIBRATION_BINS) -> float:
    """ECE of the top-1 confidence: bin-weighted |accuracy - mean confidence| over equal-width bins."""
    y_true, y_pred, confidence = map(np.asarray, (y_true, y_pred, confidence))
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in np.unique(bins):
        mask = bins == b
        ece += mask.mean() * abs((y_true[mask] == y_pred[mask]).mean() - confidence[mask].mean())
    return float(ece)


def reliability_table(y_true: Sequence[int], y_pred: Sequence[int], confidence: Sequence[float],
                      n_bins: int = CALIBRATION_BINS) -> pd.DataFrame:
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


def weighted_scores(weights: np.ndarray, y_true: Sequence[int], y_pred: Sequence[int],
                    labels: Sequence[int]) -> tuple[pd.DataFrame, np.ndarray]:
    """Scores of many row weightings at once (a bootstrap resample is a weighting: how often each row was drawn).

    ``weights`` is (resamples, rows). Returns the ``SUMMARY_KEYS`` scores, one row per weighting, and the
    per-intent F1 (resamples, len(labels)), NaN where an intent is neither true nor predicted. Macro averages
    are over the intents present (true or predicted) in each weighting; with all weights 1 and every label
    present this is ``summary_scores``.
    """
    y_true, y_pred, labels = np.asarray(y_true), np.asarray(y_pred), np.asarray(labels)
    weights = np.atleast_2d(np.asarray(weights, dtype=float))
    true_hot = (y_true[:, None] == labels[None, :]).astype(float)
    pred_hot = (y_pred[:, None] == labels[None, :]).astype(float)
    correct = (y_true == y_pred).astype(float)
    t, p, tp = weights @ true_hot, weights @ pred_hot, weights @ (true_hot * correct[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(p > 0, tp / p, 0.0)
        recall = np.where(t > 0, tp / t, 0.0)
        f1 = np.where(t + p > 0, 2 * tp / (t + p), np.nan)
        present = t + p > 0
        ratio = lambda a, b: np.where(b > 0, a / np.where(b > 0, b, 1), 0.0)  # noqa: E731
        micro_p, micro_r = ratio(tp.sum(1), p.sum(1)), ratio(tp.sum(1), t.sum(1))
        scores = pd.DataFrame({
            "accuracy": weights @ correct / weights.sum(1),
            "precision_micro": micro_p, "recall_micro": micro_r,
            "f1_micro": ratio(2 * tp.sum(1), t.sum(1) + p.sum(1)),
            "precision_macro": np.where(present, precision, 0).sum(1) / present.sum(1),
            "recall_macro": np.where(present, recall, 0).sum(1) / present.sum(1),
            "f1_macro": np.nansum(f1, axis=1) / present.sum(1),
        })
    return scores[list(SUMMARY_KEYS)], f1


def bootstrap_scores(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[int], n_resamples: int = 1000,
                     seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Paired bootstrap of labelled predictions: rows are drawn with replacement, true and predicted label together.

    Returns ``weighted_scores`` of ``n_resamples`` resamples. The draws depend only on the number of rows and
    ``seed``, so two models' predictions of the same rows bootstrapped with one seed are paired resample by resample.
    """
    n = len(y_true)
    draws = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=n_resamples)
    return weighted_scores(draws, y_true, y_pred, labels)


def percentile_interval(samples: np.ndarray | pd.Series | pd.DataFrame, confidence: float = 0.95,
                        axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The central ``confidence`` percentile interval (low, high) of resampled values, ignoring NaN."""
    tail = (1 - confidence) / 2 * 100
    low, high = np.nanpercentile(np.asarray(samples, dtype=float), [tail, 100 - tail], axis=axis)
    return low, high


def format_interval(point: float, low: float, high: float, digits: int = DIGITS) -> str:
    """``0.702 [0.680, 0.721]``: a point estimate with its interval."""
    if np.isnan(point):
        return "n/a"
    return f"{point:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def format_score(key: str, value: float) -> str:
    """A figure as reports show it: counts (``n``) with thousands separators, ``*_seconds`` to a tenth,
    scores to ``DIGITS`` decimals."""
    if key == "n":
        return f"{value:,.0f}"
    if key.endswith("_seconds"):
        return f"{value:,.1f}"
    return f"{value:.{DIGITS}f}"


def score_table(scores: dict[str, float], column: str) -> pd.DataFrame:
    """A one-column table of named figures, each formatted by ``format_score``."""
    return pd.DataFrame({column: {key: format_score(key, value) for key, value in scores.items()}})
