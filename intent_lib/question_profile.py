"""How questions look, and where the test questions differ from the labelled ones (notebook 06_data_quality).

Per question: length, words of no labelled question (for a labelled one: of no other one), language (stop words
of a few languages counted), empty or junk text; ``compare_test`` profiles labelled and test questions alike.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from importlib import import_module
from typing import Sequence

import numpy as np
import pandas as pd

from intent_lib.features import clean_text, fold_text

LANGUAGES = ("fr", "en", "es", "it", "de", "pt")  # spaCy ships stop words for each, no model needed
MIN_LETTERS = 3  # fewer letters than this: junk
MIN_LETTER_SHARE = 0.5  # share of letters among non-space characters below which a text is junk
EXAMPLES = 5
WORDS = re.compile(r"[^\W\d_]+")
_NONSPACE = re.compile(r"\S")


def _stop_words() -> dict[str, frozenset[str]]:
    """Folded stop words of each language in ``LANGUAGES``."""
    return {lang: frozenset(fold_text(w) for w in import_module(f"spacy.lang.{lang}.stop_words").STOP_WORDS)
            for lang in LANGUAGES}


def guess_language(words: Sequence[str], stop_words: dict[str, frozenset[str]]) -> str:
    """The language whose stop words a text uses most (French wins ties); ``unknown`` without any stop word.

    A crude test, but enough to spot a question written in another language: it needs two stop words of that
    language more than of French.
    """
    hits = {lang: sum(w in words_of for w in words) for lang, words_of in stop_words.items()}
    best = max(hits, key=lambda lang: (hits[lang], lang == "fr"))
    if hits[best] == 0:
        return "unknown"
    return best if best == "fr" or hits[best] >= hits["fr"] + 2 else "fr"


def junk_reason(text: str) -> str:
    """Why a text is junk (``empty``, ``no letters``, ``too short``, ``mostly symbols``), or ``""``."""
    text = clean_text(text)
    letters = sum(ch.isalpha() for ch in text)
    if not text:
        return "empty"
    if letters == 0:
        return "no letters"
    if letters < MIN_LETTERS:
        return "too short"
    if letters < MIN_LETTER_SHARE * len(_NONSPACE.findall(text)):
        return "mostly symbols"
    return ""


def text_profile(texts: Sequence[object], vocabulary: set[str]) -> pd.DataFrame:
    """Per text: characters, words, words never seen in ``vocabulary`` (count and share), language, junk reason."""
    stop_words = _stop_words()
    rows = []
    for text in texts:
        cleaned = clean_text(text)
        words = WORDS.findall(fold_text(cleaned))
        unseen = sum(w not in vocabulary for w in words)
        rows.append({"question": cleaned, "chars": len(cleaned), "words": len(words), "unseen_words": unseen,
                     "unseen_share": unseen / len(words) if words else 0.0,
                     "language": guess_language(words, stop_words), "junk": junk_reason(cleaned)})
    return pd.DataFrame(rows)


def word_questions(texts: Sequence[object]) -> Counter[str]:
    """How many of ``texts`` hold each folded word."""
    return Counter(w for t in texts for w in set(WORDS.findall(fold_text(clean_text(t)))))


# The two vocabulary flags of the test profile (their examples are chosen so the lists do not repeat).
SOME_UNSEEN = "at least one unseen word"
MOSTLY_UNSEEN = "half or more of its words unseen"


@dataclass
class TestComparison:
    """Labelled and test questions profiled alike, and the flags that say where they differ."""

    labelled: pd.DataFrame  # text_profile of the labelled questions, unseen words: those of no other labelled one
    test: pd.DataFrame  # text_profile of the test questions against the labelled vocabulary
    long_words: int  # the labelled questions' 99th percentile of words

    def flags(self, profile: pd.DataFrame) -> dict[str, pd.Series]:
        """Boolean masks over ``profile``: what makes a question unlike the labelled ones."""
        return {
            f"longer than {self.long_words} words (labelled 99th percentile)": profile["words"] > self.long_words,
            "one word or fewer": profile["words"] <= 1,
            SOME_UNSEEN: profile["unseen_words"] > 0,
            MOSTLY_UNSEEN: (profile["unseen_share"] >= 0.5) & (profile["words"] > 0),
            "another language than French": ~profile["language"].isin(["fr", "unknown"]),
            "empty or junk": profile["junk"] != "",
        }

    def summary(self) -> pd.DataFrame:
        """flag, labelled count and share, test count and share."""
        rows = []
        for (flag, in_labelled), in_test in zip(self.flags(self.labelled).items(), self.flags(self.test).values()):
            rows.append({"flag": flag, "labelled": int(in_labelled.sum()), "labelled_share": float(in_labelled.mean()),
                         "test": int(in_test.sum()), "test_share": float(in_test.mean())})
        return pd.DataFrame(rows)

    def examples(self, n: int = EXAMPLES) -> dict[str, list[str]]:
        """Up to ``n`` test questions per flag: most unseen words first for the vocabulary flags (the "at least
        one" list leaves out the questions of the "half or more" one), else longest first."""
        flags = self.flags(self.test)
        out = {}
        for flag, mask in flags.items():
            shown = mask & ~flags[MOSTLY_UNSEEN] if flag == SOME_UNSEEN else mask
            key = "unseen_share" if flag in (SOME_UNSEEN, MOSTLY_UNSEEN) else "words"
            out[flag] = self.test[shown].sort_values(key, ascending=False, kind="stable")["question"].head(n).tolist()
        return out

    def lengths(self) -> pd.DataFrame:
        """Long table for a histogram: set (labelled or test), words."""
        return pd.concat([self.labelled[["words"]].assign(set="labelled"), self.test[["words"]].assign(set="test")],
                         ignore_index=True)


def compare_test(labelled: Sequence[object], test: Sequence[object]) -> TestComparison:
    """Profile both sets. A test question's unseen words are those of no labelled question; a labelled
    question's, those of no other labelled question (what a model trained without it would not know)."""
    counts = word_questions(labelled)
    labelled_profile = text_profile(labelled, {w for w, n in counts.items() if n > 1})
    seen = set(counts)
    long_words = int(np.percentile(labelled_profile["words"], 99)) if len(labelled_profile) else 0
    return TestComparison(labelled_profile, text_profile(test, seen), long_words)
