"""Tuning benchmark: does the search recipe rank configurations as the full recipe does?

Runs a search as ``make tune`` does (seeded TPE, the defaults first, the search recipe: ``tuning.SEARCH_FOLDS``
calibration folds) without pruning, so that every trial gets a search score, on the split ``make train`` wrote
(``data/processed``). Then refits each trial's configuration with the full recipe (the served model's) and
compares the two rankings over the trials' configurations:

* Kendall's tau (tau-b) between the search and full scores;
* pairwise agreement: of the pairs of configurations, the share both recipes order the same way;
* whether the search's best trial is the full recipe's best, and by how much it falls short of it.

``--also-folds 3`` scores the configurations with other calibration folds too; ``--checkpoint`` scores the pruning
checkpoint (the search recipe on ``tuning.STAGE_FRACTION`` of the training rows). Prints a table and the figures
and writes them to ``bench/results/tuning_recipes.json`` with the command, commit, date, dataset and the machine's
load (what `make results` quotes); times are wall seconds on whatever load the machine has.

    .venv/bin/python bench/bench_tuning.py --trials 10 [--objective f1_macro] [--also-folds 3] [--checkpoint]
"""

from __future__ import annotations

import argparse
import itertools
import os
import time

import numpy as np
import optuna
import pandas as pd
from joblib import parallel_config
from scipy.stats import kendalltau

from intent_lib import tuning, tuning_workers
from intent_lib.classifier import CalibratedLinearSVC
from intent_lib.data import locate_dataset
from intent_lib.model import ModelParams
from intent_lib.paths import (BENCH_RESULTS_DIR, BENCH_TUNING_FILE, DATA_DIR, EMBEDDING_CACHE_DIR, EMBEDDING_CACHE_ENV,
                              PROCESSED_DIR, project_root)
from intent_lib.refit import SplitData
from intent_lib.results import bench_command, measurement, write_bench_record
from intent_lib.split import Split


def pairwise_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Of the pairs that ``a`` orders strictly, the share that ``b`` orders the same way (a tie in ``b`` counts
    as half)."""
    same = total = 0.0
    for i, j in itertools.combinations(range(len(a)), 2):
        if a[i] == a[j]:
            continue
        total += 1
        same += 0.5 if b[i] == b[j] else float((a[i] > a[j]) == (b[i] > b[j]))
    return same / total if total else float("nan")


def agreement(search: np.ndarray, full: np.ndarray) -> dict[str, float]:
    """How the ``search`` scores rank configurations against the ``full`` ones."""
    best = int(np.argmax(search))
    return {"kendall_tau": float(kendalltau(search, full).statistic), "pairwise": pairwise_agreement(full, search),
            "best_is_full_best": float(full[best] == full.max()), "shortfall": float(full.max() - full[best])}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10, help="trials of the search, the defaults included")
    parser.add_argument("--objective", default="f1_macro", choices=tuning.OBJECTIVES)
    parser.add_argument("--seed", type=int, default=0, help="TPE sampler seed")
    parser.add_argument("--n-jobs", type=int, default=-1, help="processes fitting a classifier's folds at once")
    parser.add_argument("--also-folds", type=int, nargs="*", default=[], help="other calibration folds to score")
    parser.add_argument("--checkpoint", action="store_true", help="score the pruning checkpoint too")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    root = project_root()
    os.environ.setdefault(EMBEDDING_CACHE_ENV, str(root / EMBEDDING_CACHE_DIR))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    measured = measurement(bench_command())
    split = Split.read(root / PROCESSED_DIR)
    data = SplitData(split, root)
    study = tuning.open_study(None, "bench", args.objective, split, args.seed, prune=False)
    started = time.perf_counter()
    tuning_workers.run_search(root, study, None, args.trials, None, seed=args.seed, n_jobs=args.n_jobs, data=data)
    search_seconds = time.perf_counter() - started
    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    recipes = {"full": {}} | {f"folds_{k}": {"folds": k} for k in args.also_folds}
    if args.checkpoint:
        subset = tuning.stratified_subset(data.y_train, tuning.STAGE_FRACTION, seed=0)
        recipes["checkpoint"] = {"folds": tuning.SEARCH_FOLDS, "subset": subset}
    rows, seconds = [], {name: 0.0 for name in recipes}
    with parallel_config(n_jobs=args.n_jobs):
        for trial in trials:
            params = ModelParams.from_dict(trial.params)
            row = {"trial": trial.number, "search": trial.value}
            for name, recipe in recipes.items():
                started = time.perf_counter()
                row[name] = data.scores(data.predict(params, **recipe))[args.objective]
                seconds[name] += time.perf_counter() - started
            rows.append(row)
            print("  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v:>3}" for k, v in row.items()), flush=True)
    table = pd.DataFrame(rows)
    full, full_folds = table["full"].to_numpy(), CalibratedLinearSVC().cv
    print(f"\n{len(table)} configurations of a {args.trials}-trial search (TPE seed {args.seed}), {args.objective} "
          f"on the validation split; search recipe: {tuning.SEARCH_FOLDS} calibration folds, full recipe: {full_folds}.")
    per_trial = {"search": search_seconds / len(trials)} | {name: seconds[name] / len(trials) for name in recipes}
    print("seconds a trial: " + ", ".join(f"{name} {value:.1f}" for name, value in per_trial.items()))
    agreements = {}
    for name in ["search", *(name for name in recipes if name != "full")]:
        agreements[name] = figures = agreement(table[name].to_numpy(), full)
        print(f"{name:>12} vs full: Kendall's tau {figures['kendall_tau']:.2f}, pairwise agreement "
              f"{figures['pairwise']:.0%}, its best is the full recipe's best: {bool(figures['best_is_full_best'])} "
              f"(short by {figures['shortfall']:.4f})")
    _, dataset = locate_dataset(root / DATA_DIR)
    write_bench_record(root / BENCH_RESULTS_DIR / BENCH_TUNING_FILE, measured, dataset.source, dataset.sha256, {
        "trials": len(table), "objective": args.objective, "search_folds": tuning.SEARCH_FOLDS,
        "full_folds": full_folds, "seconds_per_trial": per_trial, "agreement": agreements})


if __name__ == "__main__":
    main()
