"""Prometheus metrics at ``/metrics``: requests by route and status, latency, model-call sizes, model time per
request, model version.

Under the supervisor (``python -m api.serve``), ``PROMETHEUS_MULTIPROC_DIR`` makes every worker write its
samples there and ``/metrics`` report the sum over workers (a dead worker's live gauges are removed by the
supervisor). What must name only what is live (the version in service, the processes) is collected at scrape
time: api/live_metrics.py.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram,
                               generate_latest, multiprocess)
from prometheus_client.registry import Collector

from api.settings import MAX_BATCH

REQUESTS = Counter("posos_requests_total", "HTTP requests answered, by method, route and status",
                   ["method", "route", "status"])
LATENCY = Histogram("posos_request_duration_seconds", "Time to answer a request, by route", ["route"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
MODEL_CALL_SIZE = Histogram("posos_model_call_questions", "Questions per call of the model (micro-batches "
                            "and batch chunks)", buckets=(1, 2, 4, 8, 16, 32, 64, 128, MAX_BATCH))
# Model time per request: the model calls a request was part of (its micro-batch, or all its batch's chunks).
MODEL_TIME = Histogram("posos_request_model_seconds", "Model time per request (its model calls, summed)",
                       buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
CONTENT_TYPE = CONTENT_TYPE_LATEST


def observe_request(record: dict[str, Any]) -> None:
    """Count one answered request (the access-log fields)."""
    route = record["route"] if not record["route"].startswith("unmatched") else "unmatched"
    REQUESTS.labels(record["method"], route, str(record["status"])).inc()
    LATENCY.labels(route).observe(record["duration_ms"] / 1000)


def observe_model_call(size: int) -> None:
    MODEL_CALL_SIZE.observe(size)


def observe_model_time(seconds: float) -> None:
    MODEL_TIME.observe(seconds)


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
