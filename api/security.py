"""Security at the edge of the app: requests with malformed paths or oversized headers are refused with the
JSON error shape before routing, and every response carries the security headers.

The page at ``/`` gets a strict Content-Security-Policy (its own script and stylesheet only); the Swagger
page under ``/schema`` gets one that also allows the inline styles Swagger UI sets on its elements.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.settings import MAX_HEADER_BYTES

_COMMON = "default-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
PAGE_CSP = f"{_COMMON}; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'"
SWAGGER_CSP = (f"{_COMMON}; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
               "connect-src 'self'")
SECURITY_HEADERS = {
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"x-frame-options": b"DENY",
    b"cross-origin-opener-policy": b"same-origin",
    b"cross-origin-resource-policy": b"same-origin",
}
SCHEMA_PREFIX = "/schema"


def content_security_policy(path: str) -> str:
    return SWAGGER_CSP if path == SCHEMA_PREFIX or path.startswith(SCHEMA_PREFIX + "/") else PAGE_CSP


def path_problem(scope: Scope) -> str | None:
    """Why the request's path cannot be served (invalid UTF-8, control characters), or None."""
    raw = (scope.get("raw_path") or scope.get("path", "").encode("utf-8", "surrogateescape")).split(b"?", 1)[0]
    try:
        decoded = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return "The URL path is not valid UTF-8 once percent-decoded."
    if any(unicodedata.category(c) == "Cc" for c in decoded + scope.get("path", "")):
        return "The URL path contains control characters (NUL, newline...)."
    return None


def header_bytes(scope: Scope) -> int:
    return sum(len(name) + len(value) for name, value in scope.get("headers", ()))


def error_json(status: int, detail: str) -> bytes:
    """The app's JSON error shape (``ErrorBody`` without a field), for answers written without the app."""
    return json.dumps({"status_code": status, "detail": detail}).encode()


async def send_error(send: Send, status: int, detail: str) -> None:
    """The app's JSON error shape, written without the app (the request never reached it)."""
    body = error_json(status, detail)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware: refuses bad paths (400) and oversized headers (431), adds the security headers, and
    answers OPTIONS with every method of the route (``allowed_methods(path_template)``)."""

    def __init__(self, app: ASGIApp, allowed_methods: Callable[[str], set[str]]) -> None:
        self.app = app
        self.allowed_methods = allowed_methods

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = content_security_policy(scope.get("path", "")).encode()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", ())}
                extra = [(n, v) for n, v in SECURITY_HEADERS.items() if n not in names]
                if b"content-security-policy" not in names:
                    extra.append((b"content-security-policy", csp))
                headers = [*message.get("headers", ()), *extra]
                if scope.get("method") == "OPTIONS" and message["status"] == 204 and "path_template" in scope:
                    allow = ", ".join(sorted(self.allowed_methods(scope["path_template"])))
                    headers = [(n, v) for n, v in headers if n.lower() != b"allow"] + [(b"allow", allow.encode())]
                message = {**message, "headers": headers}
            await send(message)

        if header_bytes(scope) > MAX_HEADER_BYTES:
            await send_error(send_with_headers, 431,
                             f"The request headers are too large (at most {MAX_HEADER_BYTES:,} bytes in all).")
        elif problem := path_problem(scope):
            await send_error(send_with_headers, 400, problem)
        else:
            await self.app(scope, receive, send_with_headers)
