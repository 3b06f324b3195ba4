"""Train on a written split and save the model with its card (the work of notebook 02_train).

The train-split model (fitted on the train rows) is scored on the validation rows: those are the metrics
the card and the reports give, and its validation probabilities are saved for ``03_evaluate`` and
``04_variability`` (in ``paths.PREDICTIONS_DIR``, not beside the served model). The unsure threshold is chosen on them. With ``refit_full`` (the default) the same
configuration is then refitted on train + validation and that model is the one saved and served; its
conformal sets are calibrated on its own out-of-fold probabilities (see ``intent_lib.uncertainty``).
Every labelled row's probabilities from a model that never saw it (out-of-fold, and the validation rows'
predictions when the served model did not see them) are saved for ``06_data_quality``. The out-of-scope rule
(``intent_lib.scope``) is fitted on the served rows' embeddings, its reference stored in the pickle.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from joblib import parallel_config
from sklearn.pipeline import Pipeline

from intent_lib.artefacts import save_model
from intent_lib.card import build_card
from intent_lib.encoder import encoder_record
from intent_lib.files import write_json
from intent_lib.intents import intent_names
from intent_lib.metrics import expected_calibration_error, summary_scores
from intent_lib.model import ModelParams, clean_texts, fit_model
from intent_lib.paths import PREDICTIONS_DIR, card_path, held_out_predictions_path, validation_predictions_path
from intent_lib.predictions import save_predictions
from intent_lib.reasons import has_content, reason, reason_shares
from intent_lib.scope import REFERENCE_ATTRIBUTE, fit_scope, stored
from intent_lib.split import Split
from intent_lib.uncertainty import (DEFAULT_ALPHA, DEFAULT_TARGET_ACCURACY, Uncertainty, choose_threshold,
                                    conformalize, set_coverage)

log = logging.getLogger(__name__)


def proba_metrics(proba: np.ndarray, classes: np.ndarray, labels: Sequence[int]) -> dict[str, float]:
    """Summary scores and expected calibration error of predicted probabilities."""
    predicted = classes[proba.argmax(axis=1)]
    scores = summary_scores(labels, predicted, labels=classes)
    return scores | {"ece": expected_calibration_error(labels, predicted, proba.max(axis=1)), "n": len(labels)}


def uncertainty_metrics(uncertainty: Uncertainty, proba: np.ndarray, classes: np.ndarray,
                        labels: Sequence[int]) -> dict[str, float]:
    """Share answered (not unsure), accuracy among them, conformal coverage and mean set size."""
    labels = np.asarray(labels)
    answered = ~uncertainty.unsure(proba.max(axis=1))
    correct = classes[proba.argmax(axis=1)] == labels
    sets = set_coverage(labels, proba, classes, uncertainty).iloc[0]
    return {"answered_share": float(answered.mean()),
            "answered_accuracy": float(correct[answered].mean()) if answered.any() else float("nan"),
            "conformal_coverage": float(sets["coverage"]), "mean_set_size": float(sets["mean_set_size"])}


def validation_reason_shares(texts: Sequence[str], proba: np.ndarray, outside: np.ndarray,
                             uncertainty: Uncertainty) -> dict[str, float]:
    """The share of validation answers unsure, and given each reason (``intent_lib.reasons``), as the API would
    answer them with the train-split model and scope rule: the rates a server's answers compare with."""
    low = uncertainty.unsure(proba.max(axis=1))
    return reason_shares([reason(content=has_content(t), out_of_scope=bool(o), low_confidence=bool(lo))
                          for t, o, lo in zip(clean_texts(texts), outside, low)])


def oof_proba(model: Pipeline) -> np.ndarray:
    """The out-of-fold probabilities of the rows ``model`` was fitted on (kept by its classifier)."""
    return model.named_steps["classifier"].oof_proba_


def _fit(texts: pd.Series, labels: pd.Series, params: ModelParams, random_state: int,
         n_jobs: int | None) -> tuple[Pipeline, float]:
    started = time.perf_counter()
    with parallel_config(n_jobs=n_jobs):  # the classifier's fold fits, ``n_jobs`` at a time
        model = fit_model(texts, labels, params, random_state)
    seconds = time.perf_counter() - started
    log.info("fitted on %d questions in %.1f s", len(texts), seconds)
    return model, seconds


def train_and_save(split: Split, root: Path, model_path: Path, params: ModelParams, params_source: str,
                   random_state: int = 0, refit_full: bool = True, target_accuracy: float = DEFAULT_TARGET_ACCURACY,
                   alpha: float = DEFAULT_ALPHA, n_jobs: int | None = None,
                   predictions_dir: Path | None = None) -> tuple[Pipeline, dict[str, Any]]:
    """Fit on the train rows, score on the validation rows, choose the unsure threshold and conformal sets,
    refit on every row when ``refit_full``; write the served pickle at ``model_path`` and its card beside it, the
    validation and held-out predictions in ``predictions_dir`` (default: the layout's, under ``root``).
    ``random_state`` is the SVM's; ``n_jobs`` processes fit its folds (joblib's convention, -1: one per core; the
    model does not depend on it)."""
    predictions_dir = predictions_dir or root / PREDICTIONS_DIR
    train, val = split.frames(root)
    model, fit_seconds = _fit(train["question"], train["intention"], params, random_state, n_jobs)
    classes = model.classes_
    val_labels = val["intention"].to_numpy()
    val_proba = model.predict_proba(val["question"].tolist())
    save_predictions(validation_predictions_path(predictions_dir), val["ID"], val_proba, classes)
    threshold = choose_threshold(val_labels, classes[val_proba.argmax(axis=1)], val_proba.max(axis=1),
                                 target_accuracy)
    checked = Uncertainty(threshold, target_accuracy, alpha,
                          conformalize(oof_proba(model), train["intention"], classes, alpha))
    validation = (proba_metrics(val_proba, classes, val_labels) | {"fit_seconds": round(fit_seconds, 2)}
                  | uncertainty_metrics(checked, val_proba, classes, val_labels)
                  | {"set_threshold": checked.set_threshold})

    served, served_rows, served_seconds, uncertainty = model, train, fit_seconds, checked
    if refit_full:
        served_rows = pd.concat([train, val], ignore_index=True)
        served, served_seconds = _fit(served_rows["question"], served_rows["intention"], params, random_state, n_jobs)
        uncertainty = Uncertainty(threshold, target_accuracy, alpha,
                                  conformalize(oof_proba(served), served_rows["intention"], served.classes_, alpha))
    held_out_ids, held_out = ((served_rows["ID"], oof_proba(served)) if refit_full else
                              (served_rows["ID"].tolist() + val["ID"].tolist(), np.vstack([oof_proba(model), val_proba])))
    save_predictions(held_out_predictions_path(predictions_dir), held_out_ids, held_out, served.classes_)
    scope, outside = None, np.zeros(len(val), dtype=bool)
    if params.sentence_weight > 0:  # the scope rule compares sentence embeddings
        rule, scope, outside = fit_scope(train["question"], val["question"], served_rows["question"])
        setattr(served, REFERENCE_ATTRIBUTE, stored(rule.reference))
    sha = save_model(served, model_path)
    labels = [int(c) for c in served.classes_]
    oof = oof_proba(served)
    card = build_card(
        model_sha256=sha, dataset=asdict(split.dataset),
        split={"seed": split.seed, "val_size": split.val_size, "train_rows": len(train), "val_rows": len(val),
               "train_sha256": split.train_sha256, "val_sha256": split.val_sha256},
        training={"refit_full": refit_full, "rows": "train+validation" if refit_full else "train",
                  "n_rows": len(served_rows), "fit_seconds": round(served_seconds, 2)},
        params=params.to_dict(), params_source=params_source, labels=labels, names=intent_names(labels),
        validation=validation,
        uncertainty=uncertainty.to_dict() | {
            "threshold_chosen_on": "validation split, train-split model",
            "sets_calibrated_on": f"out-of-fold probabilities of the served model's {len(served_rows)} rows",
            "served_out_of_fold": uncertainty_metrics(uncertainty, oof, served.classes_,
                                                      served_rows["intention"].to_numpy()),
            "validation_rates": validation_reason_shares(val["question"], val_proba, outside, uncertainty)},
        encoder=encoder_record(params.sentence_weight), out_of_scope=scope,
    )
    write_json(card, card_path(model_path))
    return served, card
