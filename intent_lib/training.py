"""Train on a written split and save the model with its card (the work of notebook 02_train)."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sklearn.pipeline import Pipeline

from intent_lib.artefacts import save_model
from intent_lib.card import build_card, write_card
from intent_lib.intents import intent_names
from intent_lib.metrics import expected_calibration_error, summary_scores
from intent_lib.model import ModelParams, fit_model
from intent_lib.paths import card_path
from intent_lib.split import Split

log = logging.getLogger(__name__)

def validation_metrics(model: Pipeline, texts: list[str], labels: list[int]) -> dict[str, float]:
    """Summary scores and expected calibration error of ``model`` on labelled texts."""
    proba = model.predict_proba(texts)
    predicted = model.classes_[proba.argmax(axis=1)]
    scores = summary_scores(labels, predicted, labels=model.classes_)
    return scores | {"ece": expected_calibration_error(labels, predicted, proba.max(axis=1)), "n": len(labels)}


def train_and_save(split: Split, root: Path, model_path: Path, params: ModelParams, params_source: str,
                   random_state: int = 0) -> tuple[Pipeline, dict[str, Any]]:
    """Fit on the split's train rows (SVM ``random_state``), score on its validation rows, write the pickle at
    ``model_path`` and its card beside it."""
    train, val = split.frames(root)
    started = time.perf_counter()
    model = fit_model(train["question"], train["intention"], params, random_state)
    fit_seconds = time.perf_counter() - started
    log.info("fitted on %d questions in %.1f s", len(train), fit_seconds)
    sha = save_model(model, model_path)
    labels = [int(c) for c in model.classes_]
    card = build_card(
        model_sha256=sha, dataset=asdict(split.dataset),
        split={"seed": split.seed, "val_size": split.val_size, "train_rows": len(train), "val_rows": len(val),
               "train_sha256": split.train_sha256, "val_sha256": split.val_sha256},
        params=params.to_dict(), params_source=params_source, labels=labels, names=intent_names(labels),
        validation=validation_metrics(model, val["question"].tolist(), val["intention"].tolist()) | {
            "fit_seconds": round(fit_seconds, 2)},
    )
    write_card(card, card_path(model_path))
    return model, card
