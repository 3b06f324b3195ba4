"""The HTTP protocol layer: uvicorn's httptools protocol with the limits it lacks, applied while reading.

uvicorn's httptools protocol buffers a request head whole, however long, and has no read timeout (its keep-alive
timer starts only after a response). ``EdgeProtocol`` adds, before anything reaches the app:

- a URL over ``MAX_URL_BYTES`` answers 414, and a head (request line and headers) over ``MAX_HEAD_BYTES``
  answers 431, as soon as that much has arrived: the rest is never buffered;
- a head not complete ``HEAD_TIMEOUT`` seconds after the connection opened or after its first byte answers 408
  (an idle connection is closed without an answer); a body not complete ``BODY_TIMEOUT`` seconds after its head
  closes the connection (the app sees the client leave);
- a request httptools cannot parse (a malformed request line or header, a raw NUL) answers 400.

Each answer has the app's JSON error shape and ``Connection: close``. What the client still sends is then
discarded for ``LINGER_SECONDS`` before the close, so that the client can read the answer (closing with unread
data would reset the connection and lose it). ``uvicorn_options()`` are the ``uvicorn.Config`` arguments that
serve with it.
"""

from __future__ import annotations

import asyncio
import functools
import http
from collections.abc import Callable, Iterable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.security import SECURITY_HEADERS, error_json
from api.settings import LINGER_SECONDS, MAX_HEAD_BYTES, MAX_URL_BYTES, Settings


def uvicorn_options() -> dict[str, Any]:
    """Extra ``uvicorn.Config`` keyword arguments: the protocol that applies the limits above."""
    return {"http": EdgeProtocol}


@functools.cache
def _timeouts() -> tuple[float, float]:
    """HEAD_TIMEOUT and BODY_TIMEOUT, read once per process."""
    settings = Settings.from_env()
    return settings.head_timeout, settings.body_timeout


def refusal(status: int, detail: str, default_headers: Iterable[tuple[bytes, bytes]] = ()) -> bytes:
    """A complete HTTP/1.1 response with the JSON error shape that closes the connection."""
    body = error_json(status, detail)
    headers = [*default_headers, (b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode()), (b"connection", b"close"), *SECURITY_HEADERS.items()]
    status_line = f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}".encode()
    return b"\r\n".join([status_line, *(name + b": " + value for name, value in headers), b"", body])


class EdgeProtocol(HttpToolsProtocol):
    """One connection: uvicorn's httptools protocol with a bounded, timed request head and JSON refusals."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_timeout, self.body_timeout = _timeouts()
        self.url = b""
        self._head_bytes: int | None = 0  # bytes of the current request head so far; None once it is complete
        self._deadline: asyncio.TimerHandle | None = None  # the read timeout of the request being received
        self._refused = False  # an answer was sent: what arrives is discarded until the close

    # ------------------------------------------------------------------------------------------ asyncio events

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.head_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the parser no more of a request head than ``MAX_HEAD_BYTES``; refuse the head past that."""
        while data and not self._refused and not self.transport.is_closing():
            if self._head_bytes is None:  # a body (or the rest of a request the app answers)
                super().data_received(data)
                return
            room = MAX_HEAD_BYTES - self._head_bytes
            if room <= 0:
                self._refuse(431, f"The request head is too large (at most {MAX_HEAD_BYTES:,} bytes): send "
                                  "shorter headers; long questions go in a POST body.")
                return
            piece, data = data[:room], data[room:]
            self._head_bytes += len(piece)
            super().data_received(piece)

    # ------------------------------------------------------------------------------------------ parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # a keep-alive connection's next request: its head is timed from here
            self._arm(self.head_timeout, self._head_timed_out)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_URL_BYTES:
            raise ValueError("URL too long")  # stops the parser; send_400_response then answers 414

    def on_headers_complete(self) -> None:
        self._head_bytes = None
        self._disarm()
        super().on_headers_complete()
        self._arm(self.body_timeout, self._body_timed_out)

    def on_message_complete(self) -> None:
        self._head_bytes = 0
        self._disarm()
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        """What uvicorn calls when httptools cannot parse the request (or ``on_url`` stopped it)."""
        if len(self.url) > MAX_URL_BYTES:
            self._refuse(414, f"The URL is too long (at most {MAX_URL_BYTES:,} bytes): send long questions "
                              "in a POST body.")
        else:
            self._refuse(400, "The request is not valid HTTP/1.1 (a malformed request line or header, or a raw "
                              "control character such as NUL): percent-encode the URL.")

    # ------------------------------------------------------------------------------------------ timeouts, refusal

    def _head_timed_out(self) -> None:
        self._deadline = None
        if self._head_bytes:
            self._refuse(408, f"The request head took more than {self.head_timeout:g} s to arrive: send it "
                              "whole, at once.")
        else:  # nothing sent: an idle connection
            self.transport.close()

    def _body_timed_out(self) -> None:
        self._deadline = None
        self.transport.close()

    def _arm(self, seconds: float, callback: Callable[[], None]) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _refuse(self, status: int, detail: str) -> None:
        """Answer ``status`` and close, after a linger; mid-response (pipelining) just close."""
        self._disarm()
        self._refused = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()
            return
        self.transport.write(refusal(status, detail, self.server_state.default_headers))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.flow.resume_reading()
        self._deadline = self.loop.call_later(LINGER_SECONDS, self.transport.close)
