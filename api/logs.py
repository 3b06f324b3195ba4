"""Private-by-default logging: one access line per request (method, route, status, duration, size, request id,
never the question), an ``X-Request-ID`` on every response, and text or JSON formatting.

Untrusted text (paths of unknown routes, request ids) only ever reaches a log line through ``repr``, so it
cannot forge a line; with ``LOG_FORMAT=json`` every line is one JSON object.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.settings import MAX_REQUEST_ID_CHARS

access_log = logging.getLogger("api.access")

REQUEST_ID_HEADER = b"x-request-id"
# A client's request id is kept when it is short and made of these characters; else a new one is made.
_REQUEST_ID = re.compile(rf"[A-Za-z0-9._:/+=-]{{1,{MAX_REQUEST_ID_CHARS}}}")
ACCESS_FIELDS = ("method", "route", "status", "duration_ms", "bytes", "request_id")


def request_id(scope: Scope) -> str:
    """The client's ``X-Request-ID`` when well-formed, else a fresh one."""
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER:
            text = value.decode("latin-1")
            if _REQUEST_ID.fullmatch(text):
                return text
    return uuid.uuid4().hex


def route_of(scope: Scope) -> str:
    """The route template that served the request (``/intent``), or the quoted path when none matched."""
    return scope.get("path_template") or f"unmatched {scope.get('path', '')!r}"[:200]


class AccessLog:
    """ASGI middleware: sets the request id (``scope["state"]["request_id"]`` and the response header),
    then logs one line per HTTP request and tells ``observe`` (metrics) the same fields."""

    def __init__(self, app: ASGIApp, observe: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.app = app
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        scope.setdefault("state", {})["request_id"] = rid
        start = time.perf_counter()
        status, size = 500, 0

        async def send_with_id(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(n, v) for n, v in message.get("headers", ()) if n.lower() != REQUEST_ID_HEADER]
                message = {**message, "headers": [*headers, (REQUEST_ID_HEADER, rid.encode("latin-1"))]}
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            record = {"method": scope.get("method", "?"), "route": route_of(scope), "status": status,
                      "duration_ms": round(1000 * (time.perf_counter() - start), 2), "bytes": size,
                      "request_id": rid}
            access_log.info(" ".join(f"{k}={record[k]}" for k in ACCESS_FIELDS), extra={"access": record})
            if self.observe is not None:
                self.observe(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the access fields, and the exception."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                               "message": record.getMessage()}
        out.update(getattr(record, "access", {}))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_config(log_format: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for uvicorn and the app; uvicorn's own access log is replaced by ours."""
    formatter = {"()": f"{__name__}.JsonFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "default",
                                 "stream": "ext://sys.stderr"}},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "api": {"handlers": ["default"], "level": "INFO", "propagate": False},
        },
    }
