"""Prometheus metrics at ``/metrics``: requests by route and status, latency, model-call sizes, model version.

With several uvicorn workers, ``PROMETHEUS_MULTIPROC_DIR`` (set by ``python -m api.serve``) makes every
worker write its samples there and ``/metrics`` report the sum over workers.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram,
                               generate_latest, multiprocess)

from api.settings import MAX_BATCH

REQUESTS = Counter("posos_requests_total", "HTTP requests answered, by method, route and status",
                   ["method", "route", "status"])
LATENCY = Histogram("posos_request_duration_seconds", "Time to answer a request, by route", ["route"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
MODEL_CALL_SIZE = Histogram("posos_model_call_questions", "Questions per call of the model (micro-batches "
                            "and batch chunks)", buckets=(1, 2, 4, 8, 16, 32, 64, 128, MAX_BATCH))
MODEL_INFO = Gauge("posos_model_info", "The served model's version (value 1)", ["version"],
                   multiprocess_mode="max")
CONTENT_TYPE = CONTENT_TYPE_LATEST


def observe_request(record: dict[str, Any]) -> None:
    """Count one answered request (the access-log fields)."""
    route = record["route"] if not record["route"].startswith("unmatched") else "unmatched"
    REQUESTS.labels(record["method"], route, str(record["status"])).inc()
    LATENCY.labels(route).observe(record["duration_ms"] / 1000)


def observe_model_call(size: int) -> None:
    MODEL_CALL_SIZE.observe(size)


def set_model_version(version: str) -> None:
    MODEL_INFO.labels(version).set(1)


def exposition() -> bytes:
    """The text exposition: this process's registry, or all workers' when running multiprocess."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()
