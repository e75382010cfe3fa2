"""The rest of the seed on the IdP, on the real Redis and Kafka: Web App Login Configuration
(RP-supplied credentials), a confidential Epic Rover that still needs PKCE, the vendor's services
principals and their tokens, and the enterprise ids reserved for their realm."""

from __future__ import annotations

import uuid
from urllib.parse import unquote_plus

import pytest

from lanyard.contracts import topics
from lanyard.idp.directory.authn import Passwords
from lanyard.idp.directory.domain import Invalid
from lanyard.idp.directory.service import bootstrap
from lanyard.runtime.testing import TopicProbe
from lanyard.runtime.tokens import InvalidToken, StaticJwks, TokenVerifier

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

# ------------------------------------------------------------- Web App Login Configuration

RP_SECRET = "Zq8-Vx3_kLm9Pw2Rt7Yb4Nc6Hd1Jf5Gs0Ae-TuQ"  # as an RP's generator makes them (40 chars)


async def _token_endpoint_authenticates(idp, client_id: str, secret: str) -> bool:
    """True when the token endpoint accepts the client's credentials (the bogus code then fails)."""
    r = await idp.http.post(
        f"/e/{idp.eid}/token", data={"grant_type": "authorization_code", "code": "nope", "redirect_uri": "x"},
        auth=(client_id, secret),
    )  # fmt: skip
    return r.json()["error"] == "invalid_grant"


async def test_web_app_login_registers_rp_supplied_credentials_stored_only_as_a_hash(idp):
    h = idp.auth(idp.root_token)
    body = {
        "client_id": "epic-prod.rover-01",
        "client_secret": RP_SECRET,
        "profile_name": "Epic (RP's own credentials)",
        "display_name": "Epic",
        "redirect_uris": ["https://epic.example.org/oidc/cb", "com.epic.rover.oidc://callback"],
        "backchannel_logout_uri": "https://epic.example.org/oidc/bcl",
    }
    r = await idp.http.post(f"/e/{idp.eid}/admin/web-app-logins", json=body, headers=h)
    assert r.status_code == 201, r.text
    out = r.json()
    assert (out["client_id"], out["client_type"], out["credentials_source"], out["has_secret"]) == (
        "epic-prod.rover-01", "confidential", "rp_supplied", True)  # fmt: skip
    assert out["claims"] == ["sub", "name", "preferred_username", "email", "employee_id", "groups"]  # as generated
    assert (
        out["metadata"]["issuer"] == f"{idp.base}/e/{idp.eid}" and out["metadata"]["client_id"] == "epic-prod.rover-01"
    )
    assert RP_SECRET not in r.text and r.headers["cache-control"] == "no-store"
    event = await idp.probe.wait_for("app_profile.upserted.v1", client_id="epic-prod.rover-01")
    assert event.payload.credentials_source == "rp_supplied" and event.actor.startswith("usr_")
    assert RP_SECRET not in str([e.model_dump() for e in idp.probe.events])
    stored = await idp.side.clients.get_profile(idp.eid, "epic-prod.rover-01")
    assert stored.has_secret and RP_SECRET not in repr(stored)
    assert await _token_endpoint_authenticates(idp, "epic-prod.rover-01", RP_SECRET)
    assert not await _token_endpoint_authenticates(idp, "epic-prod.rover-01", RP_SECRET[:-1] + "x")

    # "View and copy Imprivata (IdP) OpenID Connect metadata" for it; never the secret again.
    meta = (await idp.http.get(f"/e/{idp.eid}/admin/app-profiles/epic-prod.rover-01/metadata", headers=h)).json()
    assert meta["token_endpoint"] == f"{idp.base}/e/{idp.eid}/token"
    shown = await idp.http.get(f"/e/{idp.eid}/admin/app-profiles/epic-prod.rover-01", headers=h)
    assert RP_SECRET not in shown.text
    again = await idp.http.post(f"/e/{idp.eid}/admin/app-profiles/epic-prod.rover-01/credentials", headers=h)
    assert (again.status_code, again.json()["error"]) == (400, "rp_supplied_credentials")
    rotate = await idp.http.post(f"/e/{idp.eid}/admin/app-profiles/epic-prod.rover-01/credentials/rotate", headers=h)
    assert (rotate.status_code, rotate.json()["error"]) == (400, "rp_supplied_credentials")

    # The RP rotated its secret: the admin enters the new one; the old one works for the grace.
    new_secret = "Nw4_Hq7-Lp2Xz9Kc5Vb8Mt3Rd6Fg1Sj0Yu-EoPi"
    r = await idp.http.put(f"/e/{idp.eid}/admin/web-app-logins/epic-prod.rover-01/secret",
                           json={"client_secret": new_secret, "grace_period_s": 60}, headers=h)  # fmt: skip
    assert r.status_code == 200 and new_secret not in r.text
    await idp.probe.wait_for("app_profile.secret_rotated.v1", client_id="epic-prod.rover-01")
    assert await _token_endpoint_authenticates(idp, "epic-prod.rover-01", new_secret)
    assert await _token_endpoint_authenticates(idp, "epic-prod.rover-01", RP_SECRET)


@pytest.mark.parametrize(
    ("change", "status", "error", "words"),
    [
        ({"client_id": "epic-prod.rover-01"}, 409, "conflict", "already registered"),
        ({"client_secret": "short-but-sweet"}, 400, "weak_client_secret", "too short"),
        ({"client_secret": "ab" * 20}, 400, "weak_client_secret", "too repetitive"),
        ({"client_secret": "a secret with spaces in it, 40 chars long!"}, 400, "weak_client_secret", "printable"),
        ({"client_id": "taken-id", "client_secret": "taken-id" + RP_SECRET}, 400, "weak_client_secret", "client id"),
        ({"client_id": "bad:id"}, 400, "invalid_client_id", "no ':'"),
        ({"client_id": "lanyard-console"}, 400, "invalid_client_id", "reserved"),
        ({"client_id": "cli_copycat"}, 400, "invalid_client_id", "reserved"),
        ({"redirect_uris": ["http://evil.example.org/cb"]}, 400, "invalid_redirect_uri", "loopback"),
        ({"id_token_signed_response_alg": "HS256"}, 400, "invalid_client_metadata", "RS256, ES256"),
    ],
)
async def test_web_app_login_refusals_say_why_and_change_nothing(idp, change, status, error, words):
    h = idp.auth(idp.root_token)
    base = {"client_id": "epic-prod.rover-01", "client_secret": RP_SECRET, "profile_name": "P", "display_name": "P",
            "redirect_uris": ["https://epic.example.org/oidc/cb"]}  # fmt: skip
    if change.get("client_id") == "epic-prod.rover-01" and not await idp.side.clients.get_profile(
        idp.eid, base["client_id"]
    ):
        assert (await idp.http.post(f"/e/{idp.eid}/admin/web-app-logins", json=base, headers=h)).status_code == 201
    before = len((await idp.http.get(f"/e/{idp.eid}/admin/app-profiles", headers=h)).json()["app_profiles"])
    body = {**base, "client_id": f"rp-{uuid.uuid4().hex[:8]}", **change}
    r = await idp.http.post(f"/e/{idp.eid}/admin/web-app-logins", json=body, headers=h)
    assert (r.status_code, r.json()["error"]) == (status, error), r.text
    assert words in r.json()["error_description"]
    assert body["client_secret"] not in r.text
    assert len((await idp.http.get(f"/e/{idp.eid}/admin/app-profiles", headers=h)).json()["app_profiles"]) == before


async def test_web_app_login_is_for_the_superadmin_only(idp):
    admin = await idp.user("wanda", roles=["admin"])
    token = (await idp.token("wanda", "pa55word-long")).json()["access_token"]
    body = {"client_id": "rp-by-admin", "client_secret": RP_SECRET, "profile_name": "P", "display_name": "P",
            "redirect_uris": ["https://epic.example.org/oidc/cb"]}  # fmt: skip
    r = await idp.http.post(f"/e/{idp.eid}/admin/web-app-logins", json=body, headers=idp.auth(token))
    assert r.status_code == 403 and admin["user_id"]
    generated = (await idp.http.post(f"/e/{idp.eid}/admin/app-profiles", headers=idp.auth(idp.root_token), json={
        "profile_name": "G", "display_name": "G", "client_type": "confidential",
        "redirect_uris": ["https://g.example.org/cb"]})).json()  # fmt: skip
    r = await idp.http.put(f"/e/{idp.eid}/admin/web-app-logins/{generated['client_id']}/secret",
                           json={"client_secret": RP_SECRET}, headers=idp.auth(idp.root_token))  # fmt: skip
    assert (r.status_code, r.json()["error"]) == (400, "generated_credentials")


async def test_a_confidential_rover_still_needs_pkce(idp):
    h = idp.auth(idp.root_token)
    rover = (await idp.http.post(f"/e/{idp.eid}/admin/app-profiles?template=epic-rover", headers=h)).json()
    query = {"response_type": "code", "client_id": rover["client_id"], "redirect_uri": "com.epic.rover.oidc://callback",
             "scope": "openid", "state": "s"}  # fmt: skip
    r = await idp.http.get(f"/e/{idp.eid}/authorize", params=query, follow_redirects=False)
    assert r.status_code in (302, 303)
    assert "error=invalid_request" in r.headers["location"] and "PKCE" in unquote_plus(r.headers["location"])


# ---------------------------------------------------------------- services principals


async def test_a_services_principal_gets_a_services_token_and_every_attempt_is_announced(idp, kafka_bootstrap):
    realm = idp.app.state.services_realm
    probe = await TopicProbe(kafka_bootstrap, topics.DIRECTORY, topics.OIDC_EVENTS).start()
    try:
        record, secret = await realm.create("Imprivata Services (J. Doe)", ("establish_trust", "read"), "operator:t")
        issued = await probe.wait_for("directory.services_principal_changed.v1", principal_id=record.principal_id)
        assert (issued.enterprise_id, issued.actor, issued.payload.status) == ("_services", "operator:t", "active")
        assert secret not in str([e.model_dump() for e in probe.events])

        r = await idp.http.post("/idp/services/token", data={"grant_type": "client_credentials"},
                                auth=(record.principal_id, secret))  # fmt: skip
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        body = r.json()
        assert (body["token_type"], body["scope"]) == ("Bearer", "establish_trust read")
        jwks = (await idp.http.get("/idp/services/jwks")).json()
        verifier = TokenVerifier.for_services(idp.base, StaticJwks({"_services": jwks}))
        claims = await verifier.verify(body["access_token"], enterprise_id="_services", audience="lanyard-services",
                                       typ="at+jwt")  # fmt: skip
        assert (claims["sub"], claims["iss"], claims["scope"]) == (record.principal_id, f"{idp.base}/idp/services",
                                                                   "establish_trust read")  # fmt: skip
        # Never an admin token of any enterprise.
        admin_verifier = TokenVerifier(idp.base, StaticJwks({idp.eid: await idp.side.keys.jwks(idp.eid)}))
        with pytest.raises(InvalidToken):
            await admin_verifier.verify(
                body["access_token"], enterprise_id=idp.eid, audience="lanyard-admin", typ="at+jwt"
            )
        await probe.wait_for("oidc.user_authenticated.v1", user_id=record.principal_id, channel="services_api")

        narrow = await idp.http.post("/idp/services/token", data={
            "grant_type": "client_credentials", "client_id": record.principal_id, "client_secret": secret,
            "scope": "read"})  # fmt: skip
        assert narrow.json()["scope"] == "read"

        # Refusals: a wrong secret (announced), another grant, a scope it does not hold, no credentials.
        wrong = await idp.http.post("/idp/services/token", data={"grant_type": "client_credentials"},
                                    auth=(record.principal_id, secret + "x"))  # fmt: skip
        assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
        failed = await probe.wait_for("oidc.authentication_failed.v1", username=record.principal_id)
        assert (failed.enterprise_id, failed.payload.channel, failed.payload.factor) == (
            "_services", "services_api", "client_secret")  # fmt: skip
        grant = await idp.http.post("/idp/services/token", data={"grant_type": "password"},
                                    auth=(record.principal_id, secret))  # fmt: skip
        assert (grant.status_code, grant.json()["error"]) == (400, "unsupported_grant_type")
        scope = await idp.http.post("/idp/services/token", data={"grant_type": "client_credentials", "scope": "admin"},
                                    auth=(record.principal_id, secret))  # fmt: skip
        assert (scope.status_code, scope.json()["error"]) == (400, "invalid_scope")
        bare = await idp.http.post("/idp/services/token", data={"grant_type": "client_credentials"})
        assert bare.status_code == 401 and bare.headers["www-authenticate"].startswith("Basic")

        await realm.revoke(record.principal_id, "operator:t")
        await probe.wait_for("directory.services_principal_changed.v1", principal_id=record.principal_id,
                             status="revoked")  # fmt: skip
        gone = await idp.http.post("/idp/services/token", data={"grant_type": "client_credentials"},
                                   auth=(record.principal_id, secret))  # fmt: skip
        assert gone.status_code == 401
    finally:
        await probe.stop()


async def test_enterprise_ids_of_the_services_realm_are_reserved(idp):
    side = idp.side
    with pytest.raises(Invalid, match="reserved"):
        await bootstrap(side.enterprises, side.keys, side.directory, Passwords(), side.outbox, "_services", "X", "r",
                        idp.root_password)  # fmt: skip
    assert (await idp.http.post("/e/_services/admin/token", data={"username": "r", "password": "x"})).status_code == 404
