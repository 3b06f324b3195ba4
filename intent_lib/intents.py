"""Human-readable names of the 51 intents: the project's own annotation, read from examples of each intent."""

from __future__ import annotations

import csv
from functools import lru_cache
from importlib import resources

NAMES_FILE = resources.files("intent_lib") / "resources" / "intent_names.csv"


@lru_cache(maxsize=1)
def intent_table() -> dict[int, tuple[str, str]]:
    """intent id -> (French name, English gloss)."""
    with NAMES_FILE.open(encoding="utf-8", newline="") as fh:
        return {int(row["intent"]): (row["name_fr"], row["name_en"]) for row in csv.DictReader(fh)}


def intent_name(intent: int, lang: str = "fr") -> str:
    """The name of an intent in French (``fr``) or English (``en``); ``intent <id>`` when unknown."""
    names = intent_table().get(int(intent))
    if names is None:
        return f"intent {intent}"
    return names[0] if lang == "fr" else names[1]


def intent_names(intents: list[int] | None = None, lang: str = "fr") -> dict[int, str]:
    """Names of the given intents (default: all known), keyed by id."""
    return {int(i): intent_name(i, lang) for i in (intents if intents is not None else intent_table())}


def intent_label(intent: int, names: dict[int, str]) -> str:
    """``"28 · Effets indésirables"``: how charts and tables name an intent."""
    return f"{intent} · {names.get(int(intent), '')}"
