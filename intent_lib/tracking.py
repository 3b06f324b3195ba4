"""Every ``python -m intent_lib train`` on record: one MLflow run in the experiment ``posos-intent``.

The run holds each step's resolved parameters, the validation figures (read back from ``reports/metrics.json``,
``reports/variability.json`` and the model card, so a reused step still reports them), tags naming the code,
data, split and model it came from, and the artefacts (card, model, validation predictions, JSON and HTML
reports). The store is local by default (``paths.RUNS_DIR``: a SQLite file and an artefact folder, no server);
``MLFLOW_TRACKING_URI`` names another and ``TRACKING=off`` turns tracking off. ``open_run`` reaches the store
before any step runs, so a server that does not answer stops the run in one line within seconds.

mlflow is imported only when a run is tracked: the import alone takes seconds.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from intent_lib.files import read_json
from intent_lib import paths
from intent_lib.paths import (COMPARISON_PATH, METRICS_PATH, MODEL_PATH, PROCESSED_DIR, REPORTS_DIR, RUNS_ARTIFACTS,
                              RUNS_DB, RUNS_DIR, SPLIT_META, VARIABILITY_PATH, card_path, validation_predictions_path)

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

EXPERIMENT = "posos-intent"
TRACKING_ENV = "TRACKING"  # off (or 0, false, no): no run is logged
URI_ENV = "MLFLOW_TRACKING_URI"
# Nothing leaves the machine unasked, and a server that does not answer fails fast: MLflow's own defaults are
# 7 retries with backoff and a 120 s timeout per request, minutes in all. MLflow's own INFO lines and progress
# bars and its "View run at URL" line with a server store stay out of the console (the runner logs the run once).
QUIET_ENVIRONMENT = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
                     "MLFLOW_HTTP_REQUEST_TIMEOUT": "5", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
                     "MLFLOW_LOGGING_LEVEL": "WARNING", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
# Where a run's artefacts go inside it; the comparison downloads a baseline's predictions from PREDICTIONS_DIR.
MODEL_DIR, PREDICTIONS_DIR, REPORTS_ARTIFACTS_DIR = "model", "predictions", "reports"
# The card's validation figures that metrics.json leaves out: answered share at the unsure threshold, conformal sets.
CARD_FIGURES = ("answered_share", "answered_accuracy", "conformal_coverage", "mean_set_size")
BATCH = 100  # MLflow takes at most 100 parameters per log_batch call
_USERINFO = re.compile(r"(?<=://)[^/@]+@")


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message is one line saying what to do."""


@dataclass
class TrackedRun:
    """An open MLflow run and the client that writes to it."""

    client: "MlflowClient"
    run_id: str
    experiment_id: str
    root: Path


def enabled() -> bool:
    return os.environ.get(TRACKING_ENV, "on").strip().lower() not in {"off", "0", "false", "no"}


def quiet_environment() -> None:
    """Telemetry off and short HTTP retries, unless the caller chose otherwise (the notebook kernels inherit it)."""
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


def tracking_uri(root: Path) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the SQLite file of the local store under ``root``."""
    return os.environ.get(URI_ENV) or f"sqlite:///{root / RUNS_DIR / RUNS_DB}"


def artifact_location(uri: str) -> str | None:
    """For a SQLite store, the artefact folder beside its file (an absolute path, as MLflow records it); for a
    server, None: the server decides."""
    if not uri.startswith("sqlite:///"):
        return None
    return str(Path(uri.removeprefix("sqlite:///")).parent / RUNS_ARTIFACTS)


def _shown(uri: str) -> str:
    """The URI without any user or password in it."""
    return _USERINFO.sub("", uri)


def _one_line(exc: BaseException) -> str:
    """The exception's first line, shortened, without the credentials a URL in it may hold."""
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {_shown(first)[:200]}"


def store_error(uri: str, started: float, exc: BaseException, train: bool = True) -> TrackingError:
    """The one line for a store that failed to answer (a train run can also go without it)."""
    remedy = f"set {URI_ENV} to one that answers" + (f", or set {TRACKING_ENV}=off" if train else "")
    return TrackingError(f"tracking store {_shown(uri)} failed after {time.perf_counter() - started:.0f} s "
                         f"({_one_line(exc)}): start it, {remedy}")


def connect(root: Path, train: bool = True) -> "MlflowClient":
    """A client of the store (``tracking_uri``), which answered once; ``TrackingError`` in one line if it fails
    (``train``: for a train run, which ``TRACKING=off`` runs without it)."""
    quiet_environment()
    uri = tracking_uri(root)
    started = time.perf_counter()
    from mlflow import MlflowClient

    try:
        if location := artifact_location(uri):
            Path(location).parent.mkdir(parents=True, exist_ok=True)
        client = MlflowClient(tracking_uri=uri)
        client.get_experiment_by_name(EXPERIMENT)
    except Exception as exc:  # noqa: BLE001 - any failure of the store means the same thing to the user
        raise store_error(uri, started, exc, train) from exc
    return client


def open_run(root: Path, command: str = "train") -> TrackedRun | None:
    """Start this ``command``'s MLflow run (None when tracking is off); ``TrackingError`` if the store fails."""
    if command == "train":
        (root / COMPARISON_PATH).unlink(missing_ok=True)  # it described an earlier run
    if not enabled():
        return None
    client = connect(root)
    uri = tracking_uri(root)
    started = time.perf_counter()
    try:
        experiment = client.get_experiment_by_name(EXPERIMENT)
        experiment_id = (experiment.experiment_id if experiment is not None
                         else client.create_experiment(EXPERIMENT, artifact_location=artifact_location(uri)))
        run = client.create_run(experiment_id, tags={"command": command})
    except Exception as exc:  # noqa: BLE001 - any failure of the store means the same thing to the user
        raise store_error(uri, started, exc) from exc
    log.info("tracking run %s in %s", run.info.run_id, _shown(uri))
    return TrackedRun(client, run.info.run_id, experiment_id, root)


def resolved_parameters(declared: dict[str, dict[str, str]], overrides: dict[str, Any]) -> dict[str, str]:
    """``step.name`` -> the value the step ran with: the override, else the default's source text."""
    return {f"{step}.{name}": repr(overrides[name]) if name in overrides else spec["default"]
            for step, params in declared.items() for name, spec in params.items()}


def _flat(prefix: str, content: Any) -> Iterator[tuple[str, float]]:
    """``prefix.key.subkey`` -> number, for every finite number in nested dictionaries."""
    if isinstance(content, dict):
        for key, value in content.items():
            yield from _flat(f"{prefix}.{key}", value)
    elif isinstance(content, (int, float)) and not isinstance(content, bool) and math.isfinite(content):
        yield prefix, float(content)


def run_figures(root: Path) -> tuple[dict[str, float], dict[str, str], dict[str, Any]]:
    """Metrics, tags and model parameters of the artefacts on disk (whichever step wrote them, this run or not)."""
    card = _read(root / card_path(MODEL_PATH))
    metrics = dict(_flat("val", _read(root / METRICS_PATH).get("summary", {})))
    validation = card.get("validation", {})
    metrics |= dict(_flat("val", {k: validation[k] for k in CARD_FIGURES if k in validation}))
    variability = _read(root / VARIABILITY_PATH)
    metrics |= dict(_flat("bootstrap", variability.get("bootstrap", {}).get("summary", {})))
    metrics |= dict(_flat("seeds", variability.get("seeds", {}).get("summary", {})))
    split = _read(root / PROCESSED_DIR / SPLIT_META)
    tags = {"git_commit": card.get("git_commit"), "model_sha256": card.get("model_sha256"),
            "model_version": card.get("model_version"), "dataset_sha256": split.get("dataset", {}).get("sha256"),
            "dataset_source": split.get("dataset", {}).get("source"),
            "split_train_sha256": split.get("train_sha256"), "split_val_sha256": split.get("val_sha256")}
    params = {f"model.{k}": v for k, v in card.get("params", {}).items()} | {
        "model.params_source": card.get("params_source"),
        **{f"uncertainty.{k}": card.get("uncertainty", {}).get(k) for k in ("target_accuracy", "alpha")}}
    return metrics, {k: str(v) for k, v in tags.items() if v is not None}, params


def _read(path: Path) -> dict[str, Any]:
    return read_json(path) if path.is_file() else {}


def artefacts(root: Path) -> list[tuple[Path, str]]:
    """The files a run keeps, each with its folder in the run."""
    model = root / MODEL_PATH
    found = [(model, MODEL_DIR), (card_path(model), MODEL_DIR), (validation_predictions_path(root / paths.PREDICTIONS_DIR), PREDICTIONS_DIR)]
    reports = root / REPORTS_DIR
    found += [(p, REPORTS_ARTIFACTS_DIR) for p in sorted([*reports.glob("*.json"), *reports.glob("*.html")])]
    return [(path, folder) for path, folder in found if path.is_file()]


def finish_run(tracked: TrackedRun, steps: dict[str, str], declared: dict[str, dict[str, str]],
               overrides: dict[str, Any]) -> None:
    """Log the run's parameters, figures, tags (``step.<name>``: ran or reused) and artefacts."""
    metrics, tags, model_params = run_figures(tracked.root)
    params = resolved_parameters(declared, overrides) | {k: str(v) for k, v in model_params.items()}
    tags |= {f"step.{name}": outcome for name, outcome in steps.items()}
    log_values(tracked, params, tags)
    log_figures(tracked, metrics)
    for path, folder in artefacts(tracked.root):
        tracked.client.log_artifact(tracked.run_id, str(path), folder)


def log_values(tracked: TrackedRun, params: dict[str, str], tags: dict[str, str]) -> None:
    """Log parameters and tags (name -> text) to the run, in batches."""
    from mlflow.entities import Param, RunTag

    items = list(params.items())
    for start in range(0, len(items), BATCH):
        tracked.client.log_batch(tracked.run_id, params=[Param(k, v) for k, v in items[start:start + BATCH]])
    tracked.client.log_batch(tracked.run_id, tags=[RunTag(k, v) for k, v in tags.items()])


def log_figures(tracked: TrackedRun, metrics: dict[str, float]) -> None:
    """Log metrics (name -> value) to the run at one timestamp."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    tracked.client.log_batch(tracked.run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])


def end_run(tracked: TrackedRun, succeeded: bool) -> None:
    tracked.client.set_terminated(tracked.run_id, "FINISHED" if succeeded else "FAILED")



@contextmanager
def tracked_run(root: Path, wanted: bool = True, command: str = "train") -> Iterator[TrackedRun | None]:
    """``open_run`` (when ``wanted``), ended FINISHED when the block completes and FAILED when it raises."""
    tracked = open_run(root, command) if wanted else None
    try:
        yield tracked
    except BaseException:
        if tracked is not None:
            end_run(tracked, succeeded=False)
        raise
    if tracked is not None:
        end_run(tracked, succeeded=True)
