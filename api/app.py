"""The intent API: Litestar app serving the pickled model at ``/intent``, its card, its health and a web page.

Run with ``uvicorn api.app:app --port 4002``. The model is ``MODEL_PATH`` (default ``models/intent_model.pkl``,
relative to the working directory) with ``model_card.json`` beside it; both are checked and loaded once at
start-up, and a missing or mismatching model stops the start with a one-line message saying what to do.
"""

import logging
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import msgspec
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.params import Body, QueryParameter
from litestar.static_files import create_static_files_router
from litestar.status_codes import HTTP_422_UNPROCESSABLE_ENTITY, HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import Receive, Scope, Send

from api.service import MicroBatcher, ModelService, Prediction, StartupError
from intent_lib import __version__

log = logging.getLogger("api")

MAX_QUERY_CHARS = 5_000
MAX_BATCH = 1_000
MAX_TOP_K = 51
DEFAULT_TOP_K = 3
# A full batch of 1,000 queries of 5,000 characters is ~5 MB of plain UTF-8 JSON; escapes can grow it.
MAX_BODY_BYTES = 16_000_000
STATIC_DIR = Path(__file__).parent / "static"


class BatchRequest(msgspec.Struct, forbid_unknown_fields=True):
    queries: list[str]
    top_k: int = DEFAULT_TOP_K


class BatchResponse(msgspec.Struct):
    predictions: list[Prediction]


class Health(msgspec.Struct):
    status: str
    model_version: str | None = None


# ---------------------------------------------------------------------------------------------- validation


def _bad(status: int, field: str, detail: str) -> HTTPException:
    return HTTPException(status_code=status, detail=detail, extra={"field": field})


def _check_query(query: str, field: str) -> None:
    if not query.strip():
        raise _bad(400, field, f"{field} must not be empty or blank: send the question to classify.")
    if len(query) > MAX_QUERY_CHARS:
        raise _bad(HTTP_422_UNPROCESSABLE_ENTITY, field,
                   f"{field} is {len(query):,} characters long; at most {MAX_QUERY_CHARS:,} are accepted.")


def _check_top_k(k: int) -> None:
    if not 1 <= k <= MAX_TOP_K:
        raise _bad(400, "top_k", f"top_k must be between 1 and {MAX_TOP_K}, got {k}.")


def _service(request: Request) -> ModelService:
    service: ModelService = request.app.state.model_service
    if not service.loaded:
        raise HTTPException(status_code=503, detail="The model is not loaded yet.")
    return service


# ---------------------------------------------------------------------------------------------- handlers


@get("/intent", summary="Classify one question")
async def classify(
    request: Request,
    text: Annotated[str, QueryParameter(name="query",  # `query` itself is a name Litestar reserves
                                        description=f"The question, 1 to {MAX_QUERY_CHARS:,} characters.")],
    top_k: Annotated[int, QueryParameter(description=f"How many intents to return (1 to {MAX_TOP_K}).")]
    = DEFAULT_TOP_K,
) -> Prediction:
    """The most probable intent of ``query`` with its name and probability, whether it is ``unsure``, the
    ``top_k`` best intents and the ``candidates`` (the conformal prediction set)."""
    _check_query(text, "query")
    _check_top_k(top_k)
    _service(request)
    batcher: MicroBatcher = request.app.state.batcher
    return await batcher.predict(text, top_k)


@post("/intent", sync_to_thread=True, status_code=200, summary="Classify a batch of questions")
def classify_batch(
    request: Request,
    data: Annotated[BatchRequest, Body(description=f"1 to {MAX_BATCH:,} questions and top_k (default 3).")],
) -> BatchResponse:
    """One prediction per query, in order, each as ``GET /intent`` returns it."""
    if not data.queries:
        raise _bad(400, "queries", "queries must hold at least one question.")
    if len(data.queries) > MAX_BATCH:
        raise _bad(HTTP_422_UNPROCESSABLE_ENTITY, "queries",
                   f"queries holds {len(data.queries):,} questions; at most {MAX_BATCH:,} per request.")
    for i, query in enumerate(data.queries):
        _check_query(query, f"queries[{i}]")
    _check_top_k(data.top_k)
    return BatchResponse(predictions=_service(request).predict(data.queries, data.top_k))


@get("/health", summary="200 when the model is loaded, 503 otherwise")
async def health(request: Request) -> Response[Health]:
    service: ModelService = request.app.state.model_service
    if not service.loaded:
        return Response(Health(status="unavailable"), status_code=503)
    return Response(Health(status="ok", model_version=(service.card or {}).get("model_version")))


@get("/version", summary="The model card: version, training date, data hash, validation metrics, libraries")
async def version(request: Request) -> dict[str, Any]:
    return _service(request).card or {}


@get("/", include_in_schema=False, media_type=MediaType.HTML)
async def index() -> Response[bytes]:
    return Response((STATIC_DIR / "index.html").read_bytes(), media_type=MediaType.HTML,
                    headers={"Cache-Control": "no-cache"})


# ---------------------------------------------------------------------------------------------- errors


def _error(status: int, detail: str, field: str | None = None, extra: Any = None) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {"status_code": status, "detail": detail}
    if field:
        body["field"] = field
    if extra:
        body["extra"] = extra
    return Response(body, status_code=status, media_type=MediaType.JSON)


_MISSING_PARAMETER = re.compile(r"Missing required \w+ parameter '([^']+)'")


def _validation_error(_: Request, exc: ValidationException) -> Response[dict[str, Any]]:
    """Litestar's validation errors, with the offending fields named in ``detail``."""
    extra = [e for e in exc.extra if isinstance(e, dict)] if isinstance(exc.extra, list) else []
    for e in extra:
        if e.get("key") == "text":  # the handler's name for the ``query`` parameter
            e["key"] = "query"
        if e.get("key") == "data":  # the whole body: Litestar names it after the handler's argument
            e["key"] = "body"
            if e.get("message") == "'data'":
                e["message"] = 'missing: send a JSON object {"queries": ["..."], "top_k": 3}'
    fields = [str(e["key"]) for e in extra if e.get("key")]
    if missing := _MISSING_PARAMETER.match(exc.detail):
        fields = [missing.group(1)]
    detail = "; ".join(f"{e['key']}: {e.get('message')}" if e.get("key") else str(e.get("message")) for e in extra)
    detail = detail or _plain_detail(exc)
    return _error(exc.status_code, detail, fields[0] if len(fields) == 1 else None, extra or None)


def _http_error(_: Request, exc: HTTPException) -> Response[dict[str, Any]]:
    field = exc.extra.get("field") if isinstance(exc.extra, dict) else None
    extra = exc.extra if exc.extra and not field else None
    return _error(exc.status_code, _plain_detail(exc), field, extra)


def _plain_detail(exc: HTTPException) -> str:
    if exc.status_code == 413:
        return f"The request body is too large (at most {MAX_BODY_BYTES:,} bytes): split the batch."
    if exc.status_code == 400 and exc.detail.startswith(("JSON is malformed", "Input data was truncated")):
        reason = exc.detail.removeprefix("JSON is malformed: ")
        return f'The request body is not valid JSON ({reason}): send {{"queries": ["..."], "top_k": 3}}.'
    return exc.detail


def _unexpected_error(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return _error(HTTP_500_INTERNAL_SERVER_ERROR, "Internal server error.")


# ---------------------------------------------------------------------------------------------- the app


class IntentApp(Litestar):
    """Litestar with a one-line start-up failure: uvicorn prints the message, not a traceback."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            send = _concise_startup_failure(send)
        await super().__call__(scope, receive, send)


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


def create_app(model_path: Path | None = None) -> Litestar:
    """The app serving ``model_path`` (default: ``MODEL_PATH`` or models/intent_model.pkl, read at start-up)."""
    service = ModelService(model_path)
    batcher = MicroBatcher(service)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        service.load()
        batcher.start()
        try:
            yield
        finally:
            await batcher.stop()
            service.unload()

    return IntentApp(
        route_handlers=[classify, classify_batch, health, version, index,
                        create_static_files_router(path="/static", directories=[STATIC_DIR])],
        lifespan=[lifespan],
        state=State({"model_service": service, "batcher": batcher}),
        exception_handlers={
            ValidationException: _validation_error,
            HTTPException: _http_error,
            Exception: _unexpected_error,
        },
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=OpenAPIConfig(
            title="posos-intent API", version=__version__, path="/schema",
            description="Intents of French questions about drugs (Posos challenge): one question by GET, "
                        f"up to {MAX_BATCH:,} by POST.",
            # Swagger UI from api/static (swagger-ui-dist 5.35.0, Apache-2.0): the docs work offline too.
            render_plugins=[SwaggerRenderPlugin(
                path="/", js_url="/static/swagger-ui-bundle.js", css_url="/static/swagger-ui.css",
                standalone_preset_js_url="/static/swagger-ui-standalone-preset.js",
                favicon="<link rel='icon' href='data:,'>")],
        ),
        debug=False,
    )


app = create_app()
