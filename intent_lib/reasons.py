"""Why an answer is not to be trusted: the ``reason`` values the API gives, and the rule that picks one.

An answer carries at most one reason, the strongest that applies: ``no_content`` (the cleaned question holds no
letter or digit, Unicode categories L and N: nothing in it is a question), then ``out_of_scope`` (unlike every
question the model was trained on, ``intent_lib.scope``), then ``low_confidence`` (top-1 probability below the
card's unsure threshold, ``intent_lib.uncertainty``). Any reason makes the answer ``unsure``. Counters and
dashboards import these names from here.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Literal, get_args

Reason = Literal["no_content", "out_of_scope", "low_confidence"]  # strongest first
REASONS: tuple[str, ...] = get_args(Reason)
NO_CONTENT, OUT_OF_SCOPE, LOW_CONFIDENCE = REASONS


def has_content(cleaned: str) -> bool:
    """Whether a cleaned text holds a letter or a digit (Unicode categories L* and N*)."""
    return any(unicodedata.category(ch)[0] in "LN" for ch in cleaned)


def reason(*, content: bool, out_of_scope: bool, low_confidence: bool) -> Reason | None:
    """The strongest reason that applies to an answer, or None when it can be trusted."""
    if not content:
        return NO_CONTENT
    if out_of_scope:
        return OUT_OF_SCOPE
    return LOW_CONFIDENCE if low_confidence else None


def reason_shares(reasons: Sequence[str | None]) -> dict[str, float]:
    """The share of answers given each reason, and of unsure answers (any reason)."""
    n = max(len(reasons), 1)
    return {"unsure": sum(r is not None for r in reasons) / n} | {r: list(reasons).count(r) / n for r in REASONS}


def flag_shares(shares: dict[str, float]) -> dict[str, float]:
    """``reason_shares``' figures as the API flags answers: ``unsure`` (any reason) and ``out_of_scope`` (the
    reasons ``out_of_scope`` and ``no_content``), what the alerts compare served shares with."""
    return {"unsure": shares["unsure"], "out_of_scope": shares[OUT_OF_SCOPE] + shares[NO_CONTENT]}
