"""The metrics that show the model (api/metrics.py, api/live_metrics.py), in one process: each answer counted by
intent and reason, never with its text; the embedding cache; the card's validation shares; the batcher's queue;
the cache's bound as a setting. With one and two worker processes: tests/test_prometheus.py."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest
from litestar.testing import TestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from api.batcher import MicroBatcher
from api.settings import Settings
from intent_lib.encoder import EMBEDDINGS
from tests.test_api import client, model_path  # noqa: F401 - fixtures
from tests.test_api_hardening import GatedService


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """An exposition's samples by name: (labels, value)."""
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def totals(client: TestClient) -> Counter[tuple[str, tuple[tuple[str, str], ...]]]:  # noqa: F811
    """Every sample of /metrics, by name and labels."""
    return Counter({(name, tuple(sorted(labels.items()))): value
                    for name, found in samples(client.get("/metrics").text).items() for labels, value in found})


def test_each_answer_is_counted_by_intent_reason_confidence_candidates_and_length_never_its_text(
        client: TestClient) -> None:  # noqa: F811
    secret = f"zygomatique{uuid.uuid4().hex[:8]}"
    gets = [f"{secret} doliprane enceinte ?", "\u200b", "recette des crêpes", "effets du levothyrox " * 20]
    posted = [f"{secret} posologie", "!!!", "ibuprofène et alcool"]
    before = totals(client)
    answers = [client.get("/intent", params={"query": q}).json() for q in gets]
    answers += client.post("/intent", json={"queries": posted}).json()["predictions"]
    text = client.get("/metrics").text
    after = totals(client)
    delta = lambda name, **labels: after[(name, tuple(sorted(labels.items())))] \
        - before[(name, tuple(sorted(labels.items())))]  # noqa: E731

    assert secret not in text and "crêpes" not in text
    for intent, count in Counter(str(a["intent"]) for a in answers).items():
        assert delta("posos_predicted_intent_total", intent=intent) == count
    reasons = Counter(a["reason"] for a in answers if a["unsure"])
    assert reasons["no_content"] == 2  # the zero-width space and "!!!"
    for reason in ("no_content", "out_of_scope", "low_confidence"):
        assert delta("posos_unsure_total", reason=reason) == reasons[reason]
        flagged = sum(a["reason"] == reason and a["out_of_scope"] for a in answers)
        assert delta("posos_out_of_scope_total", reason=reason) == flagged
    assert delta("posos_answer_confidence_count") == len(answers)
    assert delta("posos_answer_confidence_sum") == pytest.approx(sum(a["confidence"] for a in answers))
    assert delta("posos_answer_candidates_sum") == sum(len(a["candidates"]) for a in answers)
    assert delta("posos_question_chars_sum") == sum(map(len, gets + posted))
    assert delta("posos_question_chars_bucket", le="100.0") == sum(len(q) <= 100 for q in gets + posted)
    assert delta("posos_request_duration_seconds_count", method="POST", route="/intent") == 1
    assert delta("posos_request_duration_seconds_count", method="GET", route="/intent") == len(gets)


def test_a_new_question_is_a_cache_miss_then_a_hit(client: TestClient) -> None:  # noqa: F811
    question = f"question jamais vue {uuid.uuid4().hex}"
    seen = []
    for _ in range(2):
        before = totals(client)
        assert client.get("/intent", params={"query": question}).status_code == 200
        after = totals(client)
        seen.append(tuple(after[(name, ())] - before[(name, ())] for name in
                          ("posos_embedding_cache_misses_total", "posos_embedding_cache_hits_total")))
    assert seen == [(1, 0), (0, 1)]
    assert totals(client)[("posos_embedding_cache_entries", ())] == len(EMBEDDINGS) > 0


def test_the_card_validation_shares_are_gauges_of_the_version_in_service(client: TestClient) -> None:  # noqa: F811
    rates = client.get("/version").json()["uncertainty"]["validation_rates"]
    shares = {labels["flag"]: value for labels, value in samples(client.get("/metrics").text)
              ["posos_model_validation_share"]}
    assert shares == pytest.approx({"unsure": rates["unsure"],
                                    "out_of_scope": rates["out_of_scope"] + rates["no_content"]})


def test_the_queue_gauge_counts_the_questions_waiting_for_the_model() -> None:
    """While a batch's first chunk (2 of 6 questions) holds the model, its 4 others and 3 single questions wait."""
    service = GatedService()
    queued = lambda: REGISTRY.get_sample_value("posos_batcher_queued_questions")  # noqa: E731
    seen = []

    async def run() -> None:
        batcher = MicroBatcher(service, chunk_questions=2)  # type: ignore[arg-type]
        batcher.start()
        service.gate.clear()
        tasks = [asyncio.ensure_future(batcher.predict_many([f"lot {i}" for i in range(6)], 1))]
        while not service.entered.is_set():
            await asyncio.sleep(0.001)
        tasks += [asyncio.ensure_future(batcher.predict(f"question {i}", 1)) for i in range(3)]
        await asyncio.sleep(0.01)
        seen.append(queued())
        service.gate.set()
        await asyncio.gather(*tasks)
        seen.append(queued())
        await batcher.stop()

    asyncio.run(run())
    assert seen == [4 + 3, 0]


@pytest.mark.parametrize(("value", "entries"), [("", None), ("250", 250), ("0", 0)])
def test_the_embedding_cache_bound_is_a_setting(monkeypatch: pytest.MonkeyPatch, value: str,
                                                entries: int | None) -> None:
    monkeypatch.setenv("EMBEDDING_CACHE_ENTRIES", value)
    assert Settings.from_env().embedding_cache_entries == entries


def test_a_negative_embedding_cache_bound_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDDING_CACHE_ENTRIES", "-1")
    with pytest.raises(ValueError, match="EMBEDDING_CACHE_ENTRIES"):
        Settings.from_env()
