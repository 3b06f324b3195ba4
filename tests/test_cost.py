"""Bounded cost per question: a 5,000-character run without spaces (emoji, punctuation, symbols, unspaced letters,
mixed scripts) costs no more than three times an ordinary 5,000-character French question, in the model and
through the API. Each figure is the best of a few runs of texts never seen before (the embedding cache would
hide the encoder's cost), so a busy machine slows both sides of a ratio alike."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from litestar.testing import TestClient

from api.app import create_app
from api.settings import MAX_QUERY_CHARS
from intent_lib.artefacts import load_checked
from intent_lib.features import MAX_RUN, clean_text
from intent_lib.predictor import Predictor

RATIO = 3.0
REPEATS = 3
ORDINARY = "quels sont les effets indésirables du doliprane pendant la grossesse ? "
_FRESH = itertools.count()  # variant numbers: every timed text is new to the embedding cache
FLOODS = {"emoji": "💊", "punctuation": "!", "symbols": "§±∞", "letters": "a", "mixed scripts": "aé!💊ж中ع"}


def flood(unit: str, variant: object) -> str:
    """A 5,000-character run without spaces, made unique by its first characters."""
    return (f"{variant}{unit * MAX_QUERY_CHARS}")[:MAX_QUERY_CHARS]


def ordinary(variant: object) -> str:
    return (f"{variant} {ORDINARY * (MAX_QUERY_CHARS // len(ORDINARY) + 1)}")[:MAX_QUERY_CHARS]


def best_seconds(run: Callable[[int], object]) -> float:
    """The shortest of ``REPEATS`` timings of ``run(variant)``, each on a variant never run before."""
    timings = []
    for variant in itertools.islice(_FRESH, REPEATS):
        start = time.perf_counter()
        run(variant)
        timings.append(time.perf_counter() - start)
    return min(timings)


@pytest.fixture(scope="module")
def predictor(trained_model_dir: Path) -> Predictor:
    model, _ = load_checked(trained_model_dir / "models" / "intent_model.pkl")
    predictor = Predictor(model)
    predictor.predict_proba(["warm-up"])
    return predictor


@pytest.fixture(scope="module")
def client(trained_model_dir: Path):
    with TestClient(create_app(trained_model_dir / "models" / "intent_model.pkl")) as test_client:
        yield test_client


def test_cleaning_bounds_runs_without_spaces_and_keeps_ordinary_text() -> None:
    assert clean_text("💊" * 5_000) == "💊" * MAX_RUN
    assert clean_text(f"doliprane {'!' * 300} enfant {'a' * (MAX_RUN + 1)}") == \
        f"doliprane {'!' * MAX_RUN} enfant {'a' * MAX_RUN}"
    assert clean_text(ordinary(0)) == ordinary(0).strip()
    assert clean_text("x" * MAX_RUN) == "x" * MAX_RUN


@pytest.mark.parametrize("unit", FLOODS.values(), ids=FLOODS.keys())
def test_a_flood_costs_the_model_at_most_three_ordinary_questions(predictor: Predictor, unit: str) -> None:
    baseline = best_seconds(lambda i: predictor.predict_proba([ordinary(i)]))
    cost = best_seconds(lambda i: predictor.predict_proba([flood(unit, i)]))
    assert cost <= RATIO * baseline, f"{cost:.3f} s against {baseline:.3f} s for ordinary text"


@pytest.mark.parametrize("unit", [FLOODS["emoji"], FLOODS["punctuation"], FLOODS["letters"]],
                         ids=["emoji", "punctuation", "letters"])
def test_a_flood_by_get_and_in_a_post_costs_at_most_three_ordinary_questions(client: TestClient, unit: str) -> None:
    def get(text: str) -> None:
        assert client.get("/intent", params={"query": text}).status_code == 200

    def post(texts: list[str]) -> None:
        assert client.post("/intent", json={"queries": texts}).status_code == 200

    baseline = best_seconds(lambda i: get(ordinary(i)))
    assert best_seconds(lambda i: get(flood(unit, i))) <= RATIO * baseline
    batch = 4
    baseline = best_seconds(lambda i: post([ordinary(f"{i}.{j}") for j in range(batch)]))
    assert best_seconds(lambda i: post([flood(unit, f"{i}.{j}") for j in range(batch)])) \
        <= RATIO * baseline
