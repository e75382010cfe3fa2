"""Token verification rules every service relies on (RFC 8725; security.md J1–J8)."""

import base64
import json
import time

import httpx
import pytest
from fastapi import Depends, FastAPI
from joserfc import jwt
from joserfc.jwk import OctKey

from lanyard.runtime.errors import install_error_handlers
from lanyard.runtime.tokens import (
    ADMIN_AUDIENCE,
    SERVICES_AUDIENCE,
    HttpJwks,
    InvalidToken,
    KeysUnavailable,
    KnownEnterprises,
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


class FakeIdp:
    """The IdP's /e/{eid}/jwks for HttpJwks (a unit test: an httpx MockTransport, no network)."""

    def __init__(self, issuer: TestIssuer, known: set[str]) -> None:
        self.issuer = issuer
        self.known = known
        self.fetches: list[str] = []
        self.down = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        eid = request.url.path.split("/")[2]
        self.fetches.append(eid)
        if self.down:
            return httpx.Response(502)
        if eid not in self.known:
            return httpx.Response(404, json={"error": "not_found"})
        return httpx.Response(200, json=self.issuer.jwks(eid))


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def test_made_up_enterprise_ids_cannot_grow_the_key_cache(issuer):
    idp, clock = FakeIdp(issuer, {"e1"}), Clock()
    jwks = HttpJwks(BASE, max_enterprises=4, max_negative=8, negative_ttl_s=30, clock=clock,
                    transport=httpx.MockTransport(idp.handle))  # fmt: skip
    verifier = TokenVerifier(BASE, jwks)
    token = issuer.admin_token("e1", "u", "admin")
    assert (await verify(verifier, token))["sub"] == "u"
    for i in range(200):  # a token of e1 presented at made-up enterprises: their key sets are asked for
        with pytest.raises(InvalidToken, match="unknown kid"):
            await verify(verifier, token, eid=f"made-up-{i}")
    assert jwks.cached() == (1, 8)  # the real key set kept; "no keys" answers bounded apart from it
    assert len(verifier._parsed) == 1
    assert (await verify(verifier, token))["sub"] == "u" and idp.fetches.count("e1") == 1
    # "no keys" is remembered briefly: an enterprise created a moment later soon verifies.
    before = len(idp.fetches)
    with pytest.raises(InvalidToken):
        await verify(verifier, token, eid="made-up-199")
    assert len(idp.fetches) == before
    idp.known.add("made-up-199")
    clock.t += 31
    assert await verify(verifier, issuer.admin_token("made-up-199", "u", "admin"), eid="made-up-199")
    await jwks.aclose()


async def test_ids_that_are_no_path_segment_are_never_fetched(issuer):
    idp = FakeIdp(issuer, {"e1"})
    jwks = HttpJwks(BASE, transport=httpx.MockTransport(idp.handle))
    for eid in ("..", ".", "a/../../x", "", "x" * 200, "-a"):
        assert await jwks.jwks(eid) == {"keys": []}
    assert idp.fetches == []
    await jwks.aclose()


async def test_with_known_enterprises_no_key_set_is_looked_up_for_others(issuer):
    idp = FakeIdp(issuer, {"e1"})
    jwks = HttpJwks(BASE, transport=httpx.MockTransport(idp.handle))
    lookups: list[str] = []

    async def exists(eid: str) -> bool:
        lookups.append(eid)
        return eid == "e1"

    verifier = TokenVerifier(BASE, jwks, known=KnownEnterprises(exists))
    token = issuer.admin_token("e1", "u", "admin")
    for i in range(50):
        with pytest.raises(InvalidToken, match="unknown enterprise"):
            await verify(verifier, token, eid=f"x{i}")
    assert idp.fetches == [] and jwks.cached() == (0, 0)
    for _ in range(3):
        await verify(verifier, issuer.admin_token("e1", "u", "admin"))
    assert lookups.count("e1") == 1  # a yes is remembered
    await jwks.aclose()


async def test_an_unreachable_idp_is_503_not_401_and_known_keys_still_verify(issuer):
    idp, clock = FakeIdp(issuer, {"e1"}), Clock()
    jwks = HttpJwks(BASE, ttl_s=10, clock=clock, transport=httpx.MockTransport(idp.handle))
    verifier = TokenVerifier(BASE, jwks)
    await verify(verifier, issuer.admin_token("e1", "u", "admin"))
    idp.down, clock.t = True, clock.t + 60
    assert await verify(verifier, issuer.admin_token("e1", "u", "admin"))  # keys we already trust
    with pytest.raises(KeysUnavailable):
        await jwks.jwks("e2")
    app = FastAPI()
    install_error_handlers(app)
    guard = Depends(require_roles(lambda _request: verifier, "admin"))

    @app.get("/e/{enterprise_id}/thing")
    async def thing(principal=guard):
        return {}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        token = issuer.admin_token("e2", "u", "admin")
        r = await client.get("/e/e2/thing", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable" and r.headers["retry-after"]
    await jwks.aclose()
