"""Serving-time probabilities: the numbers the fitted pipeline's ``predict_proba`` gives, for a few questions at
a time (what the API sends: at most 64 short questions or 16 of a batch), without scikit-learn's per-call overhead.
For hundreds of questions at once the pipeline is as quick (its per-call overhead is spread over them).

For one short question, scikit-learn's input checks (array validation and dataframe detection on every step),
the feature union's job dispatch and the sparse matrices it builds and joins cost more than the TF-IDF features
themselves: about 2 ms of a 7 ms question. ``Predictor`` reads a fitted ``model.build_model`` pipeline (clean ->
feature union -> ``CalibratedLinearSVC``) and adds up each feature block's share of the SVM's scores: a TF-IDF
block from its analyzer, vocabulary and idf weights, straight into the scores (no matrix is built); a dense
block (word vectors, sentence embedding) from its array; any other block from its own ``transform``. Same
probabilities as the pipeline (``tests/test_predictor.py``); training and evaluation keep using the pipeline.
``rank`` turns probabilities into the best intents, best first (the API's ``top_k`` and ``candidates``).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline

from intent_lib.classifier import CalibratedLinearSVC, one_column_per_class
from intent_lib.features import DenseBlock


def _is_plain_tfidf(transformer: Any) -> bool:
    """A TF-IDF block whose transform is counts -> (sublinear) tf -> idf -> l2 norm or none: what ``_TfidfRows``
    computes. Any other setting takes the block's own ``transform``."""
    return (isinstance(transformer, TfidfVectorizer) and not transformer.binary and transformer.norm in ("l2", None)
            and np.dtype(transformer.dtype) == np.float64)


class _TfidfRows:
    """A fitted TF-IDF block's scores, one text at a time: its features' ids and values times the SVM's weights."""

    def __init__(self, vectorizer: TfidfVectorizer) -> None:
        self.analyzer: Callable[[str], list[str]] = vectorizer.build_analyzer()
        self.vocabulary: dict[str, int] = vectorizer.vocabulary_
        self.idf = vectorizer.idf_ if vectorizer.use_idf else None
        self.sublinear = vectorizer.sublinear_tf
        self.l2 = vectorizer.norm == "l2"

    def scores(self, texts: Sequence[str], weights: np.ndarray) -> np.ndarray:
        """Per text, ``features @ weights.T`` with ``weights`` this block's columns of the SVM (classes x features)."""
        out = np.zeros((len(texts), weights.shape[0]))
        for i, text in enumerate(texts):
            counts = Counter(j for j in map(self.vocabulary.get, self.analyzer(text)) if j is not None)
            if not counts:
                continue
            ids = np.fromiter(counts.keys(), dtype=np.intp, count=len(counts))
            values = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
            if self.sublinear:
                values = np.log(values) + 1.0
            if self.idf is not None:
                values *= self.idf[ids]
            if self.l2:
                values /= np.sqrt(values @ values)
            out[i] = weights[:, ids] @ values
        return out


class Predictor:
    """``predict_proba`` of a fitted pipeline, computed block by block (see the module's docstring)."""

    def __init__(self, model: Pipeline) -> None:
        steps = [step for _, step in model.steps]
        if not (len(steps) == 3 and isinstance(steps[1], FeatureUnion) and isinstance(steps[2], CalibratedLinearSVC)
                and steps[1].transformer_weights is None
                and not any(isinstance(t, str) for _, t in steps[1].transformer_list)):  # "drop", "passthrough"
            raise TypeError("Predictor reads model.build_model's pipeline: clean -> feature union -> classifier.")
        self.clean, union, classifier = steps
        self.classes_ = classifier.classes_
        self._classifier: CalibratedLinearSVC = classifier
        coef, self._intercept = classifier.svc_.coef_, classifier.svc_.intercept_
        self._blocks: list[tuple[Any, np.ndarray]] = []
        start = 0
        for _, transformer in union.transformer_list:
            width = len(transformer.get_feature_names_out())
            self._blocks.append((_TfidfRows(transformer) if _is_plain_tfidf(transformer) else transformer,
                                 coef[:, start:start + width]))
            start += width
        if start != coef.shape[1]:
            raise TypeError(f"The feature blocks give {start} features; the classifier was fitted on {coef.shape[1]}.")

    def predict_proba(self, texts: Sequence[object]) -> np.ndarray:
        """Probabilities in ``classes_`` order, as ``model.predict_proba(texts)``."""
        return self.proba_of_cleaned(self.clean_texts(texts))

    def clean_texts(self, texts: Sequence[object]) -> list[str]:
        """The texts as the model's first step cleans them."""
        return list(self.clean.transform(list(texts)))

    def proba_of_cleaned(self, cleaned: Sequence[str]) -> np.ndarray:
        """``predict_proba`` of texts already through ``clean_texts``."""
        scores = np.tile(self._intercept, (len(cleaned), 1))
        for block, weights in self._blocks:
            if isinstance(block, _TfidfRows):
                scores += block.scores(cleaned, weights)
            elif isinstance(block, DenseBlock):
                scores += block.dense(cleaned) @ weights.T
            else:
                scores += np.asarray(block.transform(cleaned) @ weights.T)
        raw = scores[:, 0] if scores.shape[1] == 1 else scores  # a two-intent SVM has one score column
        return self._classifier.proba_from_scores(one_column_per_class(raw))


def rank(proba: np.ndarray, classes: np.ndarray, k: int, members: np.ndarray | None = None
         ) -> list[list[tuple[int, float]]]:
    """Per row of ``proba``, the ``k`` most probable intents (or, given boolean ``members``, all members),
    best first."""
    order = np.argsort(-proba, axis=1, kind="stable")
    if members is None:
        order = order[:, :max(1, min(k, len(classes)))]
        return [[(int(classes[j]), float(row[j])) for j in idx] for row, idx in zip(proba, order)]
    return [[(int(classes[j]), float(row[j])) for j in idx if keep[j]] for row, idx, keep in zip(proba, order, members)]
