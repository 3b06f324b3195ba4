"""What a search found: the trials as a table, the best trial scored again with the full recipe against the
defaults (with paired bootstrap intervals), and the best-parameters record (``intent_lib.best_params``).

The search ranks trials with a cheaper recipe (``intent_lib.tuning``). ``rescore`` refits the defaults and the
search's best trial with the served model's recipe; the best trial's parameters are kept only when that full
score beats the defaults' full score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import optuna
import pandas as pd
from joblib import parallel_config

from intent_lib.best_params import build_record
from intent_lib.classifier import CalibratedLinearSVC
from intent_lib.metrics import bootstrap_scores, format_interval, percentile_interval, weighted_scores
from intent_lib.model import ModelParams
from intent_lib.refit import SplitData
from intent_lib.split import Split
from intent_lib.tuning import OBJECTIVES, SEARCH_FOLDS
from intent_lib.tuning_storage import redact

ENDED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)


def finished_trials(study: optuna.Study) -> int:
    """Trials that have run to an end (complete, pruned or failed); an enqueued trial is not one yet."""
    return len(study.get_trials(deepcopy=False, states=ENDED))


def trial_counts(study: optuna.Study) -> dict[str, int]:
    """How many trials completed, were pruned, failed."""
    return {state.name.lower(): len(study.get_trials(deepcopy=False, states=(state,))) for state in ENDED}


def trial_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, value, seconds, whether it is the default, worker, and its params."""
    frame = study.trials_dataframe(attrs=("number", "state", "value", "params", "user_attrs"))
    frame.columns = [c.removeprefix("params_").removeprefix("user_attrs_") for c in frame.columns]
    if "default" not in frame:
        frame["default"] = False
    frame["default"] = frame["default"].eq(True)
    return frame.drop(columns=[c for c in ("scores",) if c in frame])


def top_trials(trials: pd.DataFrame, params: Sequence[str], n: int = 10) -> pd.DataFrame:
    """The ``n`` best completed trials of ``trial_table``, one column each (``trial 7``, ``trial 0 (defaults)``),
    best first; rows: the search score, seconds, then the searched ``params``. A trial a column keeps the table
    narrow whatever the number of parameters."""
    done = trials[trials["state"] == "COMPLETE"].sort_values("value", ascending=False).head(n)
    rows = ["value", "seconds", *params]
    table = done.set_index("number")[[r for r in rows if r in done]].T.astype(object)
    table.columns = [f"trial {n}" + (" (defaults)" if default else "") for n, default in zip(done["number"], done["default"])]
    return table.rename(index={"value": "search score"})


def default_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The completed trial of the default configuration, if any."""
    done = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if t.user_attrs.get("default")]
    return done[0] if done else None


def compare(y_val: np.ndarray, labels: np.ndarray, predicted: dict[str, np.ndarray], n_resamples: int = 1000,
            seed: int = 0, confidence: float = 0.95, metrics: Sequence[str] = OBJECTIVES) -> pd.DataFrame:
    """The ``default`` and ``tuned`` validation predictions scored with paired bootstrap intervals; the row
    ``tuned - default`` is the difference resample by resample.

    Columns: config, metric, point, low, high, interval. Points use the bootstrap's convention (macro over the
    intents present), which equals the objective whenever every intent of the training rows is in the validation rows.
    """
    samples, points = {}, {}
    for config in ("default", "tuned"):
        points[config] = weighted_scores(np.ones(len(y_val)), y_val, predicted[config], labels)[0].iloc[0]
        samples[config] = bootstrap_scores(y_val, predicted[config], labels, n_resamples, seed)[0]
    points["tuned - default"] = points["tuned"] - points["default"]
    samples["tuned - default"] = samples["tuned"] - samples["default"]
    rows = []
    for config in points:
        low, high = percentile_interval(samples[config][list(metrics)], confidence)
        for metric, lo, hi in zip(metrics, low, high):
            point = float(points[config][metric])
            text = format_interval(point, lo, hi, 3)
            rows.append({"config": config, "metric": metric, "point": point, "low": float(lo), "high": float(hi),
                         "interval": f"+{text}" if config == "tuned - default" and point >= 0 else text})
    return pd.DataFrame(rows)


@dataclass
class Rescored:
    """The defaults and the search's best trial, both refitted with the full recipe and scored on the validation
    split: ``scores`` by config (``default``, ``tuned``), and their bootstrap ``comparison``."""

    best: optuna.trial.FrozenTrial
    objective: str
    scores: dict[str, dict[str, float]]
    comparison: pd.DataFrame

    @property
    def tuned(self) -> ModelParams:
        return ModelParams.from_dict(self.best.params)

    @property
    def wins(self) -> bool:
        """Whether the best trial's full score beats the defaults' (the only way its parameters are kept)."""
        return self.scores["tuned"][self.objective] > self.scores["default"][self.objective]

    @property
    def chosen(self) -> ModelParams:
        return self.tuned if self.wins else ModelParams()


def rescore(data: SplitData, study: optuna.Study, n_resamples: int = 1000, seed: int = 0,
            n_jobs: int | None = 1) -> Rescored:
    """The study's best trial and the defaults refitted with the full recipe (their folds ``n_jobs`` at a
    time), scored, and compared with a paired bootstrap."""
    best = study.best_trial
    tuned = ModelParams.from_dict(best.params)
    with parallel_config(n_jobs=n_jobs):
        predicted = {"default": data.predict(ModelParams())}
        predicted["tuned"] = predicted["default"] if tuned == ModelParams() else data.predict(tuned)
    scores = {config: data.scores(values) for config, values in predicted.items()}
    comparison = compare(data.y_val, data.labels, predicted, n_resamples, seed)
    return Rescored(best, study.user_attrs["objective"], scores, comparison)


def recipe(study: optuna.Study) -> dict[str, int]:
    """The calibration folds of a search trial and of the full recipe (the served model's)."""
    return {"search_folds": study.user_attrs.get("folds", SEARCH_FOLDS), "full_folds": CalibratedLinearSVC().cv}


def best_params_record(study: optuna.Study, rescored: Rescored, storage_url: str | None, split: Split, seed: int,
                       bootstrap: dict[str, Any], commit: str) -> dict[str, Any]:
    """The best-parameters record (``intent_lib.best_params``): the search's best trial with its full-recipe
    scores, and the parameters to train with, its own only when they beat the defaults' full score."""
    return build_record(
        params=rescored.chosen, objective=rescored.objective, score=rescored.scores["tuned"][rescored.objective],
        scores=rescored.scores["tuned"], default_score=rescored.scores["default"][rescored.objective],
        trial=rescored.best.number, split=split, bootstrap=bootstrap, commit=commit,
        study={"name": study.study_name, "storage": redact(storage_url), "trials": trial_counts(study),
               "sampler": f"TPESampler(seed={seed})", "pruning": study.user_attrs.get("prune"),
               "recipe": recipe(study), "search_score": rescored.best.value})
