"""Fast refits: the model's predictions for many configurations or splits of one set of texts, features cached.

``FeatureCache`` cleans the texts once, loads the spaCy vector table once, and keeps the TF-IDF blocks of
recent (TF-IDF settings, training rows) pairs, so a refit that changes only ``C``, the class weighting or the
vector weight refits only the classifier. ``fit_predict`` then fits the same ``CalibratedLinearSVC`` as the
full model (its out-of-fold calibration included, since predictions depend on it): predictions are identical
to ``fit_model``'s. Used by the variability study (refits over split seeds) and by tuning. Tuning trials may ask
for fewer calibration ``folds``, a cheaper recipe that only ranks configurations; its predictions are then not
``fit_model``'s.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import sparse

from intent_lib.features import MeanWordVectors
from intent_lib.metrics import summary_scores
from intent_lib.model import ModelParams, build_model, clean_texts
from intent_lib.split import Split


class FeatureCache:
    """The model's feature matrix for a fixed list of texts, refitted cheaply for many configurations.

    ``matrix(params, fit_rows)`` is what the model's feature union would give for every text after
    fitting on ``texts[fit_rows]``: TF-IDF blocks fitted on those rows only (kept for the last
    ``max_entries`` settings), the word-vector block from one loaded vector table.
    """

    def __init__(self, texts: Sequence[object], max_entries: int = 6) -> None:
        self.texts = clean_texts(texts)
        self.max_entries = max_entries
        self._blocks: OrderedDict[tuple, sparse.csr_matrix] = OrderedDict()
        self._vectorizers: dict[str, MeanWordVectors] = {}
        self._vectors: OrderedDict[tuple, sparse.csr_matrix] = OrderedDict()
        self.hits = self.misses = 0

    def _remember(self, store: OrderedDict, key: tuple, value: sparse.csr_matrix) -> None:
        store[key] = value
        while len(store) > self.max_entries:
            store.popitem(last=False)

    def _vector_block(self, vectorizer: MeanWordVectors) -> sparse.csr_matrix:
        key = (vectorizer.spacy_model, vectorizer.weight)
        if key not in self._vectors:
            fitted = self._vectorizers.get(vectorizer.spacy_model)
            if fitted is None:  # fitting loads the vector table: once per spaCy model
                fitted = self._vectorizers[vectorizer.spacy_model] = vectorizer.fit(self.texts[:1])
            self._remember(self._vectors, key, fitted.set_params(weight=vectorizer.weight).transform(self.texts))
        return self._vectors[key]

    def matrix(self, params: ModelParams, fit_rows: np.ndarray) -> sparse.csr_matrix:
        """Features of all texts, the fitted parts fitted on ``fit_rows`` only."""
        union = build_model(params).named_steps["features"]
        rows_key = hashlib.sha1(np.asarray(fit_rows, dtype=np.int64).tobytes()).hexdigest()
        blocks = []
        for name, transformer in union.transformer_list:
            if isinstance(transformer, MeanWordVectors):  # needs no fitting on the texts
                blocks.append(self._vector_block(transformer))
                continue
            settings = {k: v for k, v in transformer.get_params().items() if not callable(v)}
            key = (name, repr(sorted(settings.items())), rows_key)
            if key in self._blocks:
                self.hits += 1
                self._blocks.move_to_end(key)
            else:
                self.misses += 1
                transformer.fit([self.texts[i] for i in fit_rows])
                self._remember(self._blocks, key, transformer.transform(self.texts))
            blocks.append(self._blocks[key])
        return sparse.hstack(blocks).tocsr()


def fit_predict(cache: FeatureCache, params: ModelParams, train_rows: np.ndarray, y_train: Sequence[int],
                predict_rows: np.ndarray, random_state: int = 0, subset: np.ndarray | None = None,
                folds: int | None = None) -> np.ndarray:
    """Fit on ``train_rows`` (or the positions ``subset`` of them, features still fitted on all train rows)
    and predict ``predict_rows``: the predictions ``fit_model`` would give, or, with ``folds``, those of a
    classifier calibrated on that many folds instead of the model's."""
    train_rows, y_train = np.asarray(train_rows), np.asarray(y_train)
    features = cache.matrix(params, train_rows)
    if subset is not None:
        train_rows, y_train = train_rows[subset], y_train[subset]
    classifier = build_model(params, random_state).named_steps["classifier"]
    if folds is not None:
        classifier.set_params(cv=folds)
    classifier.fit(features[train_rows], y_train)
    return classifier.predict(features[np.asarray(predict_rows)])


class SplitData:
    """The fixed split as arrays: all texts (train then validation) in one cache, row indices for each side."""

    def __init__(self, split: Split, root: Path) -> None:
        train, val = split.frames(root)
        self.split = split
        self.cache = FeatureCache([*train["question"], *val["question"]])
        self.train_rows = np.arange(len(train))
        self.val_rows = np.arange(len(train), len(train) + len(val))
        self.y_train = train["intention"].to_numpy()
        self.y_val = val["intention"].to_numpy()
        self.labels = np.unique(self.y_train)  # the model's classes, as 02/03 score them

    def predict(self, params: ModelParams, subset: np.ndarray | None = None, random_state: int = 0,
                folds: int | None = None) -> np.ndarray:
        return fit_predict(self.cache, params, self.train_rows, self.y_train, self.val_rows, random_state, subset,
                           folds)

    def scores(self, predicted: np.ndarray) -> dict[str, float]:
        return summary_scores(self.y_val, predicted, labels=self.labels)
