"""The bodies the routes read and write, besides a question's answer (``Prediction``, api/answers.py) and the
error shape (``ErrorBody``, api/errors.py): what a question is, ``BatchRequest``, ``BatchResponse``, ``Health``.

msgspec enforces every constraint written here while Litestar decodes a request; api/openapi.py adds to the
OpenAPI document those its generator leaves out.
"""

from typing import Annotated

import msgspec

from api.answers import Prediction
from api.settings import DEFAULT_TOP_K, MAX_BATCH, MAX_QUERY_CHARS, MAX_TOP_K

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
