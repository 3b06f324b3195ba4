"""This run against a baseline run: which one, its logged validation predictions, and the comparison file.

The baseline is the latest earlier finished run with the same split hashes, or the one ``BASELINE`` names: a run
id, or ``champion`` (the run of the registered model's ``champion`` version). Both runs' validation predictions
go through ``comparison.compare_predictions``; the result is written to ``paths.COMPARISON_PATH`` (for the
index page), logged to the run, and summed up in one console line.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from intent_lib.comparison import HEADLINE, compare_predictions
from intent_lib.evaluation import validation_predictions
from intent_lib.files import write_json
from intent_lib import paths
from intent_lib.paths import COMPARISON_PATH, PROCESSED_DIR, VALIDATION_PREDICTIONS_FILE
from intent_lib.split import Split
from intent_lib.model_registry import CHAMPION, REGISTERED_MODEL
from intent_lib.tracking import PREDICTIONS_DIR, REPORTS_ARTIFACTS_DIR, TrackedRun, TrackingError, log_figures
from intent_lib.predictions import StalePredictionsError, load_predictions

BASELINE_ENV = "BASELINE"
SPLIT_TAGS = ("split_train_sha256", "split_val_sha256")


def baseline_run(tracked: TrackedRun, choice: str | None) -> str | None:
    """The baseline's run id: ``choice`` (a run id or ``champion``), else the latest earlier finished run
    with this run's split hashes (None when there is none). ``TrackingError`` for a choice that names nothing."""
    client = tracked.client
    if choice == CHAMPION:
        try:
            return client.get_model_version_by_alias(REGISTERED_MODEL, CHAMPION).run_id
        except Exception as exc:  # noqa: BLE001 - MlflowException for an unknown model or alias
            raise TrackingError(f"{BASELINE_ENV}={CHAMPION}: no version of {REGISTERED_MODEL} has the alias "
                                f"{CHAMPION} (make promote VERSION=N sets it)") from exc
    if choice:
        try:
            return client.get_run(choice).info.run_id
        except Exception as exc:  # noqa: BLE001 - MlflowException: unknown or malformed id
            raise TrackingError(f"{BASELINE_ENV}={choice}: no such run in the tracking store") from exc
    tags = client.get_run(tracked.run_id).data.tags
    if not all(tags.get(t) for t in SPLIT_TAGS):
        return None
    same_split = " and ".join(f"tags.{t} = '{tags[t]}'" for t in SPLIT_TAGS)
    earlier = client.search_runs([tracked.experiment_id], f"{same_split} and attributes.status = 'FINISHED'",
                                 max_results=2, order_by=["attributes.start_time DESC"])
    return next((r.info.run_id for r in earlier if r.info.run_id != tracked.run_id), None)


def _choice() -> str | None:
    return os.environ.get(BASELINE_ENV, "").strip() or None


def check_choice(tracked: TrackedRun) -> None:
    """Before any step runs: ``TrackingError`` when ``BASELINE`` names no run."""
    if choice := _choice():
        baseline_run(tracked, choice)


def _predicted(proba: np.ndarray, classes: np.ndarray) -> np.ndarray:
    return np.asarray(classes)[proba.argmax(axis=1)]


def _baseline_predictions(tracked: TrackedRun, run_id: str, val: pd.DataFrame) -> tuple[np.ndarray | None, str]:
    """The baseline run's predicted intents for ``val``'s rows, or None and why not."""
    with tempfile.TemporaryDirectory() as folder:
        try:
            path = tracked.client.download_artifacts(run_id, f"{PREDICTIONS_DIR}/{VALIDATION_PREDICTIONS_FILE}",
                                                     folder)
            return _predicted(*load_predictions(Path(path), val)), ""
        except StalePredictionsError:
            return None, "its validation predictions cover other rows"
        except Exception as exc:  # noqa: BLE001 - MlflowException or OSError: the artefact is not there
            return None, f"its validation predictions could not be read ({type(exc).__name__})"


def compare_with_baseline(tracked: TrackedRun, choice: str | None = None) -> str:
    """Compare this run with its baseline, write and log the comparison; return the console line."""
    choice = choice if choice is not None else _choice()
    root = tracked.root
    baseline = baseline_run(tracked, choice)
    content: dict[str, Any] = {"run_id": tracked.run_id, "baseline_run_id": baseline}
    if baseline is None:
        content["line"] = "no earlier run with the same split to compare with"
    else:
        val = Split.read(root / PROCESSED_DIR).frames(root)[1]
        ours = _predicted(*validation_predictions(root / paths.PREDICTIONS_DIR, val))
        theirs, problem = _baseline_predictions(tracked, baseline, val)
        if theirs is None:
            content["line"] = f"vs run {baseline}: not comparable, {problem}"
        else:
            labels = np.union1d(np.union1d(val["intention"], ours), theirs)
            comparison = compare_predictions(val["intention"].to_numpy(), ours, theirs, labels)
            content |= comparison.to_dict() | {"line": comparison.line(f"run {baseline}")}
            log_figures(tracked, {f"vs_baseline.{k}": comparison.deltas[k].point for k in HEADLINE})
    if baseline is not None:
        tracked.client.set_tag(tracked.run_id, "baseline_run_id", baseline)
    write_json(content, root / COMPARISON_PATH)
    tracked.client.log_artifact(tracked.run_id, str(root / COMPARISON_PATH), REPORTS_ARTIFACTS_DIR)
    return content["line"]
