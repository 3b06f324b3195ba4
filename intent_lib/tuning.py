"""Hyperparameter search with Optuna (notebook 05_tune): search space, study storages, worker processes.

Trials refit the model with cached features (``intent_lib.refit``): predictions identical to ``fit_model``'s.

Search. Validation rows are only ever predicted and scored, never fitted on: the TF-IDF vocabularies and
the SVM see the training rows only. The study is created by the notebook (``open_study``), which enqueues
the default configuration as its first trial, so the best trial is never worse than the defaults on the
validation split. Workers (``python -m intent_lib.tuning --storage URL --study NAME``) join a study
through a shared storage (SQLite file, PostgreSQL...) and read the objective from it.

Pruning. Each trial first fits the SVM on half the training rows (stratified) and reports that validation
score; the median pruner stops trials whose half-data score is below the median of earlier trials at the
same stage. It is a learning-curve checkpoint, not the objective itself: a configuration that only shines
with all the data can be pruned. ``prune=False`` switches it off.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

with warnings.catch_warnings():  # optuna imports tqdm.auto, which warns in a kernel without ipywidgets
    warnings.filterwarnings("ignore", message="IProgress not found")
    import optuna

from intent_lib.best_params import build_record
from intent_lib.metrics import bootstrap_scores, format_interval, percentile_interval, weighted_scores
from intent_lib.model import ModelParams
from intent_lib.paths import OPTUNA_DB, OPTUNA_WORKERS_DB, PROCESSED_DIR
from intent_lib.refit import SplitData
from intent_lib.split import Split

log = logging.getLogger(__name__)

OBJECTIVES = ("accuracy", "f1_macro")
STAGE_FRACTION = 0.5  # share of the training rows fitted at the pruning checkpoint
STORAGE_ENV = "POSOS_TUNE_STORAGE"


def stratified_subset(y: Sequence[int], fraction: float, seed: int) -> np.ndarray:
    """Sorted positions of about ``fraction`` of the rows of each class (at least one per class)."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        keep.append(rng.permutation(rows)[: max(1, int(np.ceil(fraction * len(rows))))])
    return np.sort(np.concatenate(keep))


# --------------------------------------------------------------------------------------------- search
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
    """Validation score of a trial's configuration, with a half-data checkpoint for pruning."""

    def __init__(self, data: SplitData, objective: str, prune: bool = True) -> None:
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        self.data, self.objective, self.prune = data, objective, prune
        self.subset = stratified_subset(data.y_train, STAGE_FRACTION, seed=0)  # the same in every worker

    def __call__(self, trial: optuna.Trial) -> float:
        params = suggest_params(trial)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        started = time.perf_counter()
        if self.prune:
            half = self.data.scores(self.data.predict(params, self.subset))[self.objective]
            trial.report(half, step=len(self.subset))
            if trial.should_prune():
                raise optuna.TrialPruned(f"{self.objective} {half:.4f} on {len(self.subset)} training rows")
        scores = self.data.scores(self.data.predict(params))
        trial.report(scores[self.objective], step=len(self.data.train_rows))
        trial.set_user_attr("scores", scores)
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 2))
        return scores[self.objective]


def resolve_storage(storage: str, workers: int, tuning_dir: Path) -> tuple[str | None, str]:
    """The storage URL (None: in memory) for a ``storage`` parameter, and a sentence saying what was chosen.

    ``memory``, ``sqlite`` (``paths.OPTUNA_DB`` in the tuning folder) or any URL Optuna accepts. Several workers cannot share
    memory: with ``workers > 1`` an in-memory request becomes a fresh SQLite file, ``paths.OPTUNA_WORKERS_DB``.
    """
    if storage in ("", "memory", None):
        if workers <= 1:
            return None, "Storage: in memory (the study ends with this notebook)."
        path = tuning_dir / OPTUNA_WORKERS_DB
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        return f"sqlite:///{path}", (f"Storage: {workers} workers cannot share memory, so this run uses a fresh "
                                     f"SQLite file, `{path.name}` in `{tuning_dir.name}/` (replaced at each run).")
    if storage == "sqlite":
        path = tuning_dir / OPTUNA_DB
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}", f"Storage: SQLite file `{path.name}` in `{tuning_dir.name}/` (kept between runs)."
    return storage, f"Storage: `{redact(storage)}`."


def redact(url: str | None) -> str:
    """A storage URL without its password."""
    if url is None:
        return "memory"
    from sqlalchemy.engine import make_url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL sqlalchemy can parse: say nothing of it
        return "<unparsed storage URL>"


def database_url(url: str) -> str:
    """``url`` with a PostgreSQL driver SQLAlchemy can load: a bare ``postgresql://`` means psycopg (3) to
    SQLAlchemy 2.1, while the project installs psycopg2; other URLs are returned as they are."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        import importlib.util
        if importlib.util.find_spec("psycopg") is None:
            return "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


def _storage(url: str | None) -> optuna.storages.BaseStorage | None:
    if url is None:
        return None
    url = database_url(url)
    # SQLite locks the whole file while one worker writes: let the other wait instead of failing.
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


def _sampler_and_pruner(seed: int, prune: bool) -> dict[str, Any]:
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5) if prune else optuna.pruners.NopPruner()
    return {"sampler": optuna.samplers.TPESampler(seed=seed), "pruner": pruner}


def open_study(storage_url: str | None, name: str, objective: str, split: Split, seed: int = 0,
               prune: bool = True, processed_dir: str = str(PROCESSED_DIR)) -> optuna.Study:
    """Create the study, or join an existing one if it searches the same objective on the same split.

    A new study gets the search settings as user attributes (for workers) and the default configuration
    enqueued as its first trial.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    study = optuna.create_study(storage=_storage(storage_url), study_name=name, direction="maximize",
                                load_if_exists=True, **_sampler_and_pruner(seed, prune))
    attrs = {"objective": objective, "prune": prune, "processed_dir": processed_dir,
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


def worker(root: Path, storage_url: str | None, name: str, n_trials: int, timeout: float | None, seed: int,
           study: optuna.Study | None = None) -> int:
    """Run ``n_trials`` trials (or until ``timeout`` seconds) of a study; return how many ran here."""
    joined = study is None
    if joined:
        study = optuna.load_study(study_name=name, storage=_storage(storage_url))
    attrs = study.user_attrs
    if not attrs:
        raise ValueError(f"study {name!r} has no settings: create it with the 05_tune notebook first.")
    split = Split.read(root / attrs["processed_dir"])
    if (split.train_sha256, split.val_sha256) != (attrs["train_sha256"], attrs["val_sha256"]):
        raise ValueError(f"the split in {root / attrs['processed_dir']} is not the one study {name!r} searches: "
                         "copy the study's data/processed here first.")
    if joined:  # each process gets its own seeded sampler: one seed in every worker would propose the same points
        study = optuna.load_study(study_name=name, storage=_storage(storage_url),
                                  **_sampler_and_pruner(seed, attrs["prune"]))
    objective = Objective(SplitData(split, root), attrs["objective"], attrs["prune"])
    ran = []
    study.optimize(objective, n_trials=n_trials, timeout=timeout or None, gc_after_trial=False,
                   callbacks=[lambda _study, trial: ran.append(trial.number)])
    log.info("worker done: %d trials here; TF-IDF cache %d hits, %d misses", len(ran),
             objective.data.cache.hits, objective.data.cache.misses)
    return len(ran)


def finished_trials(study: optuna.Study) -> int:
    """Trials that have run to an end (complete, pruned or failed); an enqueued trial is not one yet."""
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    return len(study.get_trials(deepcopy=False, states=states))


def shares(n_trials: int, workers: int) -> list[int]:
    """``n_trials`` split between ``workers`` as evenly as possible."""
    return [n_trials // workers + (i < n_trials % workers) for i in range(workers)]


def _worker_env(root: Path) -> dict[str, str]:
    """The environment of a worker process: this project root, and this process's intent_lib first on the path."""
    package_parent = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH", "")) if p)
    return os.environ | {"POSOS_ROOT": str(root), "PYTHONPATH": path}


def run_search(root: Path, study: optuna.Study, storage_url: str | None, n_trials: int, timeout: float | None,
               workers: int = 1, seed: int = 0) -> optuna.Study:
    """Run ``n_trials`` trials: in this process, or split between ``workers`` processes sharing the storage.

    Enqueued trials (the defaults) run here first, alone: workers polling one storage could both take the same
    waiting trial (SQLite has no row locks), and the second to finish would fail to report it.
    """
    if workers <= 1:
        worker(root, storage_url, study.study_name, n_trials, timeout, seed, study=study)
        return study
    if storage_url is None:
        raise ValueError("several workers need a shared storage (see resolve_storage)")
    waiting = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))
    if waiting:
        n_trials -= worker(root, storage_url, study.study_name, min(waiting, n_trials), timeout, seed, study=study)
    if n_trials <= 0:
        return study
    with tempfile.TemporaryDirectory() as logs:
        processes = []
        for index, count in enumerate(shares(n_trials, workers)):
            command = [sys.executable, "-m", "intent_lib.tuning", "--root", str(root),  # storage URL via env: no
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
    return optuna.load_study(study_name=study.study_name, storage=_storage(storage_url))


# --------------------------------------------------------------------------------------------- results
def trial_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, value, seconds, whether it is the default, and its params."""
    frame = study.trials_dataframe(attrs=("number", "state", "value", "params", "user_attrs"))
    frame.columns = [c.removeprefix("params_").removeprefix("user_attrs_") for c in frame.columns]
    if "default" not in frame:
        frame["default"] = False
    frame["default"] = frame["default"].eq(True)
    return frame.drop(columns=[c for c in ("scores",) if c in frame])


def default_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The completed trial of the default configuration, if any."""
    done = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if t.user_attrs.get("default")]
    return done[0] if done else None


def compare_with_default(data: SplitData, tuned: ModelParams, n_resamples: int = 1000, seed: int = 0,
                         confidence: float = 0.95, metrics: Sequence[str] = OBJECTIVES) -> pd.DataFrame:
    """The default and tuned configurations refitted and scored on the validation split, with paired bootstrap
    intervals; the row ``tuned - default`` is the difference resample by resample.

    Columns: config, metric, point, low, high, interval. Points use the bootstrap's convention (macro over the
    intents present), which equals the objective whenever every intent of the training rows is in the validation rows.
    """
    samples, points = {}, {}
    for config, params in (("default", ModelParams()), ("tuned", tuned)):
        predicted = data.predict(params)
        points[config] = weighted_scores(np.ones(len(predicted)), data.y_val, predicted, data.labels)[0].iloc[0]
        samples[config] = bootstrap_scores(data.y_val, predicted, data.labels, n_resamples, seed)[0]
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


def best_params_record(study: optuna.Study, storage_url: str | None, split: Split, seed: int,
                       bootstrap: dict[str, Any], commit: str) -> dict[str, Any]:
    """The best-parameters record (``intent_lib.best_params``) of the study's best trial."""
    best = study.best_trial
    counts = {state.name.lower(): len(study.get_trials(deepcopy=False, states=(state,)))
              for state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
                            optuna.trial.TrialState.FAIL)}
    default = default_trial(study)
    return build_record(
        params=ModelParams.from_dict(best.params), objective=study.user_attrs["objective"], score=best.value,
        scores=best.user_attrs.get("scores", {}), default_score=default.value if default else None,
        trial=best.number, split=split, bootstrap=bootstrap, commit=commit,
        study={"name": study.study_name, "storage": redact(storage_url), "trials": counts,
               "sampler": f"TPESampler(seed={seed})", "pruning": study.user_attrs.get("prune")})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m intent_lib.tuning",
                                     description="An Optuna worker joining a study created by notebook 05_tune.")
    parser.add_argument("--storage", default=os.environ.get(STORAGE_ENV),
                        help=f"database URL shared by the workers (default: ${STORAGE_ENV}, which keeps a password "
                             "out of the process list)")
    parser.add_argument("--study", required=True, help="study name")
    parser.add_argument("--trials", type=int, required=True, help="trials to run in this worker")
    parser.add_argument("--timeout", type=float, default=None, help="seconds after which to start no new trial")
    parser.add_argument("--seed", type=int, default=0, help="sampler seed (give each worker its own)")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="project root holding the split")
    args = parser.parse_args(argv)
    if not args.storage:
        parser.error(f"give --storage or set {STORAGE_ENV}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S")
    worker(args.root.resolve(), args.storage, args.study, args.trials, args.timeout, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
