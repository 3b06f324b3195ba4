"""Did a change help? A paired bootstrap of two models' predictions of the same validation rows.

Both prediction vectors are resampled with the same draws (``metrics.bootstrap_scores`` with one seed), so each
resample scores the two models on the same rows: the intervals are those of the differences. Per-intent F1
changes get a two-sided bootstrap p-value each, and the Benjamini-Hochberg procedure keeps those that survive a
false discovery rate of ``1 - confidence`` over all the intents.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from intent_lib.metrics import DIGITS, bootstrap_scores, percentile_interval, weighted_scores

HEADLINE = ("accuracy", "f1_macro")  # the differences the console line and the index page show
LABELS = {"accuracy": "accuracy", "f1_macro": "macro-F1"}


@dataclass(frozen=True)
class Delta:
    """A difference (this run minus the baseline) with its percentile interval."""

    point: float
    low: float
    high: float

    @property
    def within_noise(self) -> bool:
        return self.low <= 0 <= self.high

    def text(self, digits: int = DIGITS) -> str:
        """``+0.004 [-0.006, 0.013]``."""
        return f"{self.point:+.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


@dataclass(frozen=True)
class IntentChange:
    intent: int
    f1: float  # this run
    baseline_f1: float
    delta: Delta
    p_value: float


@dataclass
class Comparison:
    """This run against a baseline on ``n`` paired validation rows."""

    n: int
    n_resamples: int
    seed: int
    confidence: float
    deltas: dict[str, Delta]  # SUMMARY_KEYS -> difference
    changed_intents: list[IntentChange] = field(default_factory=list)  # survivors of Benjamini-Hochberg
    intents_tested: int = 0

    def verdict(self) -> str:
        """``within noise`` when every headline interval holds 0, else which way it moved."""
        moved = [LABELS[k] + (" up" if self.deltas[k].point > 0 else " down")
                 for k in HEADLINE if not self.deltas[k].within_noise]
        return "within noise" if not moved else ", ".join(moved) + " beyond noise"

    def line(self, baseline: str) -> str:
        """The console line: ``vs run abc123: Δ accuracy +0.004 [-0.006, 0.013], Δ macro-F1 ..., within noise``."""
        deltas = ", ".join(f"Δ {LABELS[k]} {self.deltas[k].text()}" for k in HEADLINE)
        return (f"vs {baseline}: {deltas}, {self.verdict()}; {len(self.changed_intents)} of {self.intents_tested} "
                f"intents' F1 changed beyond noise")

    def to_dict(self) -> dict[str, Any]:
        content = asdict(self)
        content["deltas"] = {k: asdict(v) | {"within_noise": v.within_noise} for k, v in self.deltas.items()}
        content["verdict"] = self.verdict()
        return content


def benjamini_hochberg(p_values: Sequence[float], rate: float = 0.05) -> np.ndarray:
    """Which hypotheses are rejected at false discovery rate ``rate`` (NaN p-values are never rejected)."""
    p = np.asarray(p_values, dtype=float)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    thresholds = rate * np.arange(1, len(order) + 1) / max(len(order), 1)
    below = np.flatnonzero(p[order] <= thresholds)
    rejected = np.zeros(len(p), dtype=bool)
    if below.size:
        rejected[order[:below[-1] + 1]] = True
    return rejected


def bootstrap_p_values(differences: np.ndarray) -> np.ndarray:
    """Two-sided bootstrap p-values of ``differences`` (resamples, tests) against no change, NaN resamples
    ignored: twice the smaller share of resamples on either side of 0, with the usual +1 correction."""
    valid = ~np.isnan(differences)
    count = valid.sum(0)
    below = ((differences <= 0) & valid).sum(0)
    above = ((differences >= 0) & valid).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.minimum(1.0, 2 * (np.minimum(below, above) + 1) / (count + 1))
    return np.where(count > 0, p, np.nan)


def compare_predictions(y_true: Sequence[int], y_pred: Sequence[int], baseline_pred: Sequence[int],
                        labels: Sequence[int], n_resamples: int = 4000, seed: int = 0,
                        confidence: float = 0.95) -> Comparison:
    """Paired bootstrap of ``y_pred`` against ``baseline_pred`` (both predicting ``y_true``'s rows).

    ``n_resamples`` must let the smallest p-value (``2 / (n_resamples + 1)``) pass the correction's first
    threshold, ``(1 - confidence) / len(labels)``: 4,000 does for 51 intents at 95%.
    """
    if not len(y_true) == len(y_pred) == len(baseline_pred):
        raise ValueError("the two prediction vectors and the labels must cover the same rows")
    labels = np.asarray(labels)
    ours, ours_f1 = bootstrap_scores(y_true, y_pred, labels, n_resamples, seed)
    theirs, theirs_f1 = bootstrap_scores(y_true, baseline_pred, labels, n_resamples, seed)
    full = np.ones((1, len(y_true)))
    point, point_f1 = weighted_scores(full, y_true, y_pred, labels)
    base_point, base_f1 = weighted_scores(full, y_true, baseline_pred, labels)
    differences = ours - theirs
    low, high = percentile_interval(differences, confidence)
    deltas = {key: Delta(float(point[key].iloc[0] - base_point[key].iloc[0]), float(lo), float(hi))
              for key, lo, hi in zip(differences.columns, low, high)}
    # An intent neither true nor predicted by a model in a resample has no F1 there: count it as 0 beside the
    # other model's, so a model that starts predicting an intent absent from the rows is not a NaN.
    f1_diff = np.where(np.isnan(ours_f1) & np.isnan(theirs_f1), np.nan,
                       np.nan_to_num(ours_f1) - np.nan_to_num(theirs_f1))
    p_values = bootstrap_p_values(f1_diff)
    survivors = benjamini_hochberg(p_values, 1 - confidence)
    with np.errstate(all="ignore"):
        f1_low, f1_high = percentile_interval(f1_diff, confidence)
    changed = [IntentChange(int(labels[i]), float(np.nan_to_num(point_f1[0, i])), float(np.nan_to_num(base_f1[0, i])),
                            Delta(float(np.nan_to_num(point_f1[0, i]) - np.nan_to_num(base_f1[0, i])),
                                  float(f1_low[i]), float(f1_high[i])), float(p_values[i]))
               for i in np.flatnonzero(survivors)]
    return Comparison(len(y_true), n_resamples, seed, confidence, deltas, changed,
                      intents_tested=int((~np.isnan(p_values)).sum()))
