"""A linear SVM whose scores become honest probabilities by temperature scaling on out-of-fold scores.

Predictions are the SVM's own (argmax of its decision scores); ``predict_proba`` is
``softmax(scores / T)`` with ``T`` fitted by log-loss on scores that each row got from a model
that never saw it (``cv``-fold cross-validation), so confidence means what it says.
"""

from __future__ import annotations

import copy

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.svm import LinearSVC
from sklearn.utils.validation import check_is_fitted


def balanced_weights(y: np.ndarray, power: float) -> dict[int, float]:
    """Per-class weights ``(n / (K * n_c)) ** power``: 0 is unweighted, 1 is sklearn's "balanced"."""
    classes, counts = np.unique(y, return_counts=True)
    weights = (len(y) / (len(classes) * counts)) ** power
    return {int(c): float(w) for c, w in zip(classes, weights)}


def fit_temperature(scores: np.ndarray, y_index: np.ndarray) -> float:
    """The temperature minimising the log-loss of ``softmax(scores / T)`` (searched on a log scale)."""

    def loss(log_t: float) -> float:
        return float(-log_softmax(scores / np.exp(log_t), axis=1)[np.arange(len(y_index)), y_index].mean())

    return float(np.exp(minimize_scalar(loss, bounds=(-6.0, 3.0), method="bounded").x))


class CalibratedLinearSVC(ClassifierMixin, BaseEstimator):
    """LinearSVC with class weights ``balanced ** class_weight_power`` and temperature-scaled probabilities."""

    def __init__(self, C: float = 1.0, class_weight_power: float = 0.5, cv: int = 5, random_state: int = 0) -> None:
        self.C = C
        self.class_weight_power = class_weight_power
        self.cv = cv
        self.random_state = random_state

    def _svc(self, y: np.ndarray) -> LinearSVC:
        return LinearSVC(C=self.C, class_weight=balanced_weights(y, self.class_weight_power),
                         random_state=self.random_state)

    def fit(self, X, y) -> "CalibratedLinearSVC":
        self.classes_, y_index = np.unique(np.asarray(y), return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError("At least two intents are needed to train a classifier.")
        # Work on class indices: cross_val_predict encodes labels that way, and class weights must match.
        folds = StratifiedKFold(n_splits=self.cv, shuffle=True, random_state=self.random_state)
        oof = cross_val_predict(self._svc(y_index), X, y_index, cv=folds, method="decision_function")
        valid = oof > -1e30  # cross_val_predict fills classes missing from a training fold with -max float
        oof = np.where(valid, oof, oof[valid].min())
        self.temperature_ = fit_temperature(oof, y_index)
        self.svc_ = self._svc(y_index).fit(X, y_index)
        return self

    def __getstate__(self) -> dict:
        """Pickle the weights as float32 (half the file; scores move by < 1e-6)."""
        state = self.__dict__.copy()
        if "svc_" in state:
            svc = state["svc_"] = copy.copy(state["svc_"])
            svc.coef_ = svc.coef_.astype(np.float32)
        return state

    def __setstate__(self, state: dict) -> None:
        """Back to float64 weights: sparse products with mixed dtypes would copy them on every call."""
        if "svc_" in state:
            state["svc_"].coef_ = state["svc_"].coef_.astype(np.float64)
        self.__dict__.update(state)

    def decision_function(self, X) -> np.ndarray:
        check_is_fitted(self, "svc_")
        scores = self.svc_.decision_function(X)
        return scores if scores.ndim == 2 else np.column_stack([-scores, scores])

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities in ``classes_`` order."""
        return softmax(self.decision_function(X) / self.temperature_, axis=1)

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.decision_function(X).argmax(axis=1)]
