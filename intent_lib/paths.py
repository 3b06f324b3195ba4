"""The artefact layout: every directory and file name the pipeline reads or writes, in one place.

Paths are relative to the repository root; ``resolve`` makes them absolute. Notebook parameters take their
defaults from here, and no other file types these names (``tests/test_layout.py`` checks).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT_MARKER = "pyproject.toml"

# The encrypted dataset, when DATA_ARCHIVE does not name another.
DEFAULT_ARCHIVE = Path("data.tgz.gpg")

# intent_lib/resources/: the project's own out-of-scope questions (kind,question), to report what the scope rule
# catches (never to fit it).
OUT_OF_SCOPE_SET = "out_of_scope.csv"

# data/: the challenge's CSV files, decrypted, and a note of the archive they came from.
DATA_DIR = Path("data")
TRAIN_INPUTS = "input_train.csv"  # ID,question
TRAIN_LABELS = "output_train.csv"  # ID,intention
TEST_INPUTS = "input_test.csv"  # ID,question (unlabelled)
LABELLED_FILES = (TRAIN_INPUTS, TRAIN_LABELS)
DATASET_FILES = (*LABELLED_FILES, TEST_INPUTS)
ARCHIVE_ORIGIN = "archive.json"
TEST_INPUTS_PATH = DATA_DIR / TEST_INPUTS

# data/processed/: the train/validation split (01_split).
PROCESSED_DIR = DATA_DIR / "processed"
TRAIN_SPLIT = "train.csv"
VAL_SPLIT = "val.csv"
SPLIT_META = "split.json"

# data/cache/: sentence embeddings by text hash (training, tuning, bench; the server caches in memory only).
EMBEDDING_CACHE_DIR = DATA_DIR / "cache" / "embeddings"
EMBEDDING_CACHE_ENV = "POSOS_EMBEDDING_CACHE"  # the cache folder; unset, embeddings are cached in memory only

# models/: what the API serves, and nothing else: the pickle and its card (02_train).
MODELS_DIR = Path("models")
MODEL_FILE = "intent_model.pkl"
CARD_FILE = "model_card.json"
MODEL_PATH = MODELS_DIR / MODEL_FILE
# models/registry/: versions fetched from the model registry (intent_lib/model_registry.py) for the API, one folder
# each, <name>/<version>/, holding the pickle, its card and REGISTRY_RECORD_FILE (which registered version it is);
# and per API port a link, port-<port>, to the version that server loads when it starts and when it reloads.
REGISTRY_MODELS_DIR = MODELS_DIR / "registry"
REGISTRY_RECORD_FILE = "registry.json"

# state/: what training keeps between runs and the API never reads (the trainer container mounts it).
STATE_DIR = Path("state")
PREDICTIONS_DIR = STATE_DIR / "predictions"  # 02_train's probabilities, read by 03, 04 and 06
VALIDATION_PREDICTIONS_FILE = "validation_predictions.npz"  # the train-split model's validation probabilities
HELD_OUT_PREDICTIONS_FILE = "held_out_predictions.npz"  # every labelled row, scored by a model that never saw it
TUNING_DIR = STATE_DIR / "tuning"  # 05_tune: the tuned hyperparameters (an input of 02_train) and its studies
BEST_PARAMS_FILE = "best_params.json"
OPTUNA_DB = "optuna.db"  # storage=sqlite: kept between runs
OPTUNA_WORKERS_DB = "optuna_workers.db"  # several workers asked for memory: replaced at each run
BEST_PARAMS_PATH = TUNING_DIR / BEST_PARAMS_FILE
STAMPS_DIR = STATE_DIR / "stamps"  # one JSON per training step: what it last ran on and wrote (intent_lib.stamps)

# runtime/: what a running server keeps (``python -m api.serve``), one folder per port, removed when it exits:
# its pid, the pointer to the model version in service, its live workers' pids, and versions/<sha12>/, a private
# copy of each model version it loads (pickle and card), so a replaced worker never reads a file changed since.
RUNTIME_DIR = Path("runtime")
RUNTIME_DIR_ENV = "POSOS_RUNTIME_DIR"  # another folder for it (the image's /app is read-only)
VERSIONS_DIR = "versions"
IN_SERVICE_FILE = "in_service"  # the sha12 of the version in service
SUPERVISOR_PID_FILE = "supervisor.pid"
WORKER_PIDS_FILE = "workers"  # one live worker pid per line

# reports/: HTML reports, executed notebooks, figures as JSON, the submission file.
REPORTS_DIR = Path("reports")
EXECUTED_DIR = REPORTS_DIR / "executed"
INDEX_FILE = "index.html"
METRICS_PATH = REPORTS_DIR / "metrics.json"  # 03_evaluate
VARIABILITY_PATH = REPORTS_DIR / "variability.json"  # 04_variability
TUNING_PATH = REPORTS_DIR / "tuning.json"  # 05_tune: the search's outcome, whether or not it beat the defaults
DATA_QUALITY_PATH = REPORTS_DIR / "data_quality.json"  # 06_data_quality
LABEL_ISSUES_PATH = REPORTS_DIR / "label_issues.csv"  # 06_data_quality: likely label errors, ranked
PREDICTIONS_PATH = REPORTS_DIR / "predictions_test.csv"  # make test: the submission file
UNSURE_PREDICTIONS_PATH = REPORTS_DIR / "predictions_test_unsure.csv"  # make test TEST_ARGS=--unsure: with an unsure column
COMPARISON_PATH = REPORTS_DIR / "comparison.json"  # make train, when tracked: this run against its baseline run

# mlruns/: the local run store (intent_lib/tracking.py), when MLFLOW_TRACKING_URI names no other: a SQLite file and,
# beside it, the artefact folder. Git- and docker-ignored; `make train` mounts it in the trainer container at the
# same absolute path, since MLflow records each experiment's artefact folder as an absolute path.
RUNS_DIR = Path("mlruns")
RUNS_DB = "mlflow.db"
RUNS_ARTIFACTS = "artifacts"

# bench/results/: what `make bench` and `make bench-api` measured.
BENCH_RESULTS_DIR = Path("bench") / "results"
BENCH_MODEL_FILE = "model.json"  # make bench
BENCH_TRAIN_FILE = "train.json"  # bench/bench_train.py: make train's fresh run and reruns
BENCH_WEIGHTS_FILE = "sentence_weights.json"  # make bench over several sentence weights (docs/model.md says how)
BENCH_API_FILE = "bench_api.json"  # make bench-api: GET latency and throughput, batch throughput
BENCH_LOAD_FILE = "bench_load.json"  # make bench-load: mixed load, batch starvation, hostile floods
BENCH_MEMORY_FILE = "bench_memory.json"  # bench/bench_memory.py: a worker's memory as its embedding cache fills
BENCH_TUNING_FILE = "tuning_recipes.json"  # bench/bench_tuning.py: the search recipe's ranking against the full one

# docs/: the figures README and the docs pages quote (`make results`, intent_lib/results.py): the committed snapshot,
# the templates of the generated blocks (docs/blocks/<name>.md.j2), and the pages whose blocks are rendered from it
# and checked by tests/test_results.py (add a page here once its figures sit in blocks).
RESULTS_SNAPSHOT = Path("docs") / "results.json"
RESULTS_BLOCKS_DIR = Path("docs") / "blocks"
RESULTS_PAGES = (Path("README.md"), *(Path("docs") / page for page in (
    "model.md", "uncertainty.md", "variability-and-tuning.md", "data-quality.md", "runs.md", "api-operations.md",
    "development.md")))

# notebooks/: the steps, in the order they run.
NOTEBOOKS_DIR = Path("notebooks")
TRAIN_NOTEBOOKS = ("01_split", "02_train", "03_evaluate", "04_variability", "06_data_quality")  # make train
TUNE_NOTEBOOKS = ("05_tune",)  # make tune

# What each training step reads and writes. Its stamp also holds its notebook, the intent_lib modules it imports,
# the lock file and the package's resources and templates; a step is reused while all of these are unchanged.
TRAIN_LOCK = Path("requirements") / "train.lock"  # the libraries of training, locally and in the trainer image
_SPLIT_FILES = tuple(PROCESSED_DIR / name for name in (TRAIN_SPLIT, VAL_SPLIT, SPLIT_META))
_CARD_PATH = MODELS_DIR / CARD_FILE
STEP_FILES: dict[str, tuple[tuple[Path, ...], tuple[Path, ...]]] = {  # notebook -> (reads, writes)
    "01_split": ((*(DATA_DIR / name for name in LABELLED_FILES), DATA_DIR / ARCHIVE_ORIGIN), _SPLIT_FILES),
    "02_train": ((*_SPLIT_FILES, BEST_PARAMS_PATH),
                 (MODEL_PATH, _CARD_PATH, PREDICTIONS_DIR / VALIDATION_PREDICTIONS_FILE,
                  PREDICTIONS_DIR / HELD_OUT_PREDICTIONS_FILE)),
    "03_evaluate": ((*_SPLIT_FILES, MODEL_PATH, _CARD_PATH, PREDICTIONS_DIR / VALIDATION_PREDICTIONS_FILE,
                     TEST_INPUTS_PATH), (METRICS_PATH,)),
    "04_variability": ((*_SPLIT_FILES, MODEL_PATH, _CARD_PATH, PREDICTIONS_DIR / VALIDATION_PREDICTIONS_FILE),
                       (VARIABILITY_PATH,)),
    "06_data_quality": ((*_SPLIT_FILES, _CARD_PATH, PREDICTIONS_DIR / HELD_OUT_PREDICTIONS_FILE, TEST_INPUTS_PATH),
                        (LABEL_ISSUES_PATH, DATA_QUALITY_PATH)),
}


def project_root() -> Path:
    """The repository root: ``POSOS_ROOT`` if set, else the nearest parent of the cwd holding pyproject.toml."""
    if env := os.environ.get("POSOS_ROOT"):
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / ROOT_MARKER).is_file():
            return candidate
    return here


def resolve(path: str | os.PathLike[str]) -> Path:
    """An absolute path: absolute paths stay, relative ones are taken from the project root."""
    p = Path(path)
    return p if p.is_absolute() else project_root() / p


def card_path(model_path: str | os.PathLike[str]) -> Path:
    """The model card that belongs to a pickle: beside it."""
    return Path(model_path).with_name(CARD_FILE)


def validation_predictions_path(predictions_dir: str | os.PathLike[str]) -> Path:
    """The train-split model's validation probabilities (02_train, for 03 and 04) in a predictions folder."""
    return Path(predictions_dir) / VALIDATION_PREDICTIONS_FILE


def held_out_predictions_path(predictions_dir: str | os.PathLike[str]) -> Path:
    """Every labelled row's probabilities from a model that never saw it (02_train, for 06) in a predictions folder."""
    return Path(predictions_dir) / HELD_OUT_PREDICTIONS_FILE


def registry_model_path(name: str, version: str | int) -> Path:
    """Where version ``version`` of the registered model ``name`` is fetched for the API."""
    return REGISTRY_MODELS_DIR / name / str(version) / MODEL_FILE


def registry_link(port: int) -> Path:
    """The link to the registered version that the API server on ``port`` serves (``make api MODEL=...``)."""
    return REGISTRY_MODELS_DIR / f"port-{port}"


def server_state_dir(port: int) -> Path:
    """The folder of the server listening on ``port`` (``RUNTIME_DIR``, or ``POSOS_RUNTIME_DIR`` when set)."""
    return resolve(os.environ.get(RUNTIME_DIR_ENV) or RUNTIME_DIR) / str(port)
