"""Prometheus metrics at ``/metrics``: requests by method, route and status, latency, model-call sizes, model time
per request; what the model answers (intents, unsure and out-of-scope answers by reason, confidence, candidate-set
size, question length: never any text); the micro-batcher's queue and the embedding cache.

Under the supervisor (``python -m api.serve``), ``PROMETHEUS_MULTIPROC_DIR`` makes every worker write its
samples there and ``/metrics`` report the sum over workers (a dead worker's live gauges are removed by the
supervisor). What must name only what is live (the version in service and its card's validation rates, the
processes) is collected at scrape time: api/live_metrics.py. deploy/prometheus/alerts.yml alerts on them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram,
                               generate_latest, multiprocess)
from prometheus_client.registry import Collector

from api.answers import Prediction
from api.settings import MAX_BATCH, MAX_QUERY_CHARS, MAX_TOP_K
from intent_lib.encoder import EMBEDDINGS

REQUESTS = Counter("posos_requests_total", "HTTP requests answered, by method, route and status",
                   ["method", "route", "status"])
LATENCY = Histogram("posos_request_duration_seconds", "Time to answer a request, by method and route",
                    ["method", "route"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
MODEL_CALL_SIZE = Histogram("posos_model_call_questions", "Questions per call of the model (micro-batches "
                            "and batch chunks)", buckets=(1, 2, 4, 8, 16, 32, 64, 128, MAX_BATCH))
# Model time per request: the model calls a request was part of (its micro-batch, or all its batch's chunks).
MODEL_TIME = Histogram("posos_request_model_seconds", "Model time per request (its model calls, summed)",
                       buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
# What the model answers, one observation per question answered (a question of a batch whose client left counts
# once its chunk was predicted). Labels are intent ids and reasons (intent_lib.reasons), never text.
PREDICTED = Counter("posos_predicted_intent_total", "Questions answered, by predicted (top) intent", ["intent"])
UNSURE = Counter("posos_unsure_total", "Answers flagged unsure, by reason", ["reason"])
OUT_OF_SCOPE = Counter("posos_out_of_scope_total", "Answers flagged out of scope, by reason (out_of_scope, "
                       "no_content)", ["reason"])
CONFIDENCE = Histogram("posos_answer_confidence", "Confidence (top-1 probability) of each answer",
                       buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1))
CANDIDATES = Histogram("posos_answer_candidates", "Intents in each answer's candidate set (conformal set)",
                       buckets=(0, 1, 2, 3, 4, 5, 8, 13, 21, MAX_TOP_K))
QUESTION_CHARS = Histogram("posos_question_chars", "Length of each question answered, in characters",
                           buckets=(10, 25, 50, 100, 200, 500, 1_000, 2_000, MAX_QUERY_CHARS))
QUEUED = Gauge("posos_batcher_queued_questions", "Questions waiting for the model: single questions and the "
               "unpredicted questions of batches (summed over live workers)", multiprocess_mode="livesum")
CACHE_ENTRIES = Gauge("posos_embedding_cache_entries", "Sentence embeddings held in a worker's memory "
                      "(EMBEDDING_CACHE_ENTRIES bounds it)", multiprocess_mode="liveall")
CACHE_HITS = Counter("posos_embedding_cache_hits_total", "Questions answered whose sentence embedding was cached")
CACHE_MISSES = Counter("posos_embedding_cache_misses_total", "Questions whose sentence embedding was encoded")
CONTENT_TYPE = CONTENT_TYPE_LATEST


def observe_request(record: dict[str, Any]) -> None:
    """Count one answered request (the access-log fields)."""
    route = record["route"] if not record["route"].startswith("unmatched") else "unmatched"
    REQUESTS.labels(record["method"], route, str(record["status"])).inc()
    LATENCY.labels(record["method"], route).observe(record["duration_ms"] / 1000)


def observe_model_call(size: int) -> None:
    MODEL_CALL_SIZE.observe(size)


def observe_model_time(seconds: float) -> None:
    MODEL_TIME.observe(seconds)


def observe_queue(questions: int) -> None:
    QUEUED.set(questions)


def cache_encoded() -> int:
    """Texts the embedding cache has encoded so far: read before a model call, for ``observe_answers``."""
    return EMBEDDINGS.encoded


def observe_answers(predictions: Sequence[Prediction], encoded_before: int) -> None:
    """Count one model call's answers: intents, flags by reason, confidence, candidates, length; and its cache
    misses (texts encoded since ``encoded_before``; a question asked twice in one call is encoded once) and hits.
    Exact unless two versions predict at once (a reload's switch), when each call also counts the other's."""
    for answer in predictions:
        PREDICTED.labels(str(answer.intent)).inc()
        if answer.reason is not None:
            UNSURE.labels(answer.reason).inc()
            if answer.out_of_scope:
                OUT_OF_SCOPE.labels(answer.reason).inc()
        CONFIDENCE.observe(answer.confidence)
        CANDIDATES.observe(len(answer.candidates))
        QUESTION_CHARS.observe(len(answer.query))
    if EMBEDDINGS.encoded == 0:  # a model without sentence encoder (one with it encoded its warm-up question)
        return
    encoded = EMBEDDINGS.encoded - encoded_before
    CACHE_MISSES.inc(encoded)
    CACHE_HITS.inc(max(len(predictions) - encoded, 0))
    CACHE_ENTRIES.set(len(EMBEDDINGS))


def exposition(*live: Collector) -> bytes:
    """The text exposition: this process's registry, or all workers' when running multiprocess, then ``live``."""
    shared = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        shared = CollectorRegistry()
        multiprocess.MultiProcessCollector(shared)
    scraped = CollectorRegistry(auto_describe=False)
    for collector in live:
        scraped.register(collector)
    return generate_latest(shared) + generate_latest(scraped)
