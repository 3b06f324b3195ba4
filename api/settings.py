"""The API's limits and operating settings: every number the server enforces or documents, in one place.

Limits are constants (the OpenAPI document states them); operating settings come from the environment:

    LOG_FORMAT        ``text`` (default) or ``json``: one JSON object per log line
    LOG_QUERIES       ``1`` to log question texts (for debugging only; off by default: they are health data)
    REQUEST_TIMEOUT   seconds a request may wait for the model to start on it before a 503 with Retry-After
                      (default 30; a request the model has started runs to the end)
    MAX_BATCH_REQUESTS  batch requests one worker predicts at once; more answer 429 (default 64)
    HEAD_TIMEOUT      seconds a connection may take to send a complete request head, from its opening or from
                      the head's first byte; then 408 and closed (default 10; an idle connection is just closed)
    BODY_TIMEOUT      seconds a request body may take to arrive whole after its head; then closed (default 60:
                      a full 16 MB body needs at least ~270 KB/s)
    DRAIN_SECONDS     seconds ``/health`` answers 503 after SIGTERM while requests are still served, so a load
                      balancer stops sending (default 5; then GRACEFUL_SHUTDOWN_SECONDS for requests in flight:
                      35 s in all, so a stop timeout of STOP_TIMEOUT_SECONDS: ``docker run --stop-timeout``)
    EMBEDDING_CACHE_ENTRIES  sentence embeddings one worker keeps in memory, the oldest forgotten first (default
                      the cache's own, ``intent_lib.encoder.MEMORY_ENTRIES``: 100,000; what a full cache costs
                      per worker is in docs/api-operations.md). 0 keeps none: every question is encoded
"""

from __future__ import annotations

import os
from dataclasses import dataclass

MAX_QUERY_CHARS = 5_000
MAX_BATCH = 1_000
MAX_TOP_K = 51
DEFAULT_TOP_K = 3
# A full batch of 1,000 queries of 5,000 characters is ~5 MB of plain UTF-8 JSON; escapes can grow it.
MAX_BODY_BYTES = 16_000_000
# All request headers together (names and values), as nginx's default large_client_header_buffers allows.
MAX_HEADER_BYTES = 16_384
# The longest URL a GET question needs: 5,000 characters of 4-byte UTF-8, percent-encoded (12 bytes each),
# with the path and top_k. Longer URLs answer 414 while they are being read (httptools parses at most 64 KiB).
MAX_URL_BYTES = 12 * MAX_QUERY_CHARS + 1_024
# A request head as received (request line, headers and their separators) past this many bytes answers 431 as
# soon as they have arrived, without reading the rest; twice the header limit leaves room for the separators.
MAX_HEAD_BYTES = MAX_URL_BYTES + 2 * MAX_HEADER_BYTES
# Seconds a refused connection's answer is left for the client to read (what else it sends is discarded)
# before the connection is closed: closing with unread data would reset it and lose the answer.
LINGER_SECONDS = 1.0
MAX_REQUEST_ID_CHARS = 128
# Waiting single questions go to the model together, up to this many in one call (grouping multiplies
# throughput under load), and up to SINGLES_CHARS characters (at least one question): the model's cost grows with
# the length, so a long question never shares a call with many short ones.
SINGLES_PER_CALL = 64
SINGLES_CHARS = 5_000
# A batch request goes to the model in chunks of at most this many questions, or as many as fit in CHUNK_CHARS
# characters (at least one): ~30-100 ms of model time with the sentence encoder, so single questions wait at
# most that long behind a big batch (larger chunks save little: the encoder's cost is per question).
CHUNK_QUESTIONS = 16
CHUNK_CHARS = 5_000
# Seconds a client is told to wait (Retry-After) after a 429 or 503.
RETRY_AFTER_SECONDS = 2
# Seconds in-flight requests may take to finish after the drain, before they are closed (a full batch of long
# questions takes tens of seconds).
GRACEFUL_SHUTDOWN_SECONDS = 30
# What a container's stop timeout must allow: the default drain, the graceful timeout and a margin (docker
# stop's own default, 10 s, would kill requests in flight).
STOP_TIMEOUT_SECONDS = 40
# What the server exits with when it cannot start (a model refused at start-up, a worker that cannot serve).
STARTUP_FAILURE = 3
# Seconds the supervisor waits, after a reload, for every worker to load the new version before refusing it.
RELOAD_TIMEOUT_SECONDS = 300
# Seconds between restarts of a worker that keeps dying before it is ready (doubling up to the maximum): a dead
# worker is replaced within RESTART_MAX_SECONDS, plus its start.
RESTART_MIN_SECONDS = 0.5
RESTART_MAX_SECONDS = 8.0


DEFAULT_PORT = 4002


def listen_port() -> int:
    """The server's port: PORT (API_PORT is an alias), default DEFAULT_PORT; ``ValueError`` if not a number."""
    return int(os.environ.get("PORT") or os.environ.get("API_PORT") or DEFAULT_PORT)


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """What the environment sets (see the module docstring)."""

    log_format: str = "text"
    log_queries: bool = False
    request_timeout: float = 30.0
    max_batch_requests: int = 64
    head_timeout: float = 10.0
    body_timeout: float = 60.0
    drain_seconds: float = 5.0
    embedding_cache_entries: int | None = None  # None: the cache's own bound

    @classmethod
    def from_env(cls) -> "Settings":
        log_format = os.environ.get("LOG_FORMAT", "text").strip().lower() or "text"
        if log_format not in {"text", "json"}:
            raise ValueError(f"LOG_FORMAT must be text or json, got {log_format!r}")
        cache_entries = os.environ.get("EMBEDDING_CACHE_ENTRIES", "").strip()
        if cache_entries and int(cache_entries) < 0:
            raise ValueError(f"EMBEDDING_CACHE_ENTRIES must be 0 or more, got {cache_entries}")
        return cls(log_format=log_format, log_queries=_flag("LOG_QUERIES"),
                   request_timeout=float(os.environ.get("REQUEST_TIMEOUT") or cls.request_timeout),
                   max_batch_requests=int(os.environ.get("MAX_BATCH_REQUESTS") or cls.max_batch_requests),
                   head_timeout=float(os.environ.get("HEAD_TIMEOUT") or cls.head_timeout),
                   body_timeout=float(os.environ.get("BODY_TIMEOUT") or cls.body_timeout),
                   drain_seconds=float(os.environ.get("DRAIN_SECONDS") or cls.drain_seconds),
                   embedding_cache_entries=int(cache_entries) if cache_entries else None)
