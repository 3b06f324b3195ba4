"""What the API answers per question, and how an answer is built from the model's probabilities.

``Prediction`` is the answer of both endpoints; ``answers`` turns one model call's probabilities, the card's
thresholds and the content check into them. Whatever the flags say, the answer keeps the top intent (a
submission file holds one intent per row); ``reason`` says why it is ``unsure`` (``intent_lib.reasons``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated

import msgspec
import numpy as np

from intent_lib.predictor import rank
from intent_lib.reasons import NO_CONTENT, OUT_OF_SCOPE, REASONS, Reason, has_content, reason
from intent_lib.uncertainty import Uncertainty


class Scored(msgspec.Struct):
    intent: int
    name: str
    score: float


class Prediction(msgspec.Struct):
    query: str
    intent: int
    name: str
    confidence: float
    unsure: Annotated[bool, msgspec.Meta(
        description="Do not trust the intent: `reason` says why.")]
    top_k: list[Scored]
    candidates: Annotated[list[Scored], msgspec.Meta(
        description="The conformal prediction set: holds the true intent with probability >= 1 - alpha (the "
                    "card's). Empty when the question has no content.")]
    probability: Annotated[str, msgspec.Meta(
        pattern=r"^[01]\.[0-9]{8}$",
        description="`confidence` again, as a decimal string with 8 decimals (\"0.73356545\"), as the Posos "
                    "spec's answers show it: clients written for that spec read it unchanged.")]
    reason: Annotated[Reason | None, msgspec.Meta(
        description=f"Why the answer is unsure, the strongest that applies: one of {', '.join(REASONS)}; null "
                    "when it is not unsure. no_content: the question holds no letter or digit once cleaned; "
                    "out_of_scope: see `out_of_scope`; low_confidence: the confidence is below the threshold "
                    "chosen on validation for the target accuracy.")]
    out_of_scope: Annotated[bool, msgspec.Meta(
        description="The question is unlike the questions the model was trained on (mean cosine of its sentence "
                    "embedding to its nearest labelled questions below the card's `out_of_scope` threshold), or "
                    "has no content: its intent is a guess.")]


def answers(queries: Sequence[str], cleaned: Sequence[str], proba: np.ndarray, outside: Sequence[bool],
            classes: np.ndarray, k: int, uncertainty: Uncertainty, name: Callable[[int], str]) -> list[Prediction]:
    """One ``Prediction`` per question of a model call (``cleaned``: the texts the model saw; ``outside``: the
    scope rule's flags)."""
    def scored(pairs: list[tuple[int, float]]) -> list[Scored]:
        return [Scored(intent=i, name=name(i), score=p) for i, p in pairs]

    sets = rank(proba, classes, k, members=uncertainty.sets(proba))
    out = []
    for query, text, flagged, pairs, candidates in zip(queries, cleaned, outside, rank(proba, classes, k), sets):
        top = scored(pairs)
        content = has_content(text)
        why = reason(content=content, out_of_scope=bool(flagged),
                     low_confidence=bool(uncertainty.unsure(top[0].score)))
        out.append(Prediction(query=query, intent=top[0].intent, name=top[0].name, confidence=top[0].score,
                              unsure=why is not None, top_k=top, candidates=scored(candidates) if content else [],
                              probability=f"{top[0].score:.8f}", reason=why,
                              out_of_scope=why in (NO_CONTENT, OUT_OF_SCOPE)))
    return out
