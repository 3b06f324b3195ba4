"""How long `make train` takes: a fresh run, a rerun with nothing changed, a rerun after one 03_evaluate parameter.

Each run is `python -m intent_lib train` (what `make train` runs with RUNTIME=local) in a fresh copy of this
checkout's committed files, with its own empty embedding cache, step stamps and run store: the fresh run decrypts
the archive and runs every step; the rerun must reuse them all; the last reruns 03 only. Each time is measured
once, whole process, with the machine's load at its start and end, and written to bench/results/train.json (what
`make results` quotes). The data is what `make train` would take: the archive that DATA_ARCHIVE names (passphrase in
POSOS_PASSPHRASE or POSOS_PASSPHRASE_FILE), else the demo data, which `make results` refuses to quote. Quote a figure
only from a quiet machine: another process on 2 cores shows up at once.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from intent_lib.data import locate_dataset
from intent_lib.paths import BENCH_RESULTS_DIR, BENCH_TRAIN_FILE, DATA_DIR, TRAIN_NOTEBOOKS, project_root, resolve
from intent_lib.results import finished, measurement

RUNS = (("fresh", ()), ("rerun, nothing changed", ()), ("rerun, one 03_evaluate parameter", ("-p", "n_examples=4")))
_RAN = re.compile(r"running (\d\d_\w+)")
_REUSED = re.compile(r"(\d\d_\w+): reused")


def copy_checkout(root: Path, target: Path) -> None:
    """The committed files of ``root`` at HEAD, as a fresh clone has them (no data, state, caches or runs)."""
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(root), str(target)], check=True)


def timed_run(project: Path, args: tuple[str, ...]) -> dict[str, Any]:
    """One `python -m intent_lib train` in ``project``: seconds, load, the steps that ran and were reused."""
    command = " ".join(["python -m intent_lib train", *args])
    started = measurement(command)
    environment = os.environ | {"POSOS_ROOT": str(project), "PYTHONPATH": str(project)}
    run = subprocess.run([sys.executable, "-m", "intent_lib", "train", *args], cwd=project, env=environment,
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"{command} failed ({run.returncode}):\n{run.stderr[-2000:]}")
    return finished(started) | {"ran": _RAN.findall(run.stderr), "reused": _REUSED.findall(run.stderr)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default=str(BENCH_RESULTS_DIR / BENCH_TRAIN_FILE))
    args = parser.parse_args(argv)
    root = project_root()
    if archive := os.environ.get("DATA_ARCHIVE"):
        os.environ["DATA_ARCHIVE"] = str(resolve(archive))  # the copy is elsewhere: a relative path would miss it
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # the copy's own local run store
    with tempfile.TemporaryDirectory(prefix="bench-train-") as folder:
        project = Path(folder) / "posos-intent"
        copy_checkout(root, project)
        runs = []
        for label, extra in RUNS:
            record = timed_run(project, extra) | {"run": label}
            runs.append(record)
            print(f"{label:34s} {record['seconds']:7.1f} s  load {record['load_at_start']} -> "
                  f"{record['load_at_end']}  ran {', '.join(record['ran']) or 'nothing'}", flush=True)
        _, dataset = locate_dataset(project / DATA_DIR)
    if runs[1]["ran"] or sorted(runs[1]["reused"]) != sorted(TRAIN_NOTEBOOKS):
        raise SystemExit(f"the rerun ran {runs[1]['ran']}: a rerun with nothing changed must reuse every step")
    output = resolve(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"dataset": dataset.source, "dataset_sha256": dataset.sha256, "runs": runs,
                                  "measurement": runs[0]}, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
