"""Token verification rules every service relies on (RFC 8725; security.md J1–J8)."""

import base64
import json
import time

import httpx
import pytest
from fastapi import Depends, FastAPI
from joserfc import jwt
from joserfc.jwk import OctKey

from lanyard.runtime.tokens import (
    ADMIN_AUDIENCE,
    SERVICES_AUDIENCE,
    InvalidToken,
    TestIssuer,
    TokenVerifier,
    issuer_for,
    require_roles,
    require_roles_or_services,
    services_issuer,
)

BASE = "https://gw.example"


@pytest.fixture
def issuer():
    return TestIssuer(BASE)


@pytest.fixture
def verifier(issuer):
    return TokenVerifier(BASE, issuer.static_jwks())


def b64(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


async def verify(verifier, token, eid="e1"):
    return await verifier.verify(token, enterprise_id=eid, audience=ADMIN_AUDIENCE, typ="at+jwt")


async def test_valid_admin_token(issuer, verifier):
    claims = await verify(verifier, issuer.admin_token("e1", "u1", "admin"))
    assert claims["sub"] == "u1" and claims["iss"] == issuer_for(BASE, "e1")


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_both_pinned_algorithms_verify(issuer, verifier, alg):
    token = issuer.sign("e1", {"sub": "u", "aud": ADMIN_AUDIENCE}, "at+jwt", alg=alg)
    assert (await verify(verifier, token))["sub"] == "u"


async def test_j1_alg_none_is_rejected(issuer, verifier):
    kid = issuer.jwks("e1")["keys"][0]["kid"]
    now = int(time.time())
    body = {"iss": issuer_for(BASE, "e1"), "sub": "u", "aud": ADMIN_AUDIENCE, "iat": now, "exp": now + 60}
    token = f"{b64({'alg': 'none', 'typ': 'at+jwt', 'kid': kid})}.{b64(body)}.x"
    with pytest.raises(InvalidToken, match="algorithm"):
        await verify(verifier, token)


async def test_j2_rs_to_hs_confusion_is_rejected(issuer, verifier):
    rsa = next(k for k in issuer.jwks("e1")["keys"] if k["kty"] == "RSA")
    secret = OctKey.import_key(json.dumps(rsa).encode())
    now = int(time.time())
    body = {"iss": issuer_for(BASE, "e1"), "sub": "u", "aud": ADMIN_AUDIENCE, "iat": now, "exp": now + 60}
    token = jwt.encode({"alg": "HS256", "typ": "at+jwt", "kid": rsa["kid"]}, body, secret)
    with pytest.raises(InvalidToken, match="algorithm"):
        await verify(verifier, token)


async def test_j3_unknown_kid_and_j4_key_carrying_headers(issuer, verifier):
    now = int(time.time())
    body = {"sub": "u", "aud": ADMIN_AUDIENCE, "iat": now, "exp": now + 60}
    token = issuer.sign("e1", body, "at+jwt")
    header, rest = token.split(".", 1)
    hdr = json.loads(base64.urlsafe_b64decode(header + "=="))
    with pytest.raises(InvalidToken, match="unknown kid"):
        await verify(verifier, b64({**hdr, "kid": "../../etc/passwd"}) + "." + rest)
    with pytest.raises(InvalidToken, match="key-carrying"):
        await verify(verifier, b64({**hdr, "jku": "https://evil/jwks"}) + "." + rest)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"aud": "someone-else"}, "wrong audience"),
        ({"exp": int(time.time()) - 120}, "expired"),
        ({"iat": int(time.time()) + 3600}, "future"),
        ({"iss": "https://evil/e/e1"}, "wrong issuer"),
    ],
)
async def test_j8_claims_are_checked(issuer, verifier, change, reason):
    token = issuer.sign("e1", {"sub": "u", "aud": ADMIN_AUDIENCE, **change}, "at+jwt")
    with pytest.raises(InvalidToken, match=reason):
        await verify(verifier, token)


async def test_token_substitution_by_typ(issuer, verifier):
    id_token = issuer.sign("e1", {"sub": "u", "aud": ADMIN_AUDIENCE}, "JWT")
    with pytest.raises(InvalidToken, match="typ"):
        await verify(verifier, id_token)


async def test_one_enterprises_token_is_not_valid_at_another(issuer, verifier):
    with pytest.raises(InvalidToken):
        await verify(verifier, issuer.admin_token("e1", "u", "superadmin"), eid="e2")


async def test_tampered_payload_and_oversized_tokens(issuer, verifier):
    token = issuer.admin_token("e1", "u", "admin")
    h, _, s = token.split(".")
    forged = b64({"iss": issuer_for(BASE, "e1"), "sub": "root", "aud": ADMIN_AUDIENCE, "roles": ["superadmin"]})
    with pytest.raises(InvalidToken, match="signature"):
        await verify(verifier, f"{h}.{forged}.{s}")
    with pytest.raises(InvalidToken, match="malformed"):
        await verify(verifier, "a" * 20000 + ".b.c")


async def test_require_roles_gives_401_and_403(issuer, verifier):
    app = FastAPI()
    guard = require_roles(lambda _request: verifier, "superadmin")

    @app.get("/e/{enterprise_id}/thing")
    async def thing(principal=Depends(guard)):
        return {"user": principal.user_id}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        missing = await client.get("/e/e1/thing")
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        bad = await client.get("/e/e1/thing", headers={"Authorization": "Bearer x.y.z"})
        assert bad.status_code == 401 and "invalid_token" in bad.headers["www-authenticate"]
        admin_token = issuer.admin_token("e1", "u", "admin")
        admin = await client.get("/e/e1/thing", headers={"Authorization": f"Bearer {admin_token}"})
        assert admin.status_code == 403
        super_token = issuer.admin_token("e1", "u", "superadmin")
        ok = await client.get("/e/e1/thing", headers={"Authorization": f"Bearer {super_token}"})
        assert ok.json() == {"user": "u"}


async def test_services_tokens_are_accepted_only_where_their_scope_is_and_never_as_admin_tokens(issuer, verifier):
    services = TokenVerifier.for_services(BASE, issuer.static_jwks())
    app = FastAPI()
    read = require_roles_or_services(lambda _r: verifier, lambda _r: services, ("auditor",), "read")
    trust = require_roles_or_services(lambda _r: verifier, lambda _r: services, ("superadmin",), "establish_trust")
    admin_only = require_roles_or_services(lambda _r: verifier, lambda _r: services, ("superadmin",), None)

    @app.get("/e/{enterprise_id}/read")
    async def r(principal=Depends(read)):
        return {"actor": principal.user_id}

    @app.get("/e/{enterprise_id}/trust")
    async def t(principal=Depends(trust)):
        return {"actor": principal.user_id}

    @app.get("/e/{enterprise_id}/admin")
    async def a(principal=Depends(admin_only)):
        return {"actor": principal.user_id}

    legacy_guard = require_roles(lambda _r: verifier, "superadmin")

    @app.get("/e/{enterprise_id}/legacy")
    async def legacy(principal=Depends(legacy_guard)):
        return {"actor": principal.user_id}

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    svc = issuer.services_token("svc_1")
    read_only = issuer.services_token("svc_2", "read")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.get("/e/any-hospital/read", headers=bearer(svc))).json() == {"actor": "services:svc_1"}
        assert (await client.get("/e/any-hospital/trust", headers=bearer(svc))).json() == {"actor": "services:svc_1"}
        denied = await client.get("/e/e1/trust", headers=bearer(read_only))
        assert (denied.status_code, denied.json()["detail"]["error"]) == (403, "insufficient_scope")
        assert (await client.get("/e/e1/admin", headers=bearer(svc))).status_code == 403
        # An enterprise admin keeps the role rules; a services token is no admin token anywhere.
        auditor = issuer.admin_token("e1", "u1", "auditor")
        assert (await client.get("/e/e1/read", headers=bearer(auditor))).json() == {"actor": "u1"}
        assert (await client.get("/e/e1/trust", headers=bearer(auditor))).status_code == 403
        assert (await client.get("/e/e1/legacy", headers=bearer(svc))).status_code == 401
        # Claiming the services issuer with an enterprise key (or the reverse) fails verification.
        forged = issuer.sign("e1", {"iss": services_issuer(BASE), "sub": "x", "aud": SERVICES_AUDIENCE,
                                    "scope": "read establish_trust"}, "at+jwt")  # fmt: skip
        assert (await client.get("/e/e1/trust", headers=bearer(forged))).status_code == 401
        wrong_aud = issuer.sign("_services", {"iss": services_issuer(BASE), "sub": "x", "aud": ADMIN_AUDIENCE,
                                              "scope": "read"}, "at+jwt")  # fmt: skip
        assert (await client.get("/e/e1/read", headers=bearer(wrong_aud))).status_code == 401
