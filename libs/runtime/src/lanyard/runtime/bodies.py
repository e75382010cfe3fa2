"""Reading request bodies at the front door, in every service: one bounded parser for JSON and forms.

Every body is refused with a clear 4xx before any service code sees it when it is

- larger than `BodyLimits.max_bytes` (413; checked against Content-Length first, then while reading,
  so a chunked body never lands in memory whole);
- not UTF-8, or (JSON) not JSON as RFC 8259 defines it: `NaN`/`Infinity` are refused, and so are
  lone surrogate escapes (`"\\ud800"`), which no store or log can encode;
- nested deeper than `BodyLimits.max_depth` — measured before parsing, because Python's parser
  (and every recursive walk after it: pydantic, the JSON encoder) raises RecursionError on a deep
  enough document, which would otherwise escape as a 500 to an unauthenticated caller;
- repeating a key (a JSON object member or a form field): which copy wins differs between parsers,
  so a repeated key is refused rather than guessed at (RFC 6749 §3.1 says so for OAuth parameters);
- (forms) carrying more than `BodyLimits.max_fields` fields.

FastAPI parses the bodies of pydantic-model routes itself; routes built with `BoundedRoute` hand it a
`BoundedRequest`, whose `body()` and `json()` are this module's, so those bodies take the same path.
Routes that read their own body call `read_bytes`, `read_json`, `read_form` or `read_object`, and
`validated` for a model (its errors answer exactly like FastAPI's own).
Refusals are `BodyRefused`, an HTTPException whose detail is the documented error shape.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException

M = TypeVar("M", bound=BaseModel)
JSON_TYPES = ("application/json",)
FORM_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class BodyLimits:
    """How much a body may be: bytes, JSON nesting depth, form fields."""

    max_bytes: int = 64 * 1024
    max_depth: int = 32
    max_fields: int = 256


DEFAULT_LIMITS = BodyLimits()


class BodyRefused(HTTPException):
    """A body refused before parsing finished; `detail` is `{"error", "error_description"}`.

    An HTTPException so FastAPI's own body reading lets it through unchanged (it turns any other
    exception into a generic 400), and every service's error handler renders it as it is."""

    def __init__(self, description: str, status_code: int = 400) -> None:
        super().__init__(status_code, {"error": "invalid_request", "error_description": description})
        self.description = description


# ----------------------------------------------------------------------------- bytes


async def read_bytes(request: Request, max_bytes: int = DEFAULT_LIMITS.max_bytes) -> bytes:
    """The body, refused with 413 once it exceeds `max_bytes` (declared or actually sent)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BodyRefused("Content-Length is not a number")
        if int(declared) > max_bytes:
            raise BodyRefused(f"the body is larger than {max_bytes} bytes", 413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BodyRefused(f"the body is larger than {max_bytes} bytes", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyRefused("the body is not UTF-8") from None


# ------------------------------------------------------------------------------ JSON

# A JSON string token (RFC 8259 §7), unrolled so long strings cost one pass and no backtracking.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SAFE_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in `text`, brackets inside strings not counted.

    Exact for valid JSON; for invalid JSON it is at least the depth the parser would reach before
    failing (the parser reads the same string tokens from the left), so a document this calls
    shallow can never make the parser recurse deeper. The counting runs in C (regex, accumulate)."""
    brackets = _NOT_BRACKETS.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets), initial=0))


def _refuse_constant(name: str) -> Any:
    raise BodyRefused(f"{name} is not JSON")


def _repeated(pairs: list[tuple[str, Any]]) -> str:
    """How to name the first repeated key in a message: quoted when it is a plain identifier
    (a name the client chose, never a value), else nothing."""
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            return f" '{key}'" if _SAFE_KEY.fullmatch(key) else ""
        seen.add(key)
    return ""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise BodyRefused(f"a JSON object repeats the key{_repeated(pairs)}")
    return obj


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def parse_json(raw: bytes | str, limits: BodyLimits = DEFAULT_LIMITS) -> Any:
    """A JSON document within `limits`; raises BodyRefused (400) naming the rule it broke."""
    text = _text(raw) if isinstance(raw, bytes) else raw
    if len(text) > limits.max_bytes:
        raise BodyRefused(f"the body is larger than {limits.max_bytes} bytes", 413)
    if json_depth(text) > limits.max_depth:
        raise BodyRefused(f"JSON nested deeper than {limits.max_depth} levels")
    try:
        value = json.loads(text, object_pairs_hook=_object, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):  # RecursionError: belt and braces; the depth check comes first
        raise BodyRefused("malformed JSON") from None
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        raise BodyRefused("JSON with an unpaired surrogate escape (\\ud800-\\udfff)")
    return value


# ------------------------------------------------------------------------------ forms


def parse_form(raw: bytes | str, limits: BodyLimits = DEFAULT_LIMITS) -> list[tuple[str, str]]:
    """The fields of an `application/x-www-form-urlencoded` body, in order, repeats kept (the
    caller decides; `read_form` refuses them). Percent-escapes must decode to UTF-8."""
    text = _text(raw) if isinstance(raw, bytes) else raw
    try:
        return parse_qsl(text, keep_blank_values=True, max_num_fields=limits.max_fields, errors="strict")
    except UnicodeDecodeError:
        raise BodyRefused("a form field is not UTF-8 once percent-decoded") from None
    except ValueError:
        raise BodyRefused(f"more than {limits.max_fields} form fields") from None


def unique_fields(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """The fields as a dict; refuses a field sent twice."""
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise BodyRefused(f"a form field is repeated{_repeated(pairs)}")
    return fields


# ----------------------------------------------------------------------------- requests


def media_type(request: Request) -> str:
    """The request's media type, lower case, without parameters."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def is_json(content_type: str) -> bool:
    """True for `application/json` and `application/*+json`."""
    return content_type in JSON_TYPES or (content_type.startswith("application/") and content_type.endswith("+json"))


async def read_json(request: Request, limits: BodyLimits = DEFAULT_LIMITS) -> Any:
    """The request's JSON body (whatever its content type says), within `limits`."""
    return parse_json(await _body(request, limits), limits)


async def read_form(request: Request, limits: BodyLimits = DEFAULT_LIMITS) -> dict[str, str]:
    """The request's form fields, each sent once, within `limits`."""
    return unique_fields(parse_form(await _body(request, limits), limits))


async def read_object(request: Request, limits: BodyLimits = DEFAULT_LIMITS) -> dict[str, Any]:
    """A JSON object or a form, by Content-Type; anything else is refused."""
    kind = media_type(request)
    if is_json(kind):
        body = await read_json(request, limits)
        if not isinstance(body, dict):
            raise BodyRefused("expected a JSON object")
        return body
    if kind == FORM_TYPE:
        return await read_form(request, limits)
    raise BodyRefused(f"send {FORM_TYPE} or application/json")


async def _body(request: Request, limits: BodyLimits) -> bytes:
    if isinstance(request, BoundedRequest):
        return await request.body()
    return await read_bytes(request, limits.max_bytes)


class BoundedRequest(Request):
    """The Request FastAPI's body reading sees on `BoundedRoute` routes: bounded `body()`, and
    `json()` through `parse_json`. Both are read once and kept (the idempotency fingerprint and
    the handler read the same bytes)."""

    limits: BodyLimits = DEFAULT_LIMITS

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            self._body = await read_bytes(self, self.limits.max_bytes)
        return self._body

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body(), self.limits)
        return self._json


class BoundedRoute(APIRoute):
    """An APIRoute whose handler reads the body through `BoundedRequest`. Every service's
    FastAPI routers use it (`APIRouter(route_class=BoundedRoute)`)."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            return await handler(BoundedRequest(request.scope, request.receive))

        return bounded


BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def unbounded_routes(app: Any) -> list[str]:
    """The FastAPI routes of `app` that take a body and would parse it without these limits (each
    service's tests assert there are none)."""
    return [
        f"{sorted(r.methods or ())} {r.path}"
        for r in app.routes
        if isinstance(r, APIRoute) and not isinstance(r, BoundedRoute) and BODY_METHODS & set(r.methods or ())
    ]


def validated(model: type[M], data: Any) -> M:
    """`data` (a body a route read itself) as `model`; a violation is a RequestValidationError with
    the same `body.<field>` locations FastAPI gives, so it answers like any other bad body."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None
