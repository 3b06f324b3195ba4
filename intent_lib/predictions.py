"""Saved predictions: the probabilities 02_train writes for the steps after it (never beside the served model).

A file (``paths.PREDICTIONS_DIR``: the validation predictions, scored by 03 and 04, and every labelled row's
held-out ones, read by 06) holds the probabilities, the IDs of their rows and the classes of their columns;
``load_predictions`` gives them back in the row order a step asks for, or refuses them when they were written for
another split or dataset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


class StalePredictionsError(ValueError):
    """Saved predictions that do not cover the rows asked for: written for another split or data."""


def save_predictions(path: Path, ids: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> None:
    """Write probabilities with the IDs of their rows and the classes of their columns (float32, compressed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, ids=np.asarray(ids), proba=proba.astype(np.float32), classes=np.asarray(classes))


def load_predictions(path: Path, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(proba, classes)`` written by ``save_predictions``, in the row order of ``frame`` (by ``ID``)."""
    if not path.is_file():
        raise FileNotFoundError(f"No saved predictions at {path}: run `make train` (02_train) first.")
    with np.load(path) as data:
        ids, proba, classes = data["ids"], data["proba"].astype(np.float64), data["classes"]
    position = pd.Series(np.arange(len(ids)), index=ids)
    if not frame["ID"].isin(position.index).all():
        raise StalePredictionsError(f"{path.name} was written for another split or dataset: run `make train`.")
    return proba[position.loc[frame["ID"]].to_numpy()], classes
