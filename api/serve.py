"""Serve the API with uvicorn: ``python -m api.serve`` (what ``make api`` and the image run).

    HOST      interface to bind (default 127.0.0.1; the image sets 0.0.0.0)
    PORT      port (default 4002; API_PORT is read as an alias)
    WORKERS   uvicorn worker processes, each with its own model and micro-batcher (default: one per core)

and the settings of api/settings.py (LOG_FORMAT, LOG_QUERIES, REQUEST_TIMEOUT, MAX_BATCH_REQUESTS, HEAD_TIMEOUT,
BODY_TIMEOUT). The HTTP protocol and its limits are api/protocol.py's.
A port already taken is reported in one line before the model is loaded. On SIGTERM, ``/health`` answers 503,
requests in flight finish (for up to GRACEFUL_SHUTDOWN_SECONDS) and the process exits 0.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import tempfile

import uvicorn

from api.logs import log_config
from api.protocol import uvicorn_options
from api.service import ModelService, StartupError
from api.settings import GRACEFUL_SHUTDOWN_SECONDS, WORKER_HEALTHCHECK_SECONDS, Settings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4002
STARTUP_FAILURE = 3  # what uvicorn exits with when the app fails to start


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def port_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be bound (taken, unknown interface), or None."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return f"Cannot listen on {host}:{port} ({exc.strerror}): stop what uses it or choose another PORT."
    return None


def main() -> int:
    try:
        settings = Settings.from_env()
        host = os.environ.get("HOST") or DEFAULT_HOST
        port = int(os.environ.get("PORT") or os.environ.get("API_PORT") or DEFAULT_PORT)
        workers = int(os.environ.get("WORKERS") or default_workers())
    except ValueError as exc:
        print(f"api: {exc}", file=sys.stderr)
        return 2
    if problem := port_problem(host, port):
        print(f"api: {problem}", file=sys.stderr)
        return 1
    if workers > 1:  # refusals in one line here, rather than one per worker and the supervisor's
        try:
            ModelService().load()
        except StartupError as exc:
            print(f"api: {exc}", file=sys.stderr)
            return STARTUP_FAILURE
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker writes its metrics here; /metrics sums them. Inherited by the workers.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="posos-metrics-")
    # uvicorn re-raises the SIGTERM it handled once it has shut down gracefully: that is a clean exit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    failed = _WorkerFailure()
    logging.getLogger("uvicorn.error").addFilter(failed)
    uvicorn.run("api.app:app", host=host, port=port, workers=workers, access_log=False, server_header=False,
                log_config=log_config(settings.log_format), timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
                timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS, **uvicorn_options())
    return STARTUP_FAILURE if failed.seen else 0


class _WorkerFailure(logging.Filter):
    """Notices uvicorn's supervisor giving up on a worker that failed to start (it then returns normally)."""

    seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        if "failed to start" in record.getMessage():
            self.seen = True
        return True


if __name__ == "__main__":
    sys.exit(main())
