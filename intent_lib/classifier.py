"""A linear SVM whose scores become honest probabilities, calibrated on out-of-fold scores.

Every training row gets scores from an SVM that never saw it (``cv``-fold cross-validation). On those:
1. a sigmoid per intent maps its score to a one-vs-rest probability (Platt scaling);
2. the normalised probabilities are divided by ``prior ** prior_power`` (a mild boost for rare intents:
   better macro-F1 at equal accuracy, measured by 5-fold CV on the real data);
3. a temperature, fitted by log-loss, sharpens or softens the result so that confidence means what it says.
``predict`` is the argmax of ``predict_proba``; the final SVM is refitted on all rows. The out-of-fold
probabilities of the training rows stay on the fitted estimator (``oof_proba_``, not pickled) to calibrate
the conformal prediction sets (``intent_lib.uncertainty``). Under ``joblib.parallel_config(n_jobs=k)`` the
``cv`` fold fits and the final fit run ``k`` at a time in worker processes, with the same result as one at a time.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
from joblib import Parallel, delayed
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC
from sklearn.utils.validation import check_array, check_is_fitted


def balanced_weights(y: np.ndarray, power: float) -> dict[int, float]:
    """Per-class weights ``(n / (K * n_c)) ** power``: 0 is unweighted, 1 is sklearn's "balanced"."""
    classes, counts = np.unique(y, return_counts=True)
    weights = (len(y) / (len(classes) * counts)) ** power
    return {int(c): float(w) for c, w in zip(classes, weights)}


def fit_temperature(logits: np.ndarray, y_index: np.ndarray) -> float:
    """The temperature minimising the log-loss of ``softmax(logits / T)`` (searched on a log scale)."""

    def loss(log_t: float) -> float:
        return float(-log_softmax(logits / np.exp(log_t), axis=1)[np.arange(len(y_index)), y_index].mean())

    return float(np.exp(minimize_scalar(loss, bounds=(-6.0, 3.0), method="bounded").x))


def fit_sigmoids(scores: np.ndarray, y_index: np.ndarray) -> np.ndarray:
    """Per-class Platt scaling: rows (slope, intercept) mapping a class's score to P(that class)."""
    params = np.empty((scores.shape[1], 2))
    for k in range(scores.shape[1]):
        platt = LogisticRegression(C=1e4).fit(scores[:, [k]], (y_index == k).astype(int))
        params[k] = platt.coef_[0, 0], platt.intercept_[0]
    return params


def one_column_per_class(scores: np.ndarray) -> np.ndarray:
    """A linear SVM's scores with one column per class: two classes get one score column, made two."""
    return scores if scores.ndim == 2 else np.column_stack([-scores, scores])


def _fit_svc(svc: LinearSVC, X, y: np.ndarray) -> LinearSVC:
    return svc.fit(X, y)


def _fold_scores(svc: LinearSVC, X, y: np.ndarray, rows: np.ndarray, held_out: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit ``svc`` on ``rows``: the ``held_out`` rows, the classes it saw, its scores of them (a column each)."""
    svc.fit(X[rows], y[rows])
    return held_out, svc.classes_, one_column_per_class(svc.decision_function(X[held_out]))


class CalibratedLinearSVC(ClassifierMixin, BaseEstimator):
    """LinearSVC with class weights ``balanced ** class_weight_power`` and calibrated probabilities."""

    def __init__(self, C: float = 1.0, class_weight_power: float = 0.5, prior_power: float = 0.15, cv: int = 5,
                 random_state: int = 0) -> None:
        self.C = C
        self.class_weight_power = class_weight_power
        self.prior_power = prior_power
        self.cv = cv
        self.random_state = random_state

    def _svc(self, y: np.ndarray) -> LinearSVC:
        return LinearSVC(C=self.C, class_weight=balanced_weights(y, self.class_weight_power),
                         random_state=self.random_state)

    def fit(self, X, y) -> "CalibratedLinearSVC":
        self.classes_, y_index = np.unique(np.asarray(y), return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError("At least two intents are needed to train a classifier.")
        X = check_array(X, accept_sparse="csr")  # rows are taken by index: CSR or an array
        self.svc_, oof = self._fit_svc_and_oof_scores(X, y_index)
        self.sigmoids_ = fit_sigmoids(oof, y_index)
        self.log_prior_ = np.log(np.bincount(y_index, minlength=len(self.classes_)) / len(y_index))
        self.temperature_ = 1.0
        self.temperature_ = fit_temperature(self._log_scores(oof), y_index)
        self.oof_proba_ = softmax(self._log_scores(oof), axis=1)
        return self

    def _fit_svc_and_oof_scores(self, X, y_index: np.ndarray) -> tuple[LinearSVC, np.ndarray]:
        """The SVM fitted on all rows, and each row's scores from the ``cv``-fold SVM that did not see it."""
        folds = StratifiedKFold(n_splits=self.cv, shuffle=True, random_state=self.random_state)
        with warnings.catch_warnings():  # an intent with fewer rows than folds is expected and handled below
            warnings.filterwarnings("ignore", message="The least populated class in y has only",
                                    category=UserWarning)
            splits = list(folds.split(X, y_index))
        # The final fit, the longest, goes first so that the folds fill the other workers meanwhile. Each fit
        # runs alone in its process (liblinear's random generator is per process): the result does not depend
        # on the caller's n_jobs (tests/test_model.py).
        fits = [delayed(_fit_svc)(self._svc(y_index), X, y_index)]
        fits += [delayed(_fold_scores)(self._svc(y_index), X, y_index, rows, held_out) for rows, held_out in splits]
        svc, *fold_scores = Parallel(backend="loky")(fits)
        oof = np.full((len(y_index), len(self.classes_)), np.nan)
        for held_out, seen, scores in fold_scores:
            oof[np.ix_(held_out, seen)] = scores
        return svc, np.where(np.isnan(oof), np.nanmin(oof), oof)  # an intent a fold never saw: the lowest score

    def _log_scores(self, scores: np.ndarray) -> np.ndarray:
        """Unnormalised log-probabilities: Platt sigmoids, prior correction, temperature."""
        platt = np.clip(expit(scores * self.sigmoids_[:, 0] + self.sigmoids_[:, 1]), 1e-12, None)
        return (np.log(platt) - self.prior_power * self.log_prior_) / self.temperature_

    def __getstate__(self) -> dict:
        """Pickle the weights as float32 (half the file; scores move by < 1e-6), without ``oof_proba_``."""
        state = self.__dict__.copy()
        state.pop("oof_proba_", None)
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
        """The SVM's raw scores, one column per class."""
        check_is_fitted(self, "svc_")
        return one_column_per_class(self.svc_.decision_function(X))

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities in ``classes_`` order."""
        return self.proba_from_scores(self.decision_function(X))

    def proba_from_scores(self, scores: np.ndarray) -> np.ndarray:
        """Probabilities in ``classes_`` order from the SVM's raw scores (``decision_function``'s)."""
        return softmax(self._log_scores(scores), axis=1)

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
