"""Out of scope: is a question like the questions the model was trained on?

A question's **scope score** is the mean cosine between its sentence embedding (the model's encoder, unit
length) and its ``k`` nearest labelled questions. Below the card's threshold the answer is flagged
``out_of_scope`` ("quelle heure est-il ?", "recette des crêpes", keyboard noise).

The threshold is fitted on real questions only. The served model's reference is every labelled question, so
a labelled question's nearest neighbour is itself: each is instead scored **out of fold**, against the rows of
the other folds, and the threshold is the ``flagged_share`` quantile of those scores (at most that share of
real questions flagged). The reference embeddings ride in the pickle (``REFERENCE_ATTRIBUTE`` of the pipeline,
float16); ``k`` and the threshold are in the card (``card["out_of_scope"]``), which serving reads, as it reads
the unsure threshold. The project's own out-of-scope set (``paths.OUT_OF_SCOPE_SET``) only reports what is
caught: it never chooses the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any, Sequence

import numpy as np
import pandas as pd

from intent_lib.artefacts import RETRAIN, ModelIntegrityError
from intent_lib.features import SentenceEmbedding
from intent_lib.model import clean_texts
from intent_lib.paths import OUT_OF_SCOPE_SET

DEFAULT_K = 10
DEFAULT_FLAGGED_SHARE = 0.03  # of real questions, out of fold
DEFAULT_FOLDS = 10
REFERENCE_ATTRIBUTE = "scope_reference_"  # on the served pipeline: its labelled questions' embeddings
_CHUNK_ROWS = 1_024  # query rows per similarity product: bounds the (rows x reference) matrix


def embed(cleaned: Sequence[str]) -> np.ndarray:
    """Unit sentence embeddings of cleaned texts, as the model's sentence block computes them (its cache too)."""
    return SentenceEmbedding(weight=1.0).dense(list(cleaned))


def neighbour_scores(queries: np.ndarray, reference: np.ndarray, k: int) -> np.ndarray:
    """Per query row, the mean cosine to its ``k`` most similar reference rows (rows of unit length)."""
    k = min(k, len(reference))
    out = np.empty(len(queries), dtype=np.float64)
    for start in range(0, len(queries), _CHUNK_ROWS):
        similarity = queries[start:start + _CHUNK_ROWS] @ reference.T
        out[start:start + _CHUNK_ROWS] = np.partition(similarity, -k, axis=1)[:, -k:].mean(axis=1)
    return out


def out_of_fold_scores(embeddings: np.ndarray, k: int = DEFAULT_K, folds: int = DEFAULT_FOLDS,
                       seed: int = 0) -> np.ndarray:
    """Each row's scope score against the rows of the other ``folds - 1`` folds (random folds of ``seed``)."""
    fold = np.random.default_rng(seed).permutation(len(embeddings)) % folds
    scores = np.empty(len(embeddings), dtype=np.float64)
    for f in range(folds):
        held = fold == f
        scores[held] = neighbour_scores(embeddings[held], embeddings[~held], k)
    return scores


@dataclass(frozen=True)
class ScopeRule:
    """The reference embeddings, ``k`` and the threshold below which a question is out of scope."""

    reference: np.ndarray  # (questions, dim) float32, unit rows
    k: int
    threshold: float

    @classmethod
    def fit(cls, embeddings: np.ndarray, k: int = DEFAULT_K, flagged_share: float = DEFAULT_FLAGGED_SHARE,
            folds: int = DEFAULT_FOLDS, seed: int = 0) -> tuple["ScopeRule", np.ndarray]:
        """The rule over ``embeddings`` (as stored: float16) and the out-of-fold scores its threshold came from."""
        reference = stored(embeddings).astype(np.float32)
        scores = out_of_fold_scores(reference, k, folds, seed)
        threshold = np.quantile(scores, flagged_share, method="lower")  # a score: fewer than that share below it
        return cls(reference, k, float(threshold)), scores

    @classmethod
    def from_card(cls, values: dict[str, Any], reference: np.ndarray) -> "ScopeRule":
        """The served rule: ``k`` and the threshold from the card, the reference from the pickle."""
        return cls(np.asarray(reference, dtype=np.float32), int(values["k"]), float(values["threshold"]))

    def score(self, embeddings: np.ndarray) -> np.ndarray:
        return neighbour_scores(np.atleast_2d(embeddings).astype(np.float32), self.reference, self.k)

    def flag(self, embeddings: np.ndarray) -> np.ndarray:
        """Whether each row is out of scope."""
        return self.score(embeddings) < self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {"k": self.k, "threshold": self.threshold, "reference_rows": len(self.reference)}


def stored(embeddings: np.ndarray) -> np.ndarray:
    """The embeddings as the pickle keeps them (float16: half the size, scores within ~1e-3)."""
    return np.asarray(embeddings, dtype=np.float16)


def fit_scope(train_texts: Sequence[str], val_texts: Sequence[str], served_texts: Sequence[str],
              k: int = DEFAULT_K, flagged_share: float = DEFAULT_FLAGGED_SHARE, folds: int = DEFAULT_FOLDS,
              seed: int = 0) -> tuple[ScopeRule, dict[str, Any], np.ndarray]:
    """The served rule (over ``served_texts``), its card entry (the rule's settings, the share of served
    questions flagged out of fold, the share of validation questions flagged by the same recipe fitted on the
    train rows only) and those validation flags."""
    def fitted(texts: Sequence[str]) -> tuple[ScopeRule, np.ndarray]:
        return ScopeRule.fit(embed(clean_texts(texts)), k, flagged_share, folds, seed)

    train_rule, _ = fitted(train_texts)
    validation_flags = train_rule.flag(embed(clean_texts(val_texts))) if len(val_texts) else np.zeros(0, bool)
    validation_rate = float(validation_flags.mean()) if len(val_texts) else None
    rule, scores = fitted(served_texts)
    return rule, rule.to_dict() | {
        "flagged_share": flagged_share, "folds": folds, "seed": seed,
        "oof_rate": float((scores < rule.threshold).mean()), "validation_rate": validation_rate,
        "threshold_chosen_on": f"out-of-fold scores of the served model's {len(served_texts)} labelled questions",
        "validation_rate_from": "the same recipe fitted on the train split, scored on the validation split"}, \
        validation_flags


def own_out_of_scope_set() -> pd.DataFrame:
    """The project's own out-of-scope questions: columns ``kind``, ``question``."""
    with (resources.files("intent_lib") / "resources" / OUT_OF_SCOPE_SET).open(encoding="utf-8") as fh:
        return pd.read_csv(fh, dtype=str, keep_default_na=False)


def served_rule(model: Any, card: dict[str, Any]) -> ScopeRule | None:
    """The rule a loaded model serves: None when its card records none (a model without sentence encoder);
    ``ModelIntegrityError`` when the card records one the pickle does not carry."""
    values = card.get("out_of_scope")
    if not values:
        return None
    reference = getattr(model, REFERENCE_ATTRIBUTE, None)
    if reference is None or np.ndim(reference) != 2 or len(reference) != values.get("reference_rows"):
        raise ModelIntegrityError(f"The model's card records an out-of-scope rule its pickle does not carry: {RETRAIN}.")
    return ScopeRule.from_card(values, reference)
