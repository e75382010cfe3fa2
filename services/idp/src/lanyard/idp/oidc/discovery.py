"""OpenID Provider metadata (OIDC Discovery 1.0 / RFC 8414) and the JWKS.

The metadata advertises exactly what the endpoints do: code flow only, S256 only, no request
objects, RS256/ES256 signatures, the iss response parameter (RFC 9207), RP-initiated and
back-channel logout. Every URL derives from the configured issuer, never from request headers.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from lanyard.idp.oidc.domain import SCOPES_SUPPORTED, claims_supported
from lanyard.idp.oidc.service import OidcProvider
from lanyard.idp.web import endpoints

ACR_MFA = "urn:lanyard:acr:mfa"
ACR_1FA = "urn:lanyard:acr:1fa"
SIGNING_ALGS = ["RS256", "ES256"]


def metadata(provider: OidcProvider, eid: str) -> dict[str, Any]:
    """The discovery document of one enterprise."""
    iss = provider.issuer(eid)
    return {
        "issuer": iss,
        **endpoints(iss),
        "scopes_supported": list(SCOPES_SUPPORTED),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": SIGNING_ALGS,
        "userinfo_signing_alg_values_supported": SIGNING_ALGS,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": claims_supported(),
        "claims_parameter_supported": True,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "require_request_uri_registration": False,
        "acr_values_supported": [ACR_MFA, ACR_1FA],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "display_values_supported": ["page", "popup", "touch", "wap"],
        "claim_types_supported": ["normal"],
        "ui_locales_supported": ["en"],
        "claims_locales_supported": ["en"],
        "authorization_response_iss_parameter_supported": True,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": False,
    }


async def openid_configuration(provider: OidcProvider, eid: str) -> JSONResponse:
    """GET /.well-known/openid-configuration (CORS allowed: metadata is public)."""
    await provider.enterprise(eid)
    return JSONResponse(
        metadata(provider, eid), headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"}
    )


async def jwks(provider: OidcProvider, eid: str) -> JSONResponse:
    """GET /jwks: active, next and retired-but-unexpired public keys, each with its `kid`."""
    await provider.enterprise(eid)
    body = await provider.ports.keys.jwks(eid)
    return JSONResponse(body, headers={"Cache-Control": "public, max-age=60", "Access-Control-Allow-Origin": "*"})
