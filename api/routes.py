"""The routes: what each answers, given the registry, the settings and the draining flag by dependency injection
(``Provide``, wired in api/app.py).

``GET /intent`` and ``POST /intent`` take the version in service (``Registry.hold``), name it in
``X-Model-Version`` and ask its micro-batcher (api/batcher.py); ``/health``, ``/version``, ``/metrics``, the web
page at ``/`` with its static files, and the offline Swagger page. Failures are raised, never answered here:
api/errors.py turns them into JSON errors.
"""

import functools
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import msgspec
from litestar import MediaType, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException, InternalServerException, ValidationException
from litestar.openapi import ResponseSpec
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.params import Body, QueryParameter
from litestar.static_files import create_static_files_router

from api import metrics
from api.answers import Prediction
from api.disconnect import disconnect_watch
from api.live_metrics import live_collectors
from api.openapi import error_responses
from api.registry import Registry, Slot
from api.schemas import NOT_BLANK, BatchRequest, BatchResponse, Health
from api.settings import DEFAULT_TOP_K, MAX_BATCH, MAX_QUERY_CHARS, MAX_TOP_K, Settings
from api.versions import registry_fields

log = logging.getLogger("api")

STATIC_DIR = Path(__file__).parent / "static"


@asynccontextmanager
async def _held(request: Request, registry: Registry) -> AsyncIterator[Slot]:
    """The version answering this request (held until it is answered), named in its X-Model-Version."""
    async with registry.hold() as slot:
        request.scope["state"]["model_version"] = slot.model_version
        yield slot


def _log_queries(settings: Settings, request: Request, queries: list[str]) -> None:
    if settings.log_queries:  # opt-in debugging only: questions are health data
        log.info("request %s queries %r", request.scope["state"].get("request_id"), queries)


@get("/intent", summary="Classify one question", responses=error_responses(400, 414, 422, 431, 503))
async def classify(
    request: Request,
    registry: NamedDependency[Registry],
    settings: NamedDependency[Settings],
    text: Annotated[str, QueryParameter(name="query",  # `query` itself is a name Litestar reserves
                                        min_length=1, max_length=MAX_QUERY_CHARS, pattern=NOT_BLANK,
                                        description=f"The question, 1 to {MAX_QUERY_CHARS:,} characters.")],
    top_k: Annotated[int, QueryParameter(ge=1, le=MAX_TOP_K,
                                         description=f"How many intents to return (1 to {MAX_TOP_K}).")]
    = DEFAULT_TOP_K,
) -> Prediction:
    """The most probable intent of ``query`` with its probability, whether it is ``unsure`` and why (``reason``),
    whether it is ``out_of_scope``, the ``top_k`` best intents and the ``candidates`` (the conformal set)."""
    _log_queries(settings, request, [text])
    async with _held(request, registry) as slot:
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
      responses=error_responses(400, 413, 415, 422, 429, 431, 503))
async def classify_batch(
    request: Request,
    registry: NamedDependency[Registry],
    settings: NamedDependency[Settings],
    data: Annotated[BatchRequest, Body(description=f"1 to {MAX_BATCH:,} questions and top_k (default 3).")],
) -> BatchResponse:
    """One prediction per query, in order, each as ``GET /intent`` returns it. Big batches are predicted in
    chunks that take turns with single questions, so they never hold the model for long; a batch whose client
    has gone away stops at the next chunk."""
    _log_queries(settings, request, data.queries)
    async with _held(request, registry) as slot:
        async with disconnect_watch(request.receive) as gone:
            return BatchResponse(predictions=await slot.batcher.predict_many(data.queries, data.top_k, gone))


@get("/health", summary="200 when the model is loaded and the server is not shutting down, 503 otherwise",
     responses={503: ResponseSpec(data_container=Health, description="Not loaded yet, or shutting down",
                                  generate_examples=False), **error_responses(431)})
async def health(registry: NamedDependency[Registry], draining: NamedDependency[threading.Event]) -> Response[Health]:
    slot = registry.current()
    if draining.is_set():
        return Response(Health(status="shutting down"), status_code=503)
    if slot is None or not slot.service.loaded:
        return Response(Health(status="unavailable"), status_code=503)
    return Response(Health(status="ok", model_version=slot.model_version))


@get("/version", summary="The model card: version, training date, data hash, validation metrics, libraries",
     responses=error_responses(431, 503))
async def version(request: Request, registry: NamedDependency[Registry]) -> dict[str, Any]:
    async with _held(request, registry) as slot:
        return (slot.service.card or {}) | registry_fields(slot.service.path)


@get("/metrics", summary="Prometheus metrics: requests, latency, answers by intent and reason, confidence, queue, "
                         "cache, processes, model version",
     media_type=metrics.CONTENT_TYPE, responses=error_responses(431))
async def prometheus_metrics(registry: NamedDependency[Registry]) -> Response[bytes]:
    return Response(metrics.exposition(*live_collectors(registry)), media_type=metrics.CONTENT_TYPE)


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


ROUTES = [classify, classify_batch, health, version, prometheus_metrics, index,
          create_static_files_router(path="/static", directories=[STATIC_DIR], include_in_schema=False)]

