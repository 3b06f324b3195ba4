"""One supervised worker: ``python -m api.worker SOCKET_FD REPORT_FD STATE_DIR MODEL_PATH`` (api/supervisor.py
starts it; nobody else should).

It serves the app on the listening socket the supervisor bound (inherited as ``SOCKET_FD``), starting with the
version at ``MODEL_PATH``, and obeys the supervisor's commands, one a line on stdin:

    load <model path>   load that version beside the current one; report ``loaded <sha12>`` or ``refused <reason>``
    drop <sha12>        free that version once the requests holding it are answered; report ``dropped <sha12>``

Reports go to ``REPORT_FD``, one a line: ``ready <sha12>`` once it serves, then the answers above. stdin closing
(the supervisor is gone) stops it. SIGTERM drains: ``/health`` answers 503 for DRAIN_SECONDS while requests are
still served, then requests in flight get GRACEFUL_SHUTDOWN_SECONDS; SIGINT skips the drain.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from types import FrameType

import uvicorn

from api.app import create_app
from api.errors import StartupError
from api.logs import log_config
from api.protocol import uvicorn_options
from api.registry import Registry
from api.service import ModelService
from api.settings import GRACEFUL_SHUTDOWN_SECONDS, STARTUP_FAILURE, Settings
from api.versions import sha12
from intent_lib.encoder import EMBEDDINGS


class DrainingServer(uvicorn.Server):
    """uvicorn's server, which on a first SIGTERM keeps serving for ``drain_seconds`` before it shuts down."""

    def __init__(self, config: uvicorn.Config, drain_seconds: float) -> None:
        super().__init__(config)
        self.drain_seconds = drain_seconds
        self._draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self.drain_seconds > 0 and not self._draining:
            self._draining = True  # the app's own handler has set its draining flag: /health answers 503
            threading.Timer(self.drain_seconds, super().handle_exit, (sig, None)).start()
            return
        super().handle_exit(sig, frame)


class Control:
    """The worker's side of the supervisor's channel (runs in its own thread)."""

    def __init__(self, server: DrainingServer, registry: Registry, report_fd: int) -> None:
        self.server = server
        self.registry = registry
        self.report_fd = report_fd

    def report(self, line: str) -> None:
        os.write(self.report_fd, (" ".join(line.split()) + "\n").encode("utf-8", "replace"))

    def in_loop(self, coroutine: object) -> object:
        assert self.registry.loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self.registry.loop).result()  # type: ignore[arg-type]

    def run(self) -> None:
        while not self.server.started:
            if self.server.should_exit:
                return
            time.sleep(0.05)
        self.report(f"ready {self.registry.own}")
        for line in sys.stdin:
            command, _, argument = line.strip().partition(" ")
            if command == "load":
                self.load(Path(argument))
            elif command == "drop":
                self.in_loop(self.registry.drop(argument))
                self.report(f"dropped {argument}")
        self.server.should_exit = True  # the supervisor is gone

    def load(self, path: Path) -> None:
        service = ModelService(path)
        try:
            service.load()
        except StartupError as exc:
            self.report(f"refused {exc}")
            return

        async def add() -> None:
            self.registry.add(service)

        self.in_loop(add())
        self.report(f"loaded {sha12(service.card or {})}")


def main(argv: list[str]) -> int:
    socket_fd, report_fd, state_dir, model_path = int(argv[0]), int(argv[1]), Path(argv[2]), Path(argv[3])
    settings = Settings.from_env()
    if settings.embedding_cache_entries is not None:
        EMBEDDINGS.max_entries = settings.embedding_cache_entries
    # uvicorn re-raises the SIGTERM it handled once it has shut down gracefully: that is a clean exit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = create_app(model_path, settings, state_dir)
    config = uvicorn.Config(app, lifespan="on", access_log=False, server_header=False,
                            log_config=log_config(settings.log_format),
                            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS, **uvicorn_options())
    server = DrainingServer(config, settings.drain_seconds)
    control = Control(server, app.registry, report_fd)
    threading.Thread(target=control.run, name="supervisor-channel", daemon=True).start()
    server.run(sockets=[socket.socket(fileno=socket_fd)])
    return 0 if server.started else STARTUP_FAILURE


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
