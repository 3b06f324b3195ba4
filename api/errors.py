"""Every failure the API answers, and how it becomes an HTTP error: the one place for both.

The serving code raises domain errors: ``StartupError`` (the model cannot be served: a one-line refusal at
start-up) and ``ServiceError``'s kinds (a request that cannot be answered now), each with the status and
Retry-After a client gets. ``EXCEPTION_HANDLERS`` turns them, Litestar's validation and HTTP errors (msgspec's
messages reworded for a client) and anything unexpected into one JSON shape, ``ErrorBody``:
``{"status_code", "detail", "field"}``.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_422_UNPROCESSABLE_ENTITY, HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap

from api.settings import MAX_BODY_BYTES, MAX_TOP_K, RETRY_AFTER_SECONDS

log = logging.getLogger("api")


class StartupError(RuntimeError):
    """The model cannot be served; the message is one line that says what to do."""


class ServiceError(RuntimeError):
    """A request the service cannot answer now; ``status`` and ``retry_after`` say how to tell the client."""

    status = 503
    retry_after: int | None = RETRY_AFTER_SECONDS


class NotReady(ServiceError):
    def __init__(self) -> None:
        super().__init__("The model is not loaded yet.")


class ShuttingDown(ServiceError):
    def __init__(self) -> None:
        super().__init__("The server is shutting down: retry on another instance.")


class Overloaded(ServiceError):
    status = 429

    def __init__(self, limit: int) -> None:
        super().__init__(f"Too many batch requests at once (at most {limit} per worker): retry later.")


class TimedOut(ServiceError):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"The request waited more than {seconds:g} s for the model: retry later.")


class ErrorBody(msgspec.Struct, omit_defaults=True):
    """Every error: the status, a sentence saying what to change, and the offending field when there is one."""

    status_code: int
    detail: str
    field: str | None = None
    extra: list[dict[str, Any]] | dict[str, Any] | None = None


def _error(status: int, detail: str, field: str | None = None, extra: Any = None,
           headers: dict[str, str] | None = None) -> Response[ErrorBody]:
    return Response(ErrorBody(status, detail, field or None, extra or None), status_code=status,
                    media_type=MediaType.JSON, headers=headers)


_MISSING_PARAMETER = re.compile(r"Missing required \w+ parameter '([^']+)'")
# msgspec's constraint messages, as a client should read them: (message pattern, status, sentence).
_CONSTRAINTS = [
    (re.compile(r"Expected `str` of length <= (\d+)"), HTTP_422_UNPROCESSABLE_ENTITY,
     lambda m: f"at most {int(m[1]):,} characters are accepted"),
    (re.compile(r"Expected `array` of length <= (\d+)"), HTTP_422_UNPROCESSABLE_ENTITY,
     lambda m: f"at most {int(m[1]):,} questions per request"),
    (re.compile(r"Expected `str` of length >= 1|Expected `str` matching regex"), 400,
     lambda m: "must not be empty or blank: send the question to classify"),
    (re.compile(r"Expected `array` of length >= 1"), 400, lambda m: "must hold at least one question"),
    (re.compile(r"Expected `int` (>=|<=) \d+"), 400, lambda m: f"must be between 1 and {MAX_TOP_K}"),
    (re.compile(r"Expected `int`, got"), 400, lambda m: f"must be a whole number between 1 and {MAX_TOP_K}"),
]


def _explain(message: str) -> tuple[int, str]:
    for pattern, status, sentence in _CONSTRAINTS:
        if match := pattern.search(message):
            return status, sentence(match)
    return 400, message


def _validation_error(_: Request, exc: ValidationException) -> Response[ErrorBody]:
    """Litestar's validation errors, with the offending fields named in ``detail`` in plain words."""
    extra = [e for e in exc.extra if isinstance(e, dict)] if isinstance(exc.extra, list) else []
    status = 400
    for e in extra:
        if e.get("key") == "text":  # the handler's name for the ``query`` parameter
            e["key"] = "query"
        if e.get("key") == "data":  # the whole body: Litestar names it after the handler's argument
            e["key"] = "body"
            if e.get("message") == "'data'":
                e["message"] = 'missing: send a JSON object {"queries": ["..."], "top_k": 3}'
        e_status, e["message"] = _explain(str(e.get("message")))
        status = max(status, e_status)
    fields = [str(e["key"]) for e in extra if e.get("key")]
    detail = "; ".join(f"{e['key']}: {e.get('message')}" if e.get("key") else str(e.get("message")) for e in extra)
    if missing := _MISSING_PARAMETER.match(exc.detail):  # Litestar's sentence repeats the query string: not ours
        fields, detail = [missing.group(1)], f"{missing.group(1)}: missing, e.g. ?{missing.group(1)}=..."
    detail = detail or _plain_detail(exc)
    return _error(status, detail, fields[0] if len(fields) == 1 else None, extra or None)


def _http_error(_: Request, exc: HTTPException) -> Response[ErrorBody]:
    field = exc.extra.get("field") if isinstance(exc.extra, dict) else None
    extra = exc.extra if exc.extra and not field else None
    headers = {k.title(): v for k, v in (exc.headers or {}).items()}  # Allow on a 405
    return _error(exc.status_code, _plain_detail(exc), field, extra, headers or None)


def _plain_detail(exc: HTTPException) -> str:
    if exc.status_code == 413:
        return f"The request body is too large (at most {MAX_BODY_BYTES:,} bytes): split the batch."
    if exc.status_code == 400 and exc.detail.startswith(("JSON is malformed", "Input data was truncated")):
        reason = exc.detail.removeprefix("JSON is malformed: ")
        return f'The request body is not valid JSON ({reason}): send {{"queries": ["..."], "top_k": 3}}.'
    return exc.detail


def _service_error(_: Request, exc: ServiceError) -> Response[ErrorBody]:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return _error(exc.status, str(exc), headers=headers)


def _unexpected_error(request: Request, exc: Exception) -> Response[ErrorBody]:
    log.exception("unexpected error on %s %r", request.method, request.url.path)  # repr: the path is untrusted
    return _error(HTTP_500_INTERNAL_SERVER_ERROR, "Internal server error.")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ValidationException: _validation_error,
    HTTPException: _http_error,
    ServiceError: _service_error,
    Exception: _unexpected_error,
}
