"""Model benchmark: accuracy, macro-F1 and ECE on the validation split, fit time, latency, pickle size.

Uses the split settings of notebooks/01_split.ipynb and the model's default (or tuned) parameters, on the
data in data/ (the demo data when absent). Run with `make bench`; prints figures and writes
bench/results/model.json. Targets (real data): accuracy >= 0.70, macro-F1 >= 0.57.
"""

from __future__ import annotations

import json
import pickle
import statistics
import time

import papermill

from intent_lib.best_params import read_best_params
from intent_lib.data import load_labelled_folder, locate_dataset
from intent_lib.model import fit_model, top_k
from intent_lib.paths import BENCH_RESULTS_DIR, BEST_PARAMS_PATH, DATA_DIR, NOTEBOOKS_DIR, project_root
from intent_lib.split import stratified_split
from intent_lib.training import validation_metrics

TARGETS = {"accuracy": 0.70, "f1_macro": 0.57}
QUERIES = ["Peut-on prendre du doliprane enceinte ?", "effets secondaires du levothyrox", "prix du spasfon",
           "je peux boire de l'alcool avec l'amoxicilline ?", "combien de comprimés par jour de kardegic"]


def main() -> None:
    root = project_root()
    split_defaults = {k: v["default"] for k, v in papermill.inspect_notebook(
        str(root / NOTEBOOKS_DIR / "01_split.ipynb")).items()}
    folder, dataset = locate_dataset(root / DATA_DIR)
    frame = load_labelled_folder(folder)
    train, val = stratified_split(frame, float(split_defaults["val_size"]), int(split_defaults["split_seed"]))
    params, params_source = read_best_params(root / BEST_PARAMS_PATH)

    started = time.perf_counter()
    model = fit_model(train["question"], train["intention"], params)
    fit_seconds = time.perf_counter() - started
    scores = validation_metrics(model, val["question"].tolist(), val["intention"].tolist())

    blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    started = time.perf_counter()
    model = pickle.loads(blob)
    load_seconds = time.perf_counter() - started
    top_k(model, QUERIES[:1])  # warm-up: builds the vector index
    latencies = []
    for i in range(300):
        started = time.perf_counter()
        top_k(model, [QUERIES[i % len(QUERIES)]], 3)
        latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    started = time.perf_counter()
    model.predict_proba(val["question"].tolist())
    batch_per_query = (time.perf_counter() - started) * 1000 / len(val)

    figures = {
        "dataset": dataset.source, "params": params_source,
        "train_rows": len(train), "val_rows": len(val),
        "accuracy": round(scores["accuracy"], 4), "f1_macro": round(scores["f1_macro"], 4),
        "ece": round(scores["ece"], 4), "fit_seconds": round(fit_seconds, 1), "unpickle_seconds": round(load_seconds, 2),
        "latency_ms_p50": round(statistics.median(latencies), 2),
        "latency_ms_p95": round(latencies[int(0.95 * len(latencies))], 2),
        "batch_ms_per_query": round(batch_per_query, 3), "pickle_mb": round(len(blob) / 1e6, 1),
    }
    width = max(map(len, figures))
    for key, value in figures.items():
        target = f"  (target >= {TARGETS[key]})" if key in TARGETS else ""
        print(f"{key:<{width}}  {value}{target}")
    if dataset.is_demo:
        print("NOTE: demo data: these figures say nothing about the real task.")
    out = root / BENCH_RESULTS_DIR / "model.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
