"""Does cleaning the training labels help? The relabel experiment of notebook 06_data_quality (off by default).

Label issues are found on the training rows only (one fit, its out-of-fold probabilities), so the experiment never
peeks at validation; the model is refitted without the top-ranked ones and with their suggested intents instead,
and every variant is scored on the untouched validation split with one paired bootstrap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from intent_lib.data_quality import label_issues
from intent_lib.metrics import bootstrap_scores, format_interval, percentile_interval
from intent_lib.model import ModelParams, fit_model
from intent_lib.refit import SplitData, fit_predict


def training_issues(train: pd.DataFrame, params: ModelParams, names: dict[int, str],
                    random_state: int = 0) -> pd.DataFrame:
    """Label issues of the training rows found without the validation rows: one fit on the training rows,
    whose out-of-fold probabilities feed ``label_issues`` (the relabel experiment must not peek at validation)."""
    classifier = fit_model(train["question"], train["intention"], params, random_state).named_steps["classifier"]
    return label_issues(train, classifier.classes_, classifier.oof_proba_, names)


@dataclass
class RelabelExperiment:
    """Validation scores of the model refitted on cleaned training labels, paired with the unchanged model."""

    issues: pd.DataFrame  # label_issues of the training split
    results: pd.DataFrame  # variant, changed, accuracy/f1_macro point, interval, difference and its interval
    confidence: float

    def helps(self) -> bool:
        """Whether some variant beats the baseline beyond the paired interval on both accuracy and macro-F1."""
        changed = self.results[self.results["variant"] != "baseline"]
        return bool(((changed["accuracy_diff_low"] > 0) & (changed["f1_macro_diff_low"] > 0)).any())


def relabel_experiment(data: SplitData, train_ids: Sequence[int], train_issues: pd.DataFrame, params: ModelParams,
                       tops: Sequence[int | None], n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95,
                       random_state: int = 0) -> RelabelExperiment:
    """Refit without the top ``k`` issues of the training split (``None``: all) and with their suggested
    intents instead; score every variant on the validation rows with one paired bootstrap.

    ``train_issues`` are ``label_issues`` of the training rows only (found on their out-of-fold
    probabilities), ``train_ids`` the IDs of ``data``'s training rows in order.
    """
    variants = {"baseline": (data.train_rows, data.y_train, 0)}
    for top in tops:
        picked = train_issues.head(top) if top is not None else train_issues
        label = f"top {len(picked)}" if top is not None else f"all {len(picked)}"
        positions = pd.Index(train_ids).get_indexer(picked["ID"])
        flagged = np.isin(data.train_rows, data.train_rows[positions])
        variants[f"without {label}"] = (data.train_rows[~flagged], data.y_train[~flagged], len(picked))
        relabelled = data.y_train.copy()
        relabelled[positions] = picked["suggested_intent"].to_numpy()
        variants[f"relabelled {label}"] = (data.train_rows, relabelled, len(picked))
    rows: list[dict[str, Any]] = []
    base_samples = base_point = None
    for variant, (train_rows, y_train, changed) in variants.items():
        predicted = fit_predict(data.cache, params, train_rows, y_train, data.val_rows, random_state)
        samples, _ = bootstrap_scores(data.y_val, predicted, data.labels, n_resamples, seed)
        point = data.scores(predicted)
        if base_samples is None:
            base_samples, base_point = samples, point
        row: dict[str, Any] = {"variant": variant, "changed": changed}
        for metric in ("accuracy", "f1_macro"):
            low, high = percentile_interval(samples[metric], confidence)
            d_low, d_high = percentile_interval(samples[metric] - base_samples[metric], confidence)
            d_point = point[metric] - base_point[metric]
            row |= {metric: point[metric], f"{metric}_interval": format_interval(point[metric], low, high, 3),
                    f"{metric}_diff": d_point, f"{metric}_diff_low": float(d_low), f"{metric}_diff_high": float(d_high),
                    f"{metric}_diff_interval": format_interval(d_point, d_low, d_high, 3)}
        rows.append(row)
    return RelabelExperiment(train_issues, pd.DataFrame(rows), confidence)
