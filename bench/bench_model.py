"""Model benchmark: the old configuration (no sentence encoder) and the new one, side by side.

For each configuration (``--sentence-weights``, default 0 = old and the current default or tuned weight = new):

* validation split (the settings of notebooks/01_split.ipynb): fit on the train rows, score the validation rows:
  accuracy, macro-F1, ECE; the unsure threshold chosen there for the target accuracy (share answered and their
  accuracy); conformal sets calibrated on the training rows' out-of-fold probabilities (coverage, mean size);
  fit time, single-question latency in process (p50, p99) and pickle size;
* ``--folds``-fold stratified CV over every labelled row: the same scores per fold, the unsure threshold and the
  conformal sets both chosen on the training folds' out-of-fold probabilities (nothing from the scored fold).

Run with `make bench` (BENCH_ARGS="--folds 0" skips CV); prints a table and writes bench/results/model.json, with
the command, commit, dataset hash, date and the machine's load at the start and the end (what `make results` quotes).
Targets (real data): CV accuracy >= 0.715 and macro-F1 >= 0.600. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import itertools
import os
import pickle
import statistics
import time
from dataclasses import replace
from typing import Any

import pandas as pd
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from intent_lib.artefacts import model_bytes
from intent_lib.best_params import read_best_params
from intent_lib.data import load_labelled_folder, locate_dataset
from intent_lib.model import ModelParams, fit_model
from intent_lib.pipeline import notebook_parameters
from intent_lib.predictor import Predictor
from intent_lib.paths import (BENCH_MODEL_FILE, BENCH_RESULTS_DIR, BEST_PARAMS_PATH, DATA_DIR, EMBEDDING_CACHE_DIR,
                              EMBEDDING_CACHE_ENV, NOTEBOOKS_DIR, project_root)
from intent_lib.results import bench_command, measurement, write_bench_record
from intent_lib.split import stratified_split
from intent_lib.training import oof_proba, proba_metrics, uncertainty_metrics
from intent_lib.uncertainty import DEFAULT_ALPHA, DEFAULT_TARGET_ACCURACY, Uncertainty, choose_threshold, conformalize

TARGETS = {"cv_accuracy": 0.715, "cv_f1_macro": 0.600}
QUERIES = ["Peut-on prendre du doliprane enceinte ?", "effets secondaires du levothyrox", "prix du spasfon",
           "je peux boire de l'alcool avec l'amoxicilline ?", "combien de comprimés par jour de kardegic"]
LATENCY_CALLS = 300
FRESH = itertools.count()  # every latency call of the process asks a new text: never an embedding cache hit
SCORES = ("accuracy", "f1_macro", "ece", "answered_share", "answered_accuracy", "conformal_coverage",
          "mean_set_size")


def score(train: pd.DataFrame, test: pd.DataFrame, params: ModelParams, threshold_on_test: bool
          ) -> tuple[dict[str, float], Any]:
    """Fit on ``train``, score ``test``. The unsure threshold is chosen on ``test`` (the validation protocol) or
    on the training rows' out-of-fold probabilities (CV); the conformal sets always on the latter."""
    started = time.perf_counter()
    model = fit_model(train["question"], train["intention"], params)
    fit_seconds = time.perf_counter() - started
    classes, labels = model.classes_, test["intention"].to_numpy()
    proba = model.predict_proba(test["question"].tolist())
    oof = oof_proba(model)
    chooser = (proba, labels) if threshold_on_test else (oof, train["intention"].to_numpy())
    threshold = choose_threshold(chooser[1], classes[chooser[0].argmax(axis=1)], chooser[0].max(axis=1),
                                 DEFAULT_TARGET_ACCURACY)
    uncertainty = Uncertainty(threshold, DEFAULT_TARGET_ACCURACY, DEFAULT_ALPHA,
                              conformalize(oof, train["intention"], classes, DEFAULT_ALPHA))
    scores = proba_metrics(proba, classes, labels) | uncertainty_metrics(uncertainty, proba, classes, labels)
    return {k: scores[k] for k in SCORES} | {"threshold": threshold, "fit_seconds": fit_seconds}, model


def latency(model: Any) -> dict[str, float]:
    """Pickle size, and single-question latency of the unpickled model in this process, as the API computes it
    (``Predictor``, one BLAS thread, embeddings cached in memory only)."""
    os.environ.pop(EMBEDDING_CACHE_ENV, None)
    blob = model_bytes(model)  # the bytes `make train` saves
    predictor = Predictor(pickle.loads(blob))
    times = []
    with threadpool_limits(1):
        predictor.predict_proba([f"{QUERIES[0]} {next(FRESH)}"])  # warm-up: lazy lookups and the encoder's weights
        for i in range(LATENCY_CALLS):
            started = time.perf_counter()
            # A new text each call, in this configuration and every earlier one of the run: the sentence encoder's
            # in-memory cache would otherwise answer the next configuration's calls.
            predictor.predict_proba([f"{QUERIES[i % len(QUERIES)]} {next(FRESH)}"])
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"latency_ms_p50": statistics.median(times), "latency_ms_p99": times[int(0.99 * len(times))],
            "pickle_mb": len(blob) / 1e6}


def cross_validate(frame: pd.DataFrame, params: ModelParams, folds: int) -> dict[str, float]:
    """Mean (and std over folds) of every score, over stratified folds of all rows."""
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    rows = [score(frame.iloc[tr], frame.iloc[te], params, threshold_on_test=False)[0]
            for tr, te in splitter.split(frame, frame["intention"])]
    table = pd.DataFrame(rows)
    return ({f"cv_{k}": float(v) for k, v in table.mean().items()}
            | {f"cv_{k}_std": float(table[k].std()) for k in ("accuracy", "f1_macro")})


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentence-weights", type=float, nargs="+", default=None,
                        help="one configuration per weight (default: 0 and the model's)")
    parser.add_argument("--folds", type=int, default=5, help="CV folds (0 skips CV)")
    parser.add_argument("--output", default=str(BENCH_RESULTS_DIR / BENCH_MODEL_FILE))
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    started = measurement(bench_command())
    root = project_root()
    cache = os.environ.setdefault(EMBEDDING_CACHE_ENV, str(root / EMBEDDING_CACHE_DIR))
    split_defaults = {k: v["default"] for k, v in notebook_parameters(root / NOTEBOOKS_DIR / "01_split.ipynb").items()}
    folder, dataset = locate_dataset(root / DATA_DIR)
    frame = load_labelled_folder(folder)
    train, val = stratified_split(frame, float(split_defaults["val_size"]), int(split_defaults["split_seed"]))
    params, params_source = read_best_params(root / BEST_PARAMS_PATH)
    weights = args.sentence_weights if args.sentence_weights is not None else [0.0, params.sentence_weight]

    results: dict[str, dict[str, float]] = {}
    for weight in weights:
        config = replace(params, sentence_weight=weight)
        print(f"sentence_weight={weight}: validation split ...", flush=True)
        figures, model = score(train, val, config, threshold_on_test=True)
        figures |= latency(model)
        os.environ[EMBEDDING_CACHE_ENV] = cache
        if args.folds:
            print(f"sentence_weight={weight}: {args.folds}-fold CV ...", flush=True)
            figures |= cross_validate(frame, config, args.folds)
        results[f"sentence_weight={weight:g}"] = figures

    table = pd.DataFrame(results)
    table.insert(0, "target", [f">= {TARGETS[k]}" if k in TARGETS else "" for k in table.index])
    print(f"\n{dataset.source} data, {params_source}; validation {len(val):,} rows, train {len(train):,} rows; "
          f"target accuracy {DEFAULT_TARGET_ACCURACY}, alpha {DEFAULT_ALPHA}")
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    if dataset.is_demo:
        print("NOTE: demo data: these figures say nothing about the real task.")
    write_bench_record(root / args.output, started, dataset.source, dataset.sha256, {
        "params": params_source, "default_sentence_weight": params.sentence_weight, "train_rows": len(train),
        "val_rows": len(val), "folds": args.folds, "configs": results})


if __name__ == "__main__":
    main()
