"""The intent API: Litestar app serving the pickled model at ``/intent``, its card, its health and a web page.

Run with ``python -m api.serve`` (or ``uvicorn api.app:app --port 4002``). The model is ``MODEL_PATH`` (default
``models/intent_model.pkl``, relative to the working directory) with ``model_card.json`` beside it; both are
checked and loaded once at start-up, and a missing or malformed model stops the start with a one-line message.
Under the supervisor, the versions a worker holds and the one answering are api/registry.py's; every response
carries the version that answered it (or the one in service) in ``X-Model-Version``.
Every limit (api/settings.py) is in the OpenAPI document; every error is ``{"status_code", "detail", "field"}``.
"""

import functools
import logging
import re
import signal
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import msgspec
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.datastructures import State
from litestar.exceptions import HTTPException, InternalServerException, ValidationException
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.params import Body, QueryParameter
from litestar.static_files import create_static_files_router
from litestar.status_codes import HTTP_422_UNPROCESSABLE_ENTITY, HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import Receive, Scope, Send

from api import metrics
from api.disconnect import disconnect_watch
from api.live_metrics import live_collectors
from api.logs import AccessLog
from api.security import Guard
from api.registry import Registry, Slot
from api.service import ModelService, Prediction, ServiceError, StartupError
from api.settings import (DEFAULT_TOP_K, MAX_BATCH, MAX_BODY_BYTES, MAX_HEAD_BYTES, MAX_HEADER_BYTES,
                          MAX_QUERY_CHARS, MAX_TOP_K, MAX_URL_BYTES, Settings)
from api.versions import InService
from intent_lib import __version__

log = logging.getLogger("api")

__all__ = ["MAX_BATCH", "MAX_QUERY_CHARS", "MAX_TOP_K", "app", "create_app"]

STATIC_DIR = Path(__file__).parent / "static"
# A question must hold a character that is not whitespace (str.isspace). Spelled out rather than \S, whose
# meaning differs between Python's re and the ECMA regexes of JSON Schema; patterns match anywhere.
NOT_BLANK = r"[^\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"

Question = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_QUERY_CHARS, pattern=NOT_BLANK,
                                       description=f"A question, 1 to {MAX_QUERY_CHARS:,} characters, not blank.")]
TopK = Annotated[int, msgspec.Meta(ge=1, le=MAX_TOP_K, description=f"How many intents to return (1 to {MAX_TOP_K}).")]


class BatchRequest(msgspec.Struct, forbid_unknown_fields=True):
    queries: Annotated[list[Question], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]
    top_k: TopK = DEFAULT_TOP_K


class BatchResponse(msgspec.Struct):
    predictions: list[Prediction]


class Health(msgspec.Struct):
    status: str
    model_version: str | None = None


class ErrorBody(msgspec.Struct, omit_defaults=True):
    """Every error: the status, a sentence saying what to change, and the offending field when there is one."""

    status_code: int
    detail: str
    field: str | None = None
    extra: list[dict[str, Any]] | dict[str, Any] | None = None


# ---------------------------------------------------------------------------------------------- documentation

def _errors(*codes: int) -> dict[int, ResponseSpec]:
    """The documented error responses of a route, all with the JSON error shape."""
    described = {
        400: "A missing, blank or malformed parameter or body (invalid JSON, invalid UTF-8, nesting too deep)",
        413: f"The body is over {MAX_BODY_BYTES:,} bytes",
        414: f"The URL is over {MAX_URL_BYTES:,} bytes",
        415: "The body is not sent as application/json",
        422: f"A question over {MAX_QUERY_CHARS:,} characters or a batch over {MAX_BATCH:,} questions",
        429: "Too many batch requests at once: retry after Retry-After seconds",
        431: f"The request headers are over {MAX_HEADER_BYTES:,} bytes (or the whole head over {MAX_HEAD_BYTES:,})",
        503: "The model is not loaded, the server is shutting down, or the request waited past its time budget: "
             "retry after Retry-After seconds",
    }
    return {code: ResponseSpec(data_container=ErrorBody, description=described[code], generate_examples=False)
            for code in codes}


# ---------------------------------------------------------------------------------------------- handlers


@asynccontextmanager
async def _model(request: Request) -> AsyncIterator[Slot]:
    """The version answering this request (held until it is answered), named in its X-Model-Version."""
    registry: Registry = request.app.state.registry
    async with registry.hold() as slot:
        request.scope["state"]["model_version"] = slot.model_version
        yield slot


def _log_queries(request: Request, queries: list[str]) -> None:
    if request.app.state.settings.log_queries:  # opt-in debugging only: questions are health data
        log.info("request %s queries %r", request.scope["state"].get("request_id"), queries)


@get("/intent", summary="Classify one question", responses=_errors(400, 414, 422, 431, 503))
async def classify(
    request: Request,
    text: Annotated[str, QueryParameter(name="query",  # `query` itself is a name Litestar reserves
                                        min_length=1, max_length=MAX_QUERY_CHARS, pattern=NOT_BLANK,
                                        description=f"The question, 1 to {MAX_QUERY_CHARS:,} characters.")],
    top_k: Annotated[int, QueryParameter(ge=1, le=MAX_TOP_K,
                                         description=f"How many intents to return (1 to {MAX_TOP_K}).")]
    = DEFAULT_TOP_K,
) -> Prediction:
    """The most probable intent of ``query`` with its probability, whether it is ``unsure`` and why (``reason``),
    whether it is ``out_of_scope``, the ``top_k`` best intents and the ``candidates`` (the conformal set)."""
    _log_queries(request, [text])
    async with _model(request) as slot:
        return await slot.batcher.predict(text, top_k)


async def _check_body(request: Request) -> None:
    """Refuse, before Litestar decodes it, a body that is not JSON, not UTF-8, nests deeper than a parser can
    follow, or holds a string ``top_k`` (which Litestar's lax conversion would accept)."""
    media_type = request.content_type[0]
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise HTTPException(status_code=415, extra={"field": "content-type"},
                            detail=f"The body must be JSON, sent with Content-Type: application/json "
                                   f"(got {media_type[:100] or 'none'!r}).")
    try:
        body = await request.body()
    except InternalServerException:  # the client left mid-body (or api/protocol.py's BODY_TIMEOUT closed it)
        raise HTTPException(status_code=408, detail="The request body did not arrive whole: send it again.",
                            extra={"field": "body"}) from None
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(status_code=400, detail=f"The request body is not valid UTF-8 (byte {exc.start}): "
                                                    "send JSON encoded in UTF-8.", extra={"field": "body"}) from None
    try:
        decoded = msgspec.json.decode(body)
    except RecursionError:
        raise HTTPException(status_code=400, extra={"field": "body"},
                            detail='The request body nests too deeply: send {"queries": ["..."], "top_k": 3}.') from None
    except msgspec.DecodeError:
        return  # malformed JSON: Litestar's decoder says where
    if isinstance(decoded, dict) and isinstance(decoded.get("top_k"), str):  # Litestar's lax conversion takes "3"
        raise ValidationException(extra=[{"key": "top_k", "message": "Expected `int`, got `str`", "source": "body"}])


@post("/intent", status_code=200, summary="Classify a batch of questions", before_request=_check_body,
      responses=_errors(400, 413, 415, 422, 429, 431, 503))
async def classify_batch(
    request: Request,
    data: Annotated[BatchRequest, Body(description=f"1 to {MAX_BATCH:,} questions and top_k (default 3).")],
) -> BatchResponse:
    """One prediction per query, in order, each as ``GET /intent`` returns it. Big batches are predicted in
    chunks that take turns with single questions, so they never hold the model for long; a batch whose client
    has gone away stops at the next chunk."""
    _log_queries(request, data.queries)
    async with _model(request) as slot:
        async with disconnect_watch(request.receive) as gone:
            return BatchResponse(predictions=await slot.batcher.predict_many(data.queries, data.top_k, gone))


@get("/health", summary="200 when the model is loaded and the server is not shutting down, 503 otherwise",
     responses={503: ResponseSpec(data_container=Health, description="Not loaded yet, or shutting down",
                                  generate_examples=False), **_errors(431)})
async def health(request: Request) -> Response[Health]:
    slot = request.app.state.registry.current()
    if request.app.state.draining.is_set():
        return Response(Health(status="shutting down"), status_code=503)
    if slot is None or not slot.service.loaded:
        return Response(Health(status="unavailable"), status_code=503)
    return Response(Health(status="ok", model_version=slot.model_version))


@get("/version", summary="The model card: version, training date, data hash, validation metrics, libraries",
     responses=_errors(431, 503))
async def version(request: Request) -> dict[str, Any]:
    async with _model(request) as slot:
        return slot.service.card or {}


@get("/metrics", summary="Prometheus metrics: requests by route and status, latency, model calls, model version",
     media_type=metrics.CONTENT_TYPE, responses=_errors(431))
async def prometheus_metrics(request: Request) -> Response[bytes]:
    return Response(metrics.exposition(*live_collectors(request.app.state.registry)), media_type=metrics.CONTENT_TYPE)


@get("/", include_in_schema=False, media_type=MediaType.HTML)
async def index() -> Response[bytes]:
    return Response(_page(), media_type=MediaType.HTML, headers={"Cache-Control": "no-cache"})


@functools.cache
def _page() -> bytes:
    """The web page with the server's limits written in (the page types none of them)."""
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    return html.replace("__MAX_QUERY_CHARS__", str(MAX_QUERY_CHARS)).encode("utf-8")


class OfflineSwagger(SwaggerRenderPlugin):
    """Swagger UI from api/static (swagger-ui-dist 5.35.0, Apache-2.0), started by a script file rather than an
    inline one, so the page works offline and under a CSP without 'unsafe-inline' scripts."""

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        return (STATIC_DIR / "swagger.html").read_bytes()


# ---------------------------------------------------------------------------------------------- errors


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


# ---------------------------------------------------------------------------------------------- the app


def complete_openapi(doc: dict[str, Any]) -> None:
    """Add to Litestar's document what its generator leaves out of ``BatchRequest``: the constraints on each
    question and ``additionalProperties: false`` (msgspec enforces both), and Retry-After on 429 and 503."""
    batch = doc["components"]["schemas"]["BatchRequest"]
    batch["additionalProperties"] = False
    batch["properties"]["queries"]["items"] = {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS,
                                               "pattern": NOT_BLANK}
    retry_after = {"description": "Seconds to wait before retrying", "schema": {"type": "integer", "minimum": 0}}
    for operations in doc["paths"].values():
        for operation in operations.values():
            for code in ("429", "503"):
                if code in operation.get("responses", {}):
                    operation["responses"][code].setdefault("headers", {})["Retry-After"] = retry_after


class IntentApp(Litestar):
    """Litestar behind the access log and the security guard, with a one-line start-up failure: uvicorn prints
    the message, not a traceback."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        complete_openapi(self.plugins.get(OpenAPIPlugin).provide_openapi_schema())  # the cached document
        self._edge = AccessLog(Guard(self._routed, self.allowed_methods), observe=metrics.observe_request)

    def allowed_methods(self, path_template: str) -> set[str]:
        """Every method the route answers (Litestar's OPTIONS handler sees only a path's first handler)."""
        methods = {m for r in self.routes if r.path == path_template for m in getattr(r, "methods", ())}
        return methods | {"HEAD"} if "GET" in methods else methods

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await super().__call__(scope, receive, _concise_startup_failure(send))
        else:
            await self._edge(scope, receive, self.state.registry.naming_version(scope, send))

    async def _routed(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Litestar, with HEAD answered as GET without the body (same status and headers)."""
        if scope.get("method") != "HEAD":
            await super().__call__(scope, receive, send)
            return

        async def headers_only(message: Any) -> None:
            await send({**message, "body": b""} if message["type"] == "http.response.body" else message)

        as_get = {**scope, "method": "GET"}  # a copy: the server must still see HEAD (and send no body)
        try:
            await super().__call__(as_get, receive, headers_only)
        finally:
            if "path_template" in as_get:  # for the access log
                scope["path_template"] = as_get["path_template"]


def _concise_startup_failure(send: Send) -> Send:
    async def wrapped(message: Any) -> None:
        if message.get("type") == "lifespan.startup.failed":
            exc = _find_startup_error(sys.exc_info()[1])
            if exc is not None:
                message = {**message, "message": str(exc)}
        await send(message)

    return wrapped


def _find_startup_error(exc: BaseException | None) -> StartupError | None:
    """The StartupError in ``exc``, which the lifespan machinery may have wrapped in exception groups."""
    if isinstance(exc, StartupError):
        return exc
    for inner in getattr(exc, "exceptions", ()):
        if found := _find_startup_error(inner):
            return found
    return None


def drain_on_sigterm(draining: threading.Event) -> None:
    """On SIGTERM, set ``draining`` (``/health`` answers 503 at once), then let uvicorn's handler stop accepting
    connections and finish the requests in flight. Signals are only handled in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum: int, frame: Any) -> None:
        draining.set()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, handler)


def create_app(model_path: Path | None = None, settings: Settings | None = None,
               state_dir: Path | None = None) -> Litestar:
    """The app serving ``model_path`` (default: ``MODEL_PATH`` or models/intent_model.pkl, read at start-up);
    with ``state_dir`` (a supervised worker), each request takes the version its pointer names."""
    settings = settings or Settings.from_env()
    service = ModelService(model_path)
    registry = Registry(settings, InService(state_dir) if state_dir else None, on_call=metrics.observe_model_call,
                        on_model_time=metrics.observe_model_time)
    draining = threading.Event()

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        service.load()
        registry.add(service)
        drain_on_sigterm(draining)
        try:
            yield
        finally:
            draining.set()
            await registry.close()

    return IntentApp(
        route_handlers=[classify, classify_batch, health, version, prometheus_metrics, index,
                        create_static_files_router(path="/static", directories=[STATIC_DIR],
                                                   include_in_schema=False)],
        lifespan=[lifespan],
        state=State({"registry": registry, "settings": settings, "draining": draining}),
        exception_handlers={
            ValidationException: _validation_error,
            HTTPException: _http_error,
            ServiceError: _service_error,
            Exception: _unexpected_error,
        },
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=OpenAPIConfig(
            title="posos-intent API", version=__version__, path="/schema",
            description="Intents of French questions about drugs (Posos challenge): one question by GET, "
                        f"up to {MAX_BATCH:,} by POST.",
            render_plugins=[OfflineSwagger(path="/", favicon="")],
        ),
        debug=False,
        logging_config=None,  # logging is api.logs' (via api.serve): Litestar's default would take the root logger
    )


app = create_app()
