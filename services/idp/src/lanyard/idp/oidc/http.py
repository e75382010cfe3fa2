"""Request parsing and response shapes shared by the endpoints.

Parameters are parsed from the raw query string or form body (not Starlette's dict views) so a
repeated parameter is visible: RFC 6749 §3.1/§3.2 say request parameters MUST NOT be included
more than once. Parameters sent without a value count as omitted (RFC 6749 §3.1). Bodies and query
strings go through the shared bounded parser (`lanyard.runtime.bodies`): size, field count, UTF-8.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from lanyard.idp.oidc.errors import OAuthError, invalid_request
from lanyard.idp.web import NO_STORE, PAGE_HEADERS
from lanyard.runtime.bodies import BodyLimits, BodyRefused, parse_form, read_bytes

FORM = "application/x-www-form-urlencoded"
FORM_LIMITS = BodyLimits(max_bytes=16 * 1024, max_depth=8, max_fields=100)
"""Direct endpoints' forms (token, revocation, introspection, UserInfo, logout); the `claims`
request parameter's JSON keeps to the same depth."""


@dataclass
class Params:
    """Single-valued request parameters, plus the names that came more than once."""

    values: dict[str, str] = field(default_factory=dict)
    repeated: set[str] = field(default_factory=set)

    def get(self, name: str) -> str | None:
        """The value of a parameter sent exactly once (None if absent or repeated)."""
        return None if name in self.repeated else self.values.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self.values


def parse_params(raw: str | bytes, limits: BodyLimits = FORM_LIMITS) -> Params:
    """Parse `a=1&b=2` keeping repeats visible and dropping empty values; raises BodyRefused."""
    out = Params()
    for name, value in parse_form(raw, limits):
        if value == "":
            continue
        if name in out.values:
            out.repeated.add(name)
        else:
            out.values[name] = value
    return out


def is_form(request: Request) -> bool:
    """True when the body is `application/x-www-form-urlencoded` (parameters allowed)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == FORM


async def form_params(request: Request, limits: BodyLimits = FORM_LIMITS) -> Params:
    """The parameters of a form POST; a body the shared parser refuses (too large, not UTF-8, too
    many fields) raises invalid_request naming the rule."""
    try:
        return parse_params(await read_bytes(request, limits.max_bytes), limits)
    except BodyRefused as refused:
        raise invalid_request(refused.description) from None


def json_error(err: OAuthError, extra_headers: dict[str, str] | None = None) -> JSONResponse:
    """A direct error response (RFC 6749 §5.2), never cached."""
    return JSONResponse(
        err.body(), status_code=err.status_code, headers={**NO_STORE, **err.headers, **(extra_headers or {})}
    )


def json_ok(body: dict[str, Any]) -> JSONResponse:
    """A direct success response, never cached (RFC 6749 §5.1)."""
    return JSONResponse(body, headers=NO_STORE)


def with_query(uri: str, params: dict[str, str]) -> str:
    """`uri` with `params` appended to its query (registered URIs never carry a fragment)."""
    sep = "&" if "?" in uri else "?"
    return uri + sep + urlencode(params)


def redirect(uri: str) -> RedirectResponse:
    """A 303 (never 307: RFC 9700 §4.12), uncached, leaking no referrer."""
    return RedirectResponse(uri, status_code=303, headers={**NO_STORE, "Referrer-Policy": "no-referrer"})


def html_page(title: str, message: str, status_code: int = 200, body_extra: str = "") -> HTMLResponse:
    """A minimal server-rendered page: not frameable, no third-party resources, escaped text."""
    doc = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(title)}</title><meta name=viewport content='width=device-width'></head>"
        f"<body><main><h1>{escape(title)}</h1><p>{escape(message)}</p>{body_extra}</main></body></html>"
    )
    return HTMLResponse(doc, status_code=status_code, headers=PAGE_HEADERS)
