"""The hyperparameter search of notebook 05_tune: the search space, what a trial scores, and the Optuna study.

Search. Validation rows are only ever predicted and scored, never fitted on: the TF-IDF vocabularies and the SVM
see the training rows only. The study is created by the notebook (``open_study``), which enqueues the default
configuration as its first trial. Trials refit on cached features (``intent_lib.refit``).

The search recipe. A trial only ranks configurations on the fixed validation split, so it fits a cheaper
classifier than the served model: the same calibrated SVM, calibrated on ``SEARCH_FOLDS`` out-of-fold folds
instead of the model's five (``bench/bench_tuning.py`` measures how often both recipes rank two configurations
alike). The search's best trial is then scored again with the full recipe (``intent_lib.tuning_results``), and
that score, not the search's, decides against the defaults.

Pruning (``prune=True``; off by default). Each trial first fits on ``STAGE_FRACTION`` of the training rows
(stratified) and reports that validation score; the median pruner stops trials whose checkpoint score is below the
median of earlier trials at the same stage. It is a learning-curve checkpoint, not the objective itself: on the
real data its ranking of configurations was unrelated to the full recipe's (``bench/bench_tuning.py
--checkpoint``), so pruning stops trials about at random while every trial pays for the checkpoint.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any, Sequence

import numpy as np
import optuna

from intent_lib.model import ModelParams
from intent_lib.paths import PROCESSED_DIR
from intent_lib.refit import SplitData
from intent_lib.split import Split
from intent_lib.tuning_storage import open_storage, redact

OBJECTIVES = ("accuracy", "f1_macro")
SEARCH_FOLDS = 2  # calibration folds of a search trial's classifier (the served model's: 5)
STAGE_FRACTION = 0.5  # share of the training rows fitted at the pruning checkpoint
STARTUP_TRIALS = 5  # trials that are never pruned: the median needs them


def stratified_subset(y: Sequence[int], fraction: float, seed: int) -> np.ndarray:
    """Sorted positions of about ``fraction`` of the rows of each class (at least one per class)."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        keep.append(rng.permutation(rows)[: max(1, int(np.ceil(fraction * len(rows))))])
    return np.sort(np.concatenate(keep))


def suggest_params(trial: optuna.Trial) -> ModelParams:
    """The search space; the defaults (``ModelParams()``) lie inside it."""
    return ModelParams(
        word_ngram_max=trial.suggest_int("word_ngram_max", 1, 3),
        word_min_df=trial.suggest_int("word_min_df", 1, 3),
        char_ngram_min=trial.suggest_int("char_ngram_min", 1, 3),
        char_ngram_max=trial.suggest_int("char_ngram_max", 4, 6),
        char_min_df=trial.suggest_int("char_min_df", 1, 4),
        sublinear_tf=trial.suggest_categorical("sublinear_tf", [True, False]),
        vector_weight=trial.suggest_float("vector_weight", 0.0, 1.5),
        sentence_weight=trial.suggest_float("sentence_weight", 0.0, 1.5),
        C=trial.suggest_float("C", 0.05, 5.0, log=True),
        class_weight_power=trial.suggest_float("class_weight_power", 0.0, 1.0),
        prior_power=trial.suggest_float("prior_power", 0.0, 0.5),
    )


def searched(params: ModelParams) -> dict[str, Any]:
    """The searched fields of ``params`` (what a trial's ``params`` holds)."""
    return {k: v for k, v in params.to_dict().items() if k != "spacy_model"}


class Objective:
    """A trial's validation score with the search recipe (``folds`` calibration folds), after a checkpoint on
    part of the training rows for pruning."""

    def __init__(self, data: SplitData, objective: str, prune: bool = False, folds: int = SEARCH_FOLDS) -> None:
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        self.data, self.objective, self.prune, self.folds = data, objective, prune, folds
        self.subset = stratified_subset(data.y_train, STAGE_FRACTION, seed=0)  # the same in every worker

    def __call__(self, trial: optuna.Trial) -> float:
        params = suggest_params(trial)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        started = time.perf_counter()
        if self.prune:
            checkpoint = self.data.scores(self.data.predict(params, self.subset, folds=self.folds))[self.objective]
            trial.report(checkpoint, step=len(self.subset))
            if trial.should_prune():
                trial.set_user_attr("seconds", round(time.perf_counter() - started, 2))
                raise optuna.TrialPruned(f"{self.objective} {checkpoint:.4f} on {len(self.subset)} training rows")
        scores = self.data.scores(self.data.predict(params, folds=self.folds))
        trial.report(scores[self.objective], step=len(self.data.train_rows))
        trial.set_user_attr("scores", scores)
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 2))
        return scores[self.objective]


def sampler_and_pruner(seed: int, prune: bool) -> dict[str, Any]:
    """The study's seeded TPE sampler and its pruner (median at the checkpoint, or none)."""
    pruner = optuna.pruners.MedianPruner(n_startup_trials=STARTUP_TRIALS) if prune else optuna.pruners.NopPruner()
    return {"sampler": optuna.samplers.TPESampler(seed=seed), "pruner": pruner}


def open_study(storage_url: str | None, name: str, objective: str, split: Split, seed: int = 0,
               prune: bool = False, processed_dir: str = str(PROCESSED_DIR), folds: int = SEARCH_FOLDS
               ) -> optuna.Study:
    """Create the study, or join an existing one if it searches the same objective with the same recipe on the
    same split.

    A new study gets the search settings as user attributes (for workers) and the default configuration
    enqueued as its first trial.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    study = optuna.create_study(storage=open_storage(storage_url), study_name=name, direction="maximize",
                                load_if_exists=True, **sampler_and_pruner(seed, prune))
    attrs = {"objective": objective, "prune": prune, "processed_dir": processed_dir, "folds": folds,
             "train_sha256": split.train_sha256, "val_sha256": split.val_sha256}
    if not study.user_attrs:
        for key, value in attrs.items():
            study.set_user_attr(key, value)
        study.enqueue_trial(searched(ModelParams()), user_attrs={"default": True})
    else:
        different = {k: (study.user_attrs.get(k), v) for k, v in attrs.items() if study.user_attrs.get(k) != v}
        if different:
            raise ValueError(f"study {name!r} in {redact(storage_url)} was made with other settings "
                             f"(theirs, ours): {different}. Choose another study_name or storage.")
    return study
