"""Serve the API: ``python -m api.serve`` (what ``make api`` and the image run).

    HOST      interface to bind (default 127.0.0.1; the image sets 0.0.0.0)
    PORT      port (default 4002; API_PORT is read as an alias)
    WORKERS   worker processes, each with its own model and micro-batcher (default: one per core)

and the settings of api/settings.py (LOG_FORMAT, LOG_QUERIES, REQUEST_TIMEOUT, MAX_BATCH_REQUESTS, HEAD_TIMEOUT,
BODY_TIMEOUT, DRAIN_SECONDS, EMBEDDING_CACHE_ENTRIES). The HTTP protocol and its limits are api/protocol.py's; the
workers, reloads (SIGHUP, ``python -m api.reload``) and the drain (SIGTERM) are api/supervisor.py's, for one worker
as for many.
The socket is bound here, once: a port already taken, or a model refused by its checks, is reported in one line
before any worker starts (exit 1, and STARTUP_FAILURE).
"""

from __future__ import annotations

import logging.config
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

from api.logs import log_config
from api.settings import STARTUP_FAILURE, Settings, listen_port
from api.supervisor import Supervisor
from intent_lib.artefacts import ModelIntegrityError
from intent_lib.paths import MODEL_PATH, resolve, server_state_dir

DEFAULT_HOST = "127.0.0.1"
BACKLOG = 2048  # uvicorn's default


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket the workers share; ``OSError`` with a one-line reason when it cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise OSError(f"Cannot listen on {host}:{port} ({exc.strerror}): stop what uses it or choose another PORT.") \
            from None
    sock.set_inheritable(True)
    return sock


def main() -> int:
    try:
        settings = Settings.from_env()
        host = os.environ.get("HOST") or DEFAULT_HOST
        port = listen_port()
        workers = int(os.environ.get("WORKERS") or default_workers())
    except ValueError as exc:
        print(f"api: {exc}", file=sys.stderr)
        return 2
    try:
        sock = bind(host, port)
    except OSError as exc:
        print(f"api: {exc}", file=sys.stderr)
        return 1
    logging.config.dictConfig(log_config(settings.log_format))
    metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker writes its metrics here; /metrics sums them. Inherited by the workers.
        metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="posos-metrics-")
    model_path = resolve(os.environ.get("MODEL_PATH") or MODEL_PATH)
    try:
        return Supervisor(sock, max(workers, 1), settings, server_state_dir(port), Path(model_path)).run()
    except ModelIntegrityError as exc:
        print(f"api: {exc}", file=sys.stderr)
        return STARTUP_FAILURE
    finally:
        sock.close()
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
