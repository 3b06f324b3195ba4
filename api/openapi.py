"""What the OpenAPI document (``/schema``) says beyond what Litestar generates from the routes.

``error_responses``: the documented errors of a route, all with the one error shape (api/errors.py).
``complete_openapi``: what the generator leaves out of ``BatchRequest`` (the constraints on each question,
``additionalProperties: false``: msgspec enforces both) and Retry-After on 429 and 503.
"""

from __future__ import annotations

from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPI, OpenAPIHeader, OpenAPIType, Schema

from api.errors import ErrorBody
from api.schemas import NOT_BLANK
from api.settings import MAX_BATCH, MAX_BODY_BYTES, MAX_HEAD_BYTES, MAX_HEADER_BYTES, MAX_QUERY_CHARS, MAX_URL_BYTES

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")  # a PathItem's operations
ERRORS = {
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


def error_responses(*codes: int) -> dict[int, ResponseSpec]:
    """The documented error responses of a route, all with the JSON error shape."""
    return {code: ResponseSpec(data_container=ErrorBody, description=ERRORS[code], generate_examples=False)
            for code in codes}


def complete_openapi(openapi: OpenAPI) -> None:
    """Add to the app's document (``Litestar.openapi_schema``, before it is first served) what its generator leaves
    out of ``BatchRequest`` and the Retry-After header of every 429 and 503."""
    batch = openapi.components.schemas["BatchRequest"]
    batch.additional_properties = False
    batch.properties["queries"].items = Schema(type=OpenAPIType.STRING, min_length=1, max_length=MAX_QUERY_CHARS,
                                               pattern=NOT_BLANK)
    retry_after = OpenAPIHeader(schema=Schema(type=OpenAPIType.INTEGER, minimum=0),
                                description="Seconds to wait before retrying")
    for path in (openapi.paths or {}).values():
        for operation in filter(None, (getattr(path, method) for method in METHODS)):
            for code in ("429", "503"):
                if code in (operation.responses or {}):
                    response = operation.responses[code]
                    response.headers = {**(response.headers or {}), "Retry-After": retry_after}

