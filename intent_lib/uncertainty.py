"""Knowing when not to answer: an "unsure" confidence threshold and conformal prediction sets.

* **Unsure.** ``choose_threshold`` picks, on labelled predictions (the validation split), the lowest top-1
  confidence above which the answered questions reach a target accuracy: the most questions answered for
  that accuracy. Below it an answer is flagged ``unsure``.
* **Candidates.** A split-conformal prediction set (MAPIE's ``SplitConformalClassifier``, LAC score): an
  intent joins the set when its probability is at least ``1 - q``, ``q`` being the conformal quantile of
  ``1 - p(true intent)`` over calibration rows, so the set holds the true intent with probability >= 1 - alpha.
  The most probable intent is always in the set (this can only raise coverage).

Calibration rows must be rows the model did not fit on. ``CalibratedLinearSVC`` already scores every
training row with an SVM fitted on the other folds (its out-of-fold probabilities, ``oof_proba_``); those
calibrate the sets of a model fitted on all its rows, including one refitted on train + validation (the
cross-conformal idea: each row scored by a model that never saw it). The check is the train-split model:
calibrated on its training rows' out-of-fold probabilities, its sets are scored on the validation split.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

DEFAULT_TARGET_ACCURACY = 0.90
DEFAULT_ALPHA = 0.1
FREQUENCY_BANDS = ((0, 20, "rare (< 20 training questions)"), (20, 100, "mid (20-99)"),
                   (100, np.inf, "frequent (>= 100)"))


@dataclass(frozen=True)
class Uncertainty:
    """What the served model needs to flag unsure answers and build candidate sets."""

    threshold: float  # an answer whose top-1 probability is below this is unsure
    target_accuracy: float
    alpha: float
    set_threshold: float  # an intent is a candidate when its probability is at least this

    def unsure(self, confidence: np.ndarray | float) -> np.ndarray | bool:
        return np.asarray(confidence) < self.threshold

    def sets(self, proba: np.ndarray) -> np.ndarray:
        """Boolean (rows, classes) membership of each row's candidate set; the top-1 intent always in."""
        proba = np.atleast_2d(proba)
        member = proba >= self.set_threshold
        member[np.arange(len(proba)), proba.argmax(axis=1)] = True
        return member

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Uncertainty":
        return cls(**{k: float(values[k]) for k in ("threshold", "target_accuracy", "alpha", "set_threshold")})


def accuracy_coverage_curve(y_true: Sequence[int], y_pred: Sequence[int], confidence: Sequence[float]) -> pd.DataFrame:
    """For each distinct confidence t (high to low): share of questions with confidence >= t and their accuracy."""
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(y_true) == np.asarray(y_pred)
    order = np.argsort(-confidence, kind="stable")
    conf, hits = confidence[order], np.cumsum(correct[order])
    last = np.r_[np.flatnonzero(np.diff(conf) != 0), len(conf) - 1]  # last row of each run of equal confidence
    answered = last + 1
    return pd.DataFrame({"threshold": conf[last], "coverage": answered / len(conf), "accuracy": hits[last] / answered})


def choose_threshold(y_true: Sequence[int], y_pred: Sequence[int], confidence: Sequence[float],
                     target_accuracy: float = DEFAULT_TARGET_ACCURACY) -> float:
    """The lowest confidence threshold whose answered questions reach ``target_accuracy`` (1.0 when none does)."""
    curve = accuracy_coverage_curve(y_true, y_pred, confidence)
    reaching = curve[curve["accuracy"] >= target_accuracy]
    return float(reaching["threshold"].min()) if len(reaching) else 1.0


class _GivenProbabilities(ClassifierMixin, BaseEstimator):
    """A prefit "classifier" whose input is already its probabilities: hands out-of-fold scores to MAPIE."""

    def __init__(self, classes: Sequence[int]) -> None:
        self.classes = classes

    def fit(self, X: np.ndarray, y: Sequence[int]) -> "_GivenProbabilities":
        self.classes_ = np.asarray(self.classes)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=float)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[np.asarray(X).argmax(axis=1)]


def conformalize(proba: np.ndarray, y: Sequence[int], classes: Sequence[int], alpha: float = DEFAULT_ALPHA) -> float:
    """MAPIE split-conformal (LAC) calibration on held-out probabilities; returns the set threshold ``1 - q``."""
    mapie = conformal_predictor(proba, y, classes, alpha)
    mapie.predict_set(np.asarray(proba[:1], dtype=float))  # MAPIE computes its quantile when it first predicts
    quantile = mapie._mapie_classifier.conformity_score_function_.quantiles_  # noqa: SLF001 - where MAPIE keeps q
    return float(1.0 - np.ravel(quantile)[0])


def conformal_predictor(proba: np.ndarray, y: Sequence[int], classes: Sequence[int],
                        alpha: float = DEFAULT_ALPHA) -> Any:
    """The fitted MAPIE predictor over given probabilities (its ``predict_set`` takes probabilities too)."""
    from mapie.classification import SplitConformalClassifier  # training only: serving needs no MAPIE

    estimator = _GivenProbabilities(list(classes)).fit(proba, y)
    mapie = SplitConformalClassifier(estimator, confidence_level=1 - alpha, conformity_score="lac", prefit=True)
    return mapie.conformalize(np.asarray(proba, dtype=float), np.asarray(y))


def set_coverage(y_true: Sequence[int], proba: np.ndarray, classes: Sequence[int], uncertainty: Uncertainty,
                 train_counts: dict[int, int] | None = None) -> pd.DataFrame:
    """Empirical coverage and mean set size, over all rows and per intent-frequency band of ``train_counts``."""
    classes = np.asarray(classes)
    y_true = np.asarray(y_true)
    member = uncertainty.sets(proba)
    index = np.searchsorted(classes, y_true)
    frame = pd.DataFrame({"covered": member[np.arange(len(y_true)), index], "size": member.sum(axis=1)})
    frame["band"] = "all"
    if train_counts is not None:
        counts = np.array([train_counts.get(int(c), 0) for c in y_true])
        bands = [(label, (counts >= low) & (counts < high)) for low, high, label in FREQUENCY_BANDS]
        frame = pd.concat([frame] + [frame[mask].assign(band=label) for label, mask in bands])
    table = frame.groupby("band", sort=False).agg(questions=("covered", "size"), coverage=("covered", "mean"),
                                                 mean_set_size=("size", "mean"))
    return table.reset_index()


def deferred_intents(y_true: Sequence[int], confidence: Sequence[float], uncertainty: Uncertainty,
                     names: dict[int, str], n: int = 10) -> pd.DataFrame:
    """The intents whose questions are most often flagged unsure (share of their validation questions)."""
    frame = pd.DataFrame({"intent": np.asarray(y_true), "unsure": uncertainty.unsure(confidence)})
    table = frame.groupby("intent").agg(questions=("unsure", "size"), deferred=("unsure", "sum"),
                                        deferred_share=("unsure", "mean")).reset_index()
    table.insert(1, "name", table["intent"].map(names))
    return table.sort_values(["deferred_share", "questions"], ascending=False).head(n).reset_index(drop=True)
