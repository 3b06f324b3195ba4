"""Where trials run: in the notebook's process, or in worker processes sharing one study through its storage.

``run_search`` runs a study's trials here (each trial's classifier folds ``n_jobs`` at a time) or splits them
between ``workers`` processes (one core each). A worker is ``python -m intent_lib.tuning_workers --study NAME``:
it joins a study the notebook created (``intent_lib.tuning.open_study``), checks that its split is the one the
study searches, and reads the objective and recipe from the study. The storage URL reaches it through
``STORAGE_ENV``, never the process list. Other machines join a shared study the same way.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
from joblib import parallel_config

from intent_lib.refit import SplitData
from intent_lib.split import Split
from intent_lib.tuning import SEARCH_FOLDS, Objective, sampler_and_pruner
from intent_lib.tuning_storage import open_storage

log = logging.getLogger(__name__)

STORAGE_ENV = "POSOS_TUNE_STORAGE"
WORKER_MODULE = "intent_lib.tuning_workers"  # what a worker process runs: this module


def worker(root: Path, storage_url: str | None, name: str, n_trials: int, timeout: float | None, seed: int,
           study: optuna.Study | None = None, n_jobs: int | None = 1, data: SplitData | None = None) -> int:
    """Run ``n_trials`` trials (or until ``timeout`` seconds) of a study, each trial's classifier folds ``n_jobs``
    at a time, on ``data`` (the study's split, features cached) or a fresh copy; return how many ran here."""
    joined = study is None
    if joined:
        study = optuna.load_study(study_name=name, storage=open_storage(storage_url))
    attrs = study.user_attrs
    if not attrs:
        raise ValueError(f"study {name!r} has no settings: create it with the 05_tune notebook first.")
    split = Split.read(root / attrs["processed_dir"])
    if (split.train_sha256, split.val_sha256) != (attrs["train_sha256"], attrs["val_sha256"]):
        raise ValueError(f"the split in {root / attrs['processed_dir']} is not the one study {name!r} searches: "
                         "copy the study's data/processed here first.")
    if joined:  # each process gets its own seeded sampler: one seed in every worker would propose the same points
        study = optuna.load_study(study_name=name, storage=open_storage(storage_url),
                                  **sampler_and_pruner(seed, attrs["prune"]))
    objective = Objective(data if data is not None else SplitData(split, root), attrs["objective"], attrs["prune"],
                          attrs.get("folds", SEARCH_FOLDS))
    ran = []
    with parallel_config(n_jobs=n_jobs):
        study.optimize(objective, n_trials=n_trials, timeout=timeout or None, gc_after_trial=False,
                       callbacks=[lambda _study, trial: ran.append(trial.number)])
    log.info("worker done: %d trials here; TF-IDF cache %d hits, %d misses", len(ran),
             objective.data.cache.hits, objective.data.cache.misses)
    return len(ran)


def shares(n_trials: int, workers: int) -> list[int]:
    """``n_trials`` split between ``workers`` as evenly as possible."""
    return [n_trials // workers + (i < n_trials % workers) for i in range(workers)]


def _worker_env(root: Path) -> dict[str, str]:
    """The environment of a worker process: this project root, and this process's intent_lib first on the path."""
    package_parent = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH", "")) if p)
    return os.environ | {"POSOS_ROOT": str(root), "PYTHONPATH": path}


def run_search(root: Path, study: optuna.Study, storage_url: str | None, n_trials: int, timeout: float | None,
               workers: int = 1, seed: int = 0, n_jobs: int | None = 1, data: SplitData | None = None
               ) -> optuna.Study:
    """Run ``n_trials`` trials: in this process (folds ``n_jobs`` at a time, on ``data`` when given), or split
    between ``workers`` processes sharing the storage (one fold at a time each).

    Enqueued trials (the defaults) run here first, alone: workers polling one storage could both take the same
    waiting trial (SQLite has no row locks), and the second to finish would fail to report it.
    """
    if workers <= 1:
        worker(root, storage_url, study.study_name, n_trials, timeout, seed, study=study, n_jobs=n_jobs, data=data)
        return study
    if storage_url is None:
        raise ValueError("several workers need a shared storage (see tuning_storage.resolve_storage)")
    waiting = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))
    if waiting:
        n_trials -= worker(root, storage_url, study.study_name, min(waiting, n_trials), timeout, seed, study=study,
                           n_jobs=n_jobs, data=data)
    if n_trials <= 0:
        return study
    with tempfile.TemporaryDirectory() as logs:
        processes = []
        for index, count in enumerate(shares(n_trials, workers)):
            command = [sys.executable, "-m", WORKER_MODULE, "--root", str(root),  # storage URL via env: no
                       "--study", study.study_name, "--trials", str(count), "--seed", str(seed + index)]  # password in ps
            if timeout:
                command += ["--timeout", str(timeout)]
            log_file = open(Path(logs) / f"worker{index}.log", "w+")  # noqa: SIM115 - closed below
            processes.append((subprocess.Popen(command, cwd=root, stdout=log_file, stderr=subprocess.STDOUT,
                                               env=_worker_env(root) | {STORAGE_ENV: storage_url}), log_file))
        failures = []
        for index, (process, log_file) in enumerate(processes):
            code = process.wait()
            log_file.seek(0)
            if code != 0:
                failures.append(f"worker {index} exited with {code}:\n" + log_file.read()[-3000:])
            log_file.close()
        if failures:
            raise RuntimeError("\n\n".join(failures))
    return optuna.load_study(study_name=study.study_name, storage=open_storage(storage_url))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {WORKER_MODULE}",
                                     description="An Optuna worker joining a study created by notebook 05_tune.")
    parser.add_argument("--storage", default=os.environ.get(STORAGE_ENV),
                        help=f"database URL shared by the workers (default: ${STORAGE_ENV}, which keeps a password "
                             "out of the process list)")
    parser.add_argument("--study", required=True, help="study name")
    parser.add_argument("--trials", type=int, required=True, help="trials to run in this worker")
    parser.add_argument("--timeout", type=float, default=None, help="seconds after which to start no new trial")
    parser.add_argument("--seed", type=int, default=0, help="sampler seed (give each worker its own)")
    parser.add_argument("--n-jobs", type=int, default=1, help="processes fitting a trial's folds at once")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="project root holding the split")
    args = parser.parse_args(argv)
    if not args.storage:
        parser.error(f"give --storage or set {STORAGE_ENV}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S")
    worker(args.root.resolve(), args.storage, args.study, args.trials, args.timeout, args.seed, n_jobs=args.n_jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
