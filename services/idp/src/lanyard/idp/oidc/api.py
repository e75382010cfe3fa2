"""The OIDC routes of every enterprise, under `/e/{enterprise_id}`.

`oidc_router(provider)` is what `create_app` mounts. An unknown enterprise is a 404 JSON
answer on every route. `/authorize` answers OPTIONS with 405 and no CORS headers (RFC 9700 §2.6).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response

from lanyard.idp.oidc import authorize, discovery, introspection, logout, revocation, token, userinfo
from lanyard.idp.oidc.service import OidcProvider, UnknownEnterprise
from lanyard.runtime.errors import error_response


async def _run(answer: Awaitable[Response]) -> Response:
    try:
        return await answer
    except UnknownEnterprise:
        return error_response(404, "not_found", "unknown enterprise")


def oidc_router(provider: OidcProvider) -> APIRouter:
    """Discovery, JWKS, authorize (+ resume), token, userinfo, revoke, introspect, logout.

    Plain Starlette routes (`add_route`), not FastAPI's: these endpoints parse their own input by
    the OAuth rules, so FastAPI's dependency and validation layer would only add cost to the
    hottest paths (token, introspection, authorize)."""
    router = APIRouter(include_in_schema=False)

    def route(path: str, answer: Callable[..., Awaitable[Response]], methods: list[str]) -> None:
        async def endpoint(request: Request) -> Response:
            params = dict(request.path_params)
            enterprise_id = params.pop("enterprise_id")
            return await _run(answer(provider, request, enterprise_id, *params.values()))

        # Starlette routes do not take the router's prefix, so the enterprise's is spelled here.
        router.add_route("/e/{enterprise_id}" + path, endpoint, methods=methods, include_in_schema=False)

    route("/.well-known/openid-configuration", _without_request(discovery.openid_configuration), ["GET"])
    route("/jwks", _without_request(discovery.jwks), ["GET"])
    route("/authorize", authorize.authorize, ["GET", "POST"])
    route("/authorize/resume/{interaction_id}", authorize.resume, ["GET"])
    route("/token", token.token, ["GET", "POST"])
    route("/userinfo", userinfo.userinfo, ["GET", "POST"])
    route("/revoke", revocation.revoke, ["POST"])
    route("/introspect", introspection.introspect, ["POST"])
    route("/logout", logout.logout, ["GET", "POST"])
    return router


def _without_request(answer: Callable[[OidcProvider, str], Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
    """Adapt a handler that needs only the enterprise (discovery, JWKS) to the route signature."""

    def adapted(provider: OidcProvider, request: Request, eid: str) -> Awaitable[Response]:
        return answer(provider, eid)

    return adapted
