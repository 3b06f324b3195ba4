"""Text features: normalisation of messy user text, spaCy tokens, averaged spaCy word vectors and
sentence embeddings.

The word vectors are copied out of ``fr_core_news_md`` when fitting, so a fitted model carries them
and needs only spaCy's blank French tokenizer (no installed spaCy model) to predict.

The sentence embeddings come from ``intent_lib.encoder`` (the Universal Sentence Encoder multilingual and its
cache), which is not pickled: the model needs the encoder's package, at the version its card records.
"""

from __future__ import annotations

import html
import re
import unicodedata
from typing import Any, Iterable, Sequence

import numpy as np
import spacy
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin

from intent_lib.encoder import EMBEDDING_DIM, EMBEDDINGS, encoder_version, sentence_encoder

MAX_CHARS = 5_000  # longer texts are cut: they carry no more intent, and they cost time
# A run without spaces (emoji, punctuation, unspaced letters, mixed scripts) is cut to this many characters: spaCy's
# tokenizer is quadratic in a run's length (5,000 emoji took 20 s) and the sentence encoder slow on such runs. No
# real question has a longer run, so their features are unchanged (bench/check_bounded_features.py).
MAX_RUN = 64
# Words a tokenizer's vocabulary holds before it starts afresh (SpacyTokenizer): ~20 MB, five times the
# vocabulary of the labelled and test questions.
MAX_LEXEMES = 50_000
_TAGS = re.compile(r"<[^>]{0,200}>")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"\s+")
_LONG_RUN = re.compile(rf"\S{{{MAX_RUN + 1},}}")


def clean_text(text: object) -> str:
    """Sane text from anything a user may send: HTML unescaped and tags dropped, control chars removed, runs
    without spaces bounded (``bound_runs``), cut."""
    if not isinstance(text, str):
        text = "" if text is None or (isinstance(text, float) and np.isnan(text)) else str(text)
    text = _TAGS.sub(" ", html.unescape(text[: MAX_CHARS * 2]))
    text = unicodedata.normalize("NFC", _CONTROL.sub(" ", text))
    return bound_runs(_SPACES.sub(" ", text).strip())[:MAX_CHARS]


def bound_runs(text: str) -> str:
    """``text`` with every run of more than ``MAX_RUN`` characters without spaces cut to its first ``MAX_RUN``."""
    return _LONG_RUN.sub(lambda run: run.group()[:MAX_RUN], text)


def fold_text(text: str) -> str:
    """Lower-cased text without accents: the form TF-IDF features see."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


class SpacyTokenizer:
    """A picklable callable giving spaCy's French tokens of an already folded text.

    Every new word adds a lexeme to the tokenizer's vocabulary (~400 bytes), so a server meeting an endless
    stream of new words would grow without end: past ``MAX_LEXEMES`` the tokenizer starts afresh (a blank
    French pipeline, ~0.1 s), which changes no token. spaCy's ``memory_zone`` also bounds it, but skips the
    tokenizer's cache: tokenizing alone was 5-15x slower.
    """

    def __init__(self) -> None:
        self._nlp = spacy.blank("fr")

    def __call__(self, text: str) -> list[str]:
        return [tok.text for tok in self._tokenizer()(text) if not tok.is_space]

    def pipe(self, texts: Iterable[str]) -> Iterable[spacy.tokens.Doc]:
        return self._tokenizer().pipe(texts)

    def _tokenizer(self) -> Any:
        if len(self._nlp.vocab) > MAX_LEXEMES:  # a Doc keeps the vocabulary it was made with alive
            self._nlp = spacy.blank("fr")
        return self._nlp.tokenizer

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()


class DenseBlock(TransformerMixin, BaseEstimator):
    """A feature block computed as a dense array: subclasses implement ``dense`` (the serving ``Predictor`` calls
    it); ``transform`` gives it as the sparse matrix the feature union joins to the TF-IDF blocks."""

    def dense(self, X: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def transform(self, X: Sequence[str]) -> sparse.csr_matrix:
        return sparse.csr_matrix(self.dense(X))


class MeanWordVectors(DenseBlock):
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

    def dense(self, X: Sequence[str]) -> np.ndarray:
        index = self._lookup()
        out = np.zeros((len(X), self.n_features_out_), dtype=np.float32)
        for i, doc in enumerate(self.tokenizer_.pipe(X)):
            rows = [index[key] for key in (tok.lower for tok in doc) if key in index]
            if rows:
                mean = self.table_[rows].astype(np.float32).mean(axis=0)
                norm = float(np.linalg.norm(mean))
                if norm > 0:
                    out[i] = mean * (self.weight / norm)
        return out

    def __getstate__(self) -> dict:
        """The state without the lookup dict (rebuilt on first use; keeps the pickle small). Dropped, not set to
        None: an unfitted block sent to a joblib worker would then list ``_index`` before the attributes its fit
        adds there, and its pickle would differ from an in-process fit's."""
        state = self.__dict__.copy()
        state.pop("_index", None)
        return state

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.array([f"vector{i}" for i in range(self.n_features_out_)], dtype=object)


class SentenceEmbedding(DenseBlock):
    """The sentence encoder's 512-d L2-normalised embedding of a text, times ``weight``.

    Nothing is learned from the texts: ``fit`` records the encoder's version and checks it is installed.
    """

    def __init__(self, weight: float = 0.7) -> None:
        self.weight = weight

    def fit(self, X: Sequence[str], y: object = None) -> "SentenceEmbedding":
        sentence_encoder()  # fails now, not at the first prediction, when the package is missing
        self.encoder_version_ = encoder_version()
        self.n_features_out_ = EMBEDDING_DIM
        return self

    def dense(self, X: Sequence[str]) -> np.ndarray:
        return EMBEDDINGS.embed(list(X)) * np.float32(self.weight)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.array([f"sentence{i}" for i in range(self.n_features_out_)], dtype=object)
