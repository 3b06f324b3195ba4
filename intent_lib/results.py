"""The figures README and docs/ quote, distilled from a run's artefacts into one committed snapshot.

``make results`` (``python -m intent_lib.results``) reads what the last run wrote: ``reports/*.json``, the model
card, the step stamps and ``bench/results/*.json``. It keeps figures only (scores, counts, intent numbers and names,
timings with their command and load), never a question's text, in ``paths.RESULTS_SNAPSHOT``: one section per
source, each with its provenance (git commit, dataset sha256, date). A section whose artefact is missing keeps its
committed figures; figures of the demo data are refused unless ``--allow-demo``. Then every generated block of
``paths.RESULTS_PAGES`` is rendered again from the snapshot (``results_blocks``); ``--render-only`` skips the
distilling, ``--check`` only says which blocks differ.

``measurement`` and ``finished`` are what a benchmark records beside its timings (command, commit, date, load);
``write_bench_record`` writes them with its figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from intent_lib.files import read_json, write_json
from intent_lib.paths import (BENCH_API_FILE, BENCH_LOAD_FILE, BENCH_MEMORY_FILE, BENCH_MODEL_FILE, BENCH_RESULTS_DIR,
                              BENCH_TRAIN_FILE, BENCH_TUNING_FILE, BENCH_WEIGHTS_FILE, DATA_QUALITY_PATH, METRICS_PATH,
                              MODEL_PATH, RESULTS_PAGES, RESULTS_SNAPSHOT, STAMPS_DIR, TUNING_PATH, VARIABILITY_PATH,
                              card_path, project_root)
from intent_lib.reasons import flag_shares

HEADLINE = ("accuracy", "f1_macro")
VALIDATION = ("n", "answered_share", "answered_accuracy", "conformal_coverage", "mean_set_size")
SCOPE = ("threshold", "k", "flagged_share", "oof_rate", "validation_rate", "test_rate", "test_questions",
         "own_set_caught", "own_set_questions", "own_set_caught_by_kind")
EMBEDDING_BYTES = 512 * 2  # a reference question in the pickle: 512 float16 numbers
SHARE_MIN_QUESTIONS = 10  # intents ranked by their share of likely label errors have at least this many questions


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def machine_load() -> float:
    """The 1-minute load average."""
    return round(os.getloadavg()[0], 2)


def bench_command(argv: list[str] | None = None) -> str:
    """The running bench script's command line (``python bench/NAME.py ARGS``), as its record quotes it."""
    return " ".join(["python", f"bench/{Path(sys.argv[0]).name}", *(sys.argv[1:] if argv is None else argv)])


def measurement(command: str) -> dict[str, Any]:
    """What a timed figure carries, taken when the measurement starts: its command, the commit, when, the cores and
    the machine's load."""
    from intent_lib.card import git_commit

    return {"command": command, "git_commit": git_commit(), "measured_at": _now(), "cores": os.cpu_count(),
            "load_at_start": machine_load(), "started": time.perf_counter()}


def finished(started: dict[str, Any]) -> dict[str, Any]:
    """``measurement``'s record completed at the end: the load then and the seconds it took."""
    record = {k: v for k, v in started.items() if k != "started"}
    return record | {"load_at_end": machine_load(), "seconds": round(time.perf_counter() - started["started"], 1)}


def write_bench_record(output: Path, started: dict[str, Any], dataset_source: str, dataset_sha256: str,
                       figures: dict[str, Any]) -> None:
    """A bench's figures as ``make results`` reads them (``bench_section``): with the dataset measured and
    ``started``'s measurement, completed now."""
    write_json(figures | {"dataset": dataset_source, "dataset_sha256": dataset_sha256,
                          "measurement": finished(started)}, output)
    print(f"wrote {output}")


def _pick(source: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: source[k] for k in keys if k in source}


def _provenance(card: dict[str, Any], root: Path, step: str) -> dict[str, Any]:
    """Which run a section's figures come from: the served model's commit and dataset, and when the step ran."""
    stamp = root / STAMPS_DIR / f"{step}.json"
    return {"git_commit": card["git_commit"], "model_version": card["model_version"],
            "dataset_source": card["dataset"]["source"], "dataset_sha256": card["dataset"]["sha256"],
            "date": read_json(stamp)["ran_at"] if stamp.is_file() else card["trained_at"]}


def _evaluation(root: Path, card: dict[str, Any]) -> dict[str, Any]:
    """03's scores (the card's validation figures of the train-split model) and the out-of-scope rule's."""
    metrics = read_json(root / METRICS_PATH)
    reference_rows = (card.get("out_of_scope") or {}).get("reference_rows", 0)
    return {"source": _provenance(card, root, "03_evaluate"),
            "validation": _pick(card["validation"], VALIDATION) | _pick(metrics["summary"], HEADLINE),
            "flag_shares": flag_shares(card["uncertainty"]["validation_rates"]),
            "scope": _pick(metrics.get("out_of_scope") or {}, SCOPE)
            | {"labelled_questions": reference_rows, "reference_mb": round(reference_rows * EMBEDDING_BYTES / 1e6, 1)}}


def _variability(root: Path, card: dict[str, Any]) -> dict[str, Any]:
    record = read_json(root / VARIABILITY_PATH)
    boot, seeds = record["bootstrap"], record["seeds"]
    return {"source": _provenance(card, root, "04_variability"),
            "bootstrap": _pick(boot, ("n_resamples", "confidence")) | _pick(boot["summary"], HEADLINE),
            "seeds": {"n": len(seeds["runs"])} | _pick(seeds["summary"], HEADLINE)}


def _data_quality(root: Path, card: dict[str, Any]) -> dict[str, Any]:
    """Counts, intents and flag names only: the record's example questions and groups stay out."""
    record = read_json(root / DATA_QUALITY_PATH)
    per_intent = record["label_issues"]["per_intent"]
    share = sorted((r for r in per_intent if r["questions"] >= SHARE_MIN_QUESTIONS),
                   key=lambda r: -r["issues"] / r["questions"])
    return {"source": _provenance(card, root, "06_data_quality"),
            "labelled_questions": record["labelled_questions"],
            "issues": record["label_issues"]["count"],
            "most_issues": [_pick(r, ("intent", "issues")) for r in per_intent[:4]],
            "highest_shares": [{"intent": r["intent"], "share": r["issues"] / r["questions"]} for r in share[:5]],
            "share_min_questions": SHARE_MIN_QUESTIONS,
            "pairs": [_pick(r, ("given", "suggested", "issues")) for r in record["label_issues"]["pairs"][:5]],
            "duplicates": record["duplicates"]["counts"],
            "test_questions": record["test"]["questions"],
            "test_flags": [_pick(r, ("flag", "labelled", "labelled_share", "test", "test_share"))
                           for r in record["test"]["flags"]]}


def _relabel(root: Path, card: dict[str, Any]) -> dict[str, Any] | None:
    """The relabel experiment, when the last 06_data_quality ran it (``-p run_experiment=True``)."""
    experiment = read_json(root / DATA_QUALITY_PATH).get("relabel_experiment")
    if not experiment:
        return None
    keep = tuple(f"{metric}{part}" for metric in HEADLINE
                 for part in ("", "_interval", "_diff", "_diff_low", "_diff_high"))
    return {"source": _provenance(card, root, "06_data_quality"),
            "training_issues": experiment["training_issues"], "confidence": experiment["confidence"],
            "helps": experiment["helps"],
            "variants": [_pick(v, ("variant", "changed", *keep)) for v in experiment["results"]]}


def bench_section(path: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    """A benchmark's record, its figures as it wrote them: its own measurement says the command, commit, date and
    load; its dataset is the one the model or the split it measured was made from."""
    record = read_json(path)
    return {"source": {"git_commit": record["measurement"]["git_commit"], "dataset_source": record["dataset"],
                       "dataset_sha256": record["dataset_sha256"], "date": record["measurement"]["measured_at"]},
            "measurement": record["measurement"]} | _pick(record, keys)


def _tune(root: Path, card: dict[str, Any]) -> dict[str, Any]:
    """How long the last ``make tune`` took (its notebook's search and full-recipe refits) and on what load."""
    record = read_json(root / TUNING_PATH)
    measured = record["measurement"]
    return {"source": {"git_commit": measured["git_commit"], "dataset_source": card["dataset"]["source"],
                       "dataset_sha256": card["dataset"]["sha256"], "date": measured["measured_at"]},
            "measurement": measured, "seconds": record["study"]["seconds"], "trials": record["study"]["trials"]}


MODEL_BENCH = ("train_rows", "val_rows", "folds", "configs", "default_sentence_weight")
BENCHES = {  # section: (its file under paths.BENCH_RESULTS_DIR, the figures it keeps)
    "bench_model": (BENCH_MODEL_FILE, MODEL_BENCH),
    "bench_weights": (BENCH_WEIGHTS_FILE, MODEL_BENCH),
    "bench_train": (BENCH_TRAIN_FILE, ("runs",)),
    "bench_api": (BENCH_API_FILE, ("workers", "server_started_for_run", "get", "batch", "aims")),
    "bench_load": (BENCH_LOAD_FILE, ("settings", "mixed", "starvation", "hostile")),
    "bench_memory": (BENCH_MEMORY_FILE, ("entries", "workers", "batch_size", "kb_per_entry", "rows", "full")),
    "bench_tuning": (BENCH_TUNING_FILE, ("trials", "objective", "search_folds", "full_folds", "seconds_per_trial",
                                         "agreement")),
}


def distil(root: Path, committed: dict[str, Any] | None = None) -> dict[str, Any]:
    """The snapshot of the artefacts under ``root``: a section per source present; the others as ``committed``."""
    sections = dict((committed or {}).get("sections", {}))
    card_file = card_path(root / MODEL_PATH)
    card = read_json(card_file) if card_file.is_file() else None
    readers: dict[str, tuple[Path, Callable[[], dict[str, Any] | None]]] = {
        "evaluation": (root / METRICS_PATH, lambda: _evaluation(root, card)),
        "variability": (root / VARIABILITY_PATH, lambda: _variability(root, card)),
        "data_quality": (root / DATA_QUALITY_PATH, lambda: _data_quality(root, card)),
        "relabel": (root / DATA_QUALITY_PATH, lambda: _relabel(root, card)),
        "tune": (root / TUNING_PATH, lambda: _tune(root, card)),
    }
    for name, (file, keys) in BENCHES.items():
        path = root / BENCH_RESULTS_DIR / file
        readers[name] = (path, lambda path=path, keys=keys: bench_section(path, keys))
    for name, (artefact, read) in readers.items():
        needs_card = not name.startswith("bench_")
        if artefact.is_file() and (card is not None or not needs_card):
            if (section := read()) is not None:
                sections[name] = section
    return {"sections": dict(sorted(sections.items()))}


def demo_sections(snapshot: dict[str, Any]) -> list[str]:
    """The sections whose figures come from the demo data."""
    return [name for name, section in snapshot["sections"].items() if section["source"]["dataset_source"] == "demo"]


def main(argv: list[str] | None = None) -> int:
    from intent_lib import results_blocks

    parser = argparse.ArgumentParser(prog="python -m intent_lib.results", description=__doc__.split("\n\n")[0])
    parser.add_argument("--render-only", action="store_true", help="render the blocks from the committed snapshot")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a block is out of date")
    parser.add_argument("--allow-demo", action="store_true", help="take figures from a demo-data run too")
    args = parser.parse_args(argv)
    root = project_root()
    snapshot_path = root / RESULTS_SNAPSHOT
    committed = read_json(snapshot_path) if snapshot_path.is_file() else None
    snapshot = committed if args.render_only or args.check else distil(root, committed)
    if snapshot is None:
        print(f"no {RESULTS_SNAPSHOT}: run `make results` after a run", file=sys.stderr)
        return 1
    if not (args.render_only or args.check):
        if (demo := demo_sections(snapshot)) and not args.allow_demo:
            print(f"the last run used the demo data ({', '.join(demo)}): its figures say nothing about the real task. "
                  "Train on the real data first, or pass --allow-demo", file=sys.stderr)
            return 1
        write_json(snapshot, snapshot_path)
    stale = []
    for page in RESULTS_PAGES:
        text = (root / page).read_text(encoding="utf-8")
        rendered = results_blocks.render_page(text, snapshot)
        if rendered != text:
            stale.append(str(page))
            if not args.check:
                (root / page).write_text(rendered, encoding="utf-8")
    verb = "out of date" if args.check else "rendered again"
    print(f"{len(stale)} page(s) {verb}" + (f": {', '.join(stale)}" if stale else ""))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
