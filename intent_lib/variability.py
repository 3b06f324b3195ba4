"""How much the scores move (notebook 04_variability): two different questions, kept apart.

* Evaluation uncertainty: the saved model, its validation predictions, a paired bootstrap of the
  validation rows (``Bootstrap``). It says how precisely 1,400-odd validation questions measure
  this one model.
* Training variability: the same hyperparameters refitted on other train/validation splits of all
  labelled rows (``SeedRuns``). It says how much the scores depend on which rows happened to be
  held out. Refits go through ``refit.fit_predict`` on cached features: the full classifier, its
  calibration included, so predictions are those ``fit_model`` would give. Seeds are refitted one after
  the other; each refit's calibration folds run in ``n_jobs`` worker processes.

Macro averages are over the intents present (true or predicted) in each resample or split.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
from joblib import parallel_config

from intent_lib.intents import intent_label
from intent_lib.split import stratified_split
from intent_lib.metrics import SUMMARY_KEYS, bootstrap_scores, format_interval, percentile_interval, weighted_scores
from intent_lib.model import ModelParams
from intent_lib.refit import FeatureCache, fit_predict

MAIN_METRICS = ("accuracy", "f1_macro", "precision_macro", "recall_macro")


@dataclass
class Bootstrap:
    """Paired bootstrap of one model's validation predictions."""

    point: pd.Series  # SUMMARY_KEYS on the validation rows as they are
    samples: pd.DataFrame  # one row per resample
    per_intent: pd.DataFrame  # intent, name, label, support, f1, low, high, width
    n_resamples: int
    seed: int
    confidence: float

    def summary(self) -> pd.DataFrame:
        """metric, point, low, high, interval text (``0.70 [0.68, 0.72]``)."""
        low, high = percentile_interval(self.samples, self.confidence)
        table = pd.DataFrame({"metric": list(SUMMARY_KEYS), "point": self.point.to_numpy(), "low": low, "high": high})
        table["interval"] = [format_interval(*row) for row in table[["point", "low", "high"]].to_numpy()]
        return table

    def unreliable(self, max_width: float = 0.3) -> pd.DataFrame:
        """Intents whose F1 interval is wider than ``max_width``, widest first."""
        return self.per_intent[self.per_intent["width"] > max_width].sort_values("width", ascending=False)


def bootstrap_predictions(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[int],
                          names: dict[int, str], n_resamples: int = 1000, seed: int = 0,
                          confidence: float = 0.95) -> Bootstrap:
    """Bootstrap ``n_resamples`` resamples of the validation rows; percentile intervals at ``confidence``."""
    labels = np.asarray(labels)
    point, point_f1 = weighted_scores(np.ones(len(y_true)), y_true, y_pred, labels)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    samples, f1 = bootstrap_scores(y_true, y_pred, labels, n_resamples, seed)
    with warnings.catch_warnings():  # intents absent from the validation rows and the predictions: all NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = percentile_interval(f1, confidence)
    support = (np.asarray(y_true)[:, None] == labels[None, :]).sum(0)
    per_intent = pd.DataFrame({"intent": labels, "name": [names.get(int(i), "") for i in labels],
                               "label": [intent_label(i, names) for i in labels], "support": support,
                               "f1": point_f1[0], "low": low, "high": high})
    per_intent["width"] = per_intent["high"] - per_intent["low"]
    per_intent["interval"] = [format_interval(*r) for r in per_intent[["f1", "low", "high"]].to_numpy()]
    present = per_intent["f1"].notna()
    return Bootstrap(point.iloc[0], samples, per_intent[present].reset_index(drop=True), n_resamples, seed, confidence)


@dataclass
class SeedRuns:
    """The same configuration refitted and scored on several train/validation splits."""

    runs: pd.DataFrame  # seed, train_rows, val_rows, seconds, SUMMARY_KEYS
    per_intent: pd.DataFrame  # seed, intent, support, f1 (intents present in that split's validation or predictions)

    def summary(self) -> pd.DataFrame:
        """metric, mean, std, min, max, spread text (``mean [min, max]``)."""
        values = self.runs[list(SUMMARY_KEYS)]
        table = pd.DataFrame({"metric": list(SUMMARY_KEYS), "mean": values.mean().to_numpy(),
                              "std": values.std(ddof=1).to_numpy() if len(values) > 1 else np.zeros(len(SUMMARY_KEYS)),
                              "min": values.min().to_numpy(), "max": values.max().to_numpy()})
        table["spread"] = [format_interval(*r) for r in table[["mean", "min", "max"]].to_numpy()]
        return table

    def per_intent_summary(self, names: dict[int, str]) -> pd.DataFrame:
        """Per intent: mean, std, min and max F1 over the splits it appears in, mean validation support."""
        grouped = self.per_intent.groupby("intent")
        table = grouped["f1"].agg(["mean", "std", "min", "max", "count"]).rename(columns={"count": "splits"})
        table["support"] = grouped["support"].mean()
        table = table.reset_index()
        table.insert(1, "name", [names.get(int(i), "") for i in table["intent"]])
        table["spread"] = [format_interval(*r) for r in table[["mean", "min", "max"]].to_numpy()]
        return table


def refit_over_seeds(labelled: pd.DataFrame, params: ModelParams, val_size: float, seeds: Sequence[int],
                     cache: FeatureCache | None = None, n_jobs: int | None = None) -> SeedRuns:
    """For each seed: split ``labelled`` (ID, question, intention) as 01_split does, fit on train, score validation.

    The seed sets both the split and the SVM's ``random_state``. ``n_jobs`` processes fit each refit's
    classifier folds (joblib's convention: -1 is one per core); the scores do not depend on it.
    """
    labelled = labelled.reset_index(drop=True)
    cache = cache or FeatureCache(labelled["question"])
    splits = [(int(seed), *stratified_split(labelled, val_size=val_size, seed=int(seed))) for seed in seeds]
    position = pd.Series(np.arange(len(labelled)), index=labelled["ID"])
    labels = np.unique(labelled["intention"])
    with parallel_config(n_jobs=n_jobs):
        results = [_refit(cache, params, seed, train, val, position[train["ID"]].to_numpy(),
                          position[val["ID"]].to_numpy(), labels) for seed, train, val in splits]
    return SeedRuns(pd.DataFrame([run for run, _ in results]), pd.concat([f1 for _, f1 in results], ignore_index=True))


def _refit(cache: FeatureCache, params: ModelParams, seed: int, train: pd.DataFrame, val: pd.DataFrame,
           train_rows: np.ndarray, val_rows: np.ndarray, labels: np.ndarray) -> tuple[dict[str, Any], pd.DataFrame]:
    """One split seed of ``refit_over_seeds``: its run row and its per-intent F1 rows."""
    started = time.perf_counter()
    predicted = fit_predict(cache, params, train_rows, train["intention"], val_rows, random_state=seed)
    scores, f1 = weighted_scores(np.ones(len(val)), val["intention"], predicted, labels)
    support = (val["intention"].to_numpy()[:, None] == labels[None, :]).sum(0)
    run = {"seed": seed, "train_rows": len(train), "val_rows": len(val),
           "seconds": round(time.perf_counter() - started, 2)} | scores.iloc[0].to_dict()
    present = ~np.isnan(f1[0])
    return run, pd.DataFrame({"seed": seed, "intent": labels[present], "support": support[present],
                              "f1": f1[0][present]})


def comparison_table(boot: Bootstrap, seeds: SeedRuns, metrics: Sequence[str] = MAIN_METRICS) -> pd.DataFrame:
    """Long table for one chart: per metric, the bootstrap interval and the range over split seeds
    (metric, kind, value, low, high)."""
    b = boot.summary().set_index("metric")
    s = seeds.summary().set_index("metric")
    rows = []
    for metric in metrics:
        rows.append({"metric": metric, "kind": f"bootstrap {boot.confidence:.0%}", "value": b.point[metric],
                     "low": b.low[metric], "high": b.high[metric]})
        rows.append({"metric": metric, "kind": f"{len(seeds.runs)} split seeds (min–max)",
                     "value": s["mean"][metric], "low": s["min"][metric], "high": s["max"][metric]})
    return pd.DataFrame(rows)


def variability_record(boot: Bootstrap, seeds: SeedRuns, names: dict[int, str], card: dict[str, Any],
                       params: ModelParams, split_seed: int) -> dict[str, Any]:
    """The content of the variability report's JSON file."""
    summary = boot.summary().set_index("metric")
    spread = seeds.summary().set_index("metric")
    return {
        "model_version": card.get("model_version"),
        "dataset": card.get("dataset"),
        "bootstrap": {
            "what": "evaluation uncertainty of the saved model: paired bootstrap of its validation predictions",
            "split_seed": split_seed, "n_resamples": boot.n_resamples, "seed": boot.seed,
            "confidence": boot.confidence, "interval": "percentile",
            "summary": {m: {k: float(summary.loc[m, k]) for k in ("point", "low", "high")} for m in SUMMARY_KEYS},
            "per_intent_f1": [{"intent": int(r.intent), "name": r.name, "support": int(r.support), "point": float(r.f1),
                               "low": float(r.low), "high": float(r.high)} for r in boot.per_intent.itertuples()],
        },
        "seeds": {
            "what": "training variability: the same hyperparameters refitted on other train/validation splits "
                    "(the full classifier refit on cached features, calibration included: predictions as fit_model gives)",
            "seeds": seeds.runs["seed"].tolist(), "params": params.to_dict(),
            "runs": seeds.runs.to_dict(orient="records"),
            "summary": {m: {k: float(spread.loc[m, k]) for k in ("mean", "std", "min", "max")} for m in SUMMARY_KEYS},
            "per_intent_f1": [{"intent": int(r.intent), "name": r.name, "splits": int(r.splits),
                               "mean": float(r.mean), "std": None if np.isnan(r.std) else float(r.std),
                               "min": float(r.min), "max": float(r.max)}
                              for r in seeds.per_intent_summary(names).itertuples()],
        },
    }


