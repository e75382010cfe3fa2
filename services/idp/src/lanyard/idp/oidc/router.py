"""The OIDC routes of every enterprise, under `/e/{enterprise_id}`.

`oidc_router(provider)` is what `create_app` mounts. An unknown enterprise is a 404 JSON
answer on every route. `/authorize` answers OPTIONS with 405 and no CORS headers (RFC 9700 §2.6).
"""

from __future__ import annotations

from collections.abc import Awaitable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from lanyard.idp.oidc import authorize, discovery, introspection, logout, revocation, token, userinfo
from lanyard.idp.oidc.provider import OidcProvider, UnknownEnterprise


async def _run(answer: Awaitable[Response]) -> Response:
    try:
        return await answer
    except UnknownEnterprise:
        return JSONResponse({"error": "not_found", "error_description": "unknown enterprise"}, 404)


def oidc_router(provider: OidcProvider) -> APIRouter:
    """Discovery, JWKS, authorize (+ resume), token, userinfo, revoke, introspect, logout."""
    router = APIRouter(prefix="/e/{enterprise_id}", include_in_schema=False)

    async def config(request: Request, enterprise_id: str) -> Response:
        return await _run(discovery.openid_configuration(provider, enterprise_id))

    async def keys(request: Request, enterprise_id: str) -> Response:
        return await _run(discovery.jwks(provider, enterprise_id))

    async def authz(request: Request, enterprise_id: str) -> Response:
        return await _run(authorize.authorize(provider, request, enterprise_id))

    async def resume(request: Request, enterprise_id: str, interaction_id: str) -> Response:
        return await _run(authorize.resume(provider, request, enterprise_id, interaction_id))

    async def tok(request: Request, enterprise_id: str) -> Response:
        return await _run(token.token(provider, request, enterprise_id))

    async def info(request: Request, enterprise_id: str) -> Response:
        return await _run(userinfo.userinfo(provider, request, enterprise_id))

    async def rev(request: Request, enterprise_id: str) -> Response:
        return await _run(revocation.revoke(provider, request, enterprise_id))

    async def intro(request: Request, enterprise_id: str) -> Response:
        return await _run(introspection.introspect(provider, request, enterprise_id))

    async def out(request: Request, enterprise_id: str) -> Response:
        return await _run(logout.logout(provider, request, enterprise_id))

    router.add_api_route("/.well-known/openid-configuration", config, methods=["GET"])
    router.add_api_route("/jwks", keys, methods=["GET"])
    router.add_api_route("/authorize", authz, methods=["GET", "POST"])
    router.add_api_route("/authorize/resume/{interaction_id}", resume, methods=["GET"])
    router.add_api_route("/token", tok, methods=["GET", "POST"])
    router.add_api_route("/userinfo", info, methods=["GET", "POST"])
    router.add_api_route("/revoke", rev, methods=["POST"])
    router.add_api_route("/introspect", intro, methods=["POST"])
    router.add_api_route("/logout", out, methods=["GET", "POST"])
    return router
