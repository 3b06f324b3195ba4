"""The intent API's application: ``create_app`` assembles the routes (api/routes.py), their dependencies, the error
handlers (api/errors.py) and the OpenAPI document (api/openapi.py), and owns the lifespan: load the model at
start-up, refuse in one line when it cannot be served, drain on SIGTERM.

Run with ``python -m api.serve`` (or ``uvicorn api.app:app --port 4002``). The model is ``MODEL_PATH`` (default
``models/intent_model.pkl``, relative to the working directory) with ``model_card.json`` beside it; both are
checked and loaded once at start-up. Under the supervisor, the versions a worker holds and the one answering are
api/registry.py's; every response carries the version that answered it (or the one in service) in
``X-Model-Version``. Every request passes the edge first: the access log (api/logs.py) and the security guard
(api/security.py); HEAD is answered as GET without the body.
"""

import signal
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.types import Receive, Scope, Send

from api import metrics
from api.errors import EXCEPTION_HANDLERS, StartupError
from api.logs import AccessLog
from api.openapi import complete_openapi
from api.registry import Registry
from api.routes import ROUTES, OfflineSwagger
from api.security import Guard
from api.service import ModelService
from api.settings import MAX_BATCH, MAX_BODY_BYTES, Settings
from api.versions import InService
from intent_lib import __version__


class IntentApp(Litestar):
    """Litestar behind the access log and the security guard, naming the answering version on every response,
    with a one-line start-up failure: uvicorn prints the message, not a traceback."""

    def __init__(self, registry: Registry, draining: threading.Event, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.registry = registry
        self.draining = draining  # set on SIGTERM and at shutdown: /health answers 503
        complete_openapi(self.openapi_schema)  # before the document is first served
        self._edge = AccessLog(Guard(self._routed, self.allowed_methods), observe=metrics.observe_request)

    def allowed_methods(self, path_template: str) -> set[str]:
        """Every method the route answers (Litestar's OPTIONS handler sees only a path's first handler)."""
        methods = {m for r in self.routes if r.path == path_template for m in getattr(r, "methods", ())}
        return methods | {"HEAD"} if "GET" in methods else methods

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await super().__call__(scope, receive, _concise_startup_failure(send))
        else:
            await self._edge(scope, receive, self.registry.naming_version(scope, send))

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


def _provide(value: Any) -> Provide:
    """``value``, the same object for every request."""
    return Provide(lambda: value, use_cache=True, sync_to_thread=False)


def create_app(model_path: Path | None = None, settings: Settings | None = None,
               state_dir: Path | None = None) -> IntentApp:
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
        registry, draining,
        route_handlers=ROUTES,
        dependencies={"registry": _provide(registry), "settings": _provide(settings), "draining": _provide(draining)},
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
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
