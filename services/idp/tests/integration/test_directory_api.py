"""The directory side end to end, on the real Redis and Kafka: admin tokens and roles, users and
groups, app profiles and credentials, key rotation, the MDM export, the login page, the Locker
authn API, lockout, and org settings from lanyard.policy-config.v1."""

from __future__ import annotations

import base64
import plistlib

import pytest

from lanyard.contracts.events import OrgSettingsChanged, OrgSettingsChangedPayload
from lanyard.idp.directory.authn import Passwords
from lanyard.idp.directory.service import bootstrap
from lanyard.runtime.kafka import EventPublisher
from lanyard.runtime.testing import eventually
from lanyard.runtime.tokens import StaticJwks, TokenVerifier

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


async def test_admin_token_is_an_at_jwt_for_lanyard_admin(idp):
    r = await idp.token("root", idp.root_password)
    assert r.headers["cache-control"] == "no-store" and r.json()["expires_in"] == 900
    verifier = TokenVerifier(idp.base, StaticJwks({idp.eid: await idp.side.keys.jwks(idp.eid)}))
    claims = await verifier.verify(
        r.json()["access_token"], enterprise_id=idp.eid, audience="lanyard-admin", typ="at+jwt"
    )
    assert claims["roles"] == ["superadmin"] and claims["exp"] - claims["iat"] == 900
    assert (await idp.token("root", "wrong-password")).json()["error"] == "invalid_grant"
    assert (await idp.http.post(f"/e/{idp.eid}/admin/token", json={"username": "root"})).status_code == 400
    # Admin sign-ins, good and bad, reach the security office's record like any other.
    signed_in = await idp.probe.wait_for("oidc.user_authenticated.v1", channel="admin_api", user_id=claims["sub"])
    assert signed_in.payload.amr == ("pwd",)
    failed = await idp.probe.wait_for("oidc.authentication_failed.v1", channel="admin_api", username="root")
    assert failed.payload.factor == "password" and "wrong-password" not in failed.to_json().decode()
    nobody = await idp.http.get(f"/e/{idp.eid}/admin/users")
    assert nobody.status_code == 401 and nobody.headers["www-authenticate"].startswith("Bearer")
    other = await idp.http.get("/e/other/admin/users", headers=idp.auth(idp.root_token))
    assert other.status_code == 401  # one enterprise's token is never valid at another's


async def test_roles_superadmin_admin_auditor(idp):
    await idp.user("ann", roles=["admin"])
    await idp.user("aud", roles=["auditor"])
    await idp.user("plain")
    admin = (await idp.token("ann", "pa55word-long")).json()["access_token"]
    auditor = (await idp.token("aud", "pa55word-long")).json()["access_token"]
    assert (await idp.token("plain", "pa55word-long")).status_code == 403  # no admin role, no token

    for token in (admin, auditor):
        assert (await idp.http.get(f"/e/{idp.eid}/admin/app-profiles", headers=idp.auth(token))).status_code == 403
        r = await idp.http.post(
            f"/e/{idp.eid}/admin/app-profiles?template=epic-rover", headers=idp.auth(token), json={}
        )
        assert r.status_code == 403
    assert (await idp.http.get(f"/e/{idp.eid}/admin/users", headers=idp.auth(auditor))).status_code == 200
    r = await idp.http.post(
        f"/e/{idp.eid}/admin/users", headers=idp.auth(auditor), json={"username": "x", "display_name": "X"}
    )
    assert r.status_code == 403
    r = await idp.http.post(
        f"/e/{idp.eid}/admin/users", headers=idp.auth(admin), json={"username": "bob", "display_name": "Bob"}
    )
    assert r.status_code == 201
    r = await idp.http.post(
        f"/e/{idp.eid}/admin/users",
        headers=idp.auth(admin),
        json={"username": "evil", "display_name": "E", "roles": ["superadmin"]},
    )
    assert r.status_code == 403  # admins cannot mint superadmins


async def test_user_and_group_changes_are_published_without_secrets(idp):
    user = await idp.user("nina", email="nina@example.org", employee_id="E1", badge_id="B-77", groups=["icu"])
    event = await idp.probe.wait_for("directory.user_upserted.v1", user_id=user["user_id"])
    assert event.actor and event.payload.username == "nina" and event.payload.groups == ("icu",)
    secret = await idp.enroll(user["user_id"])
    await idp.probe.wait_for("directory.user_upserted.v1", user_id=user["user_id"], totp_enrolled=True)
    r = await idp.http.patch(
        f"/e/{idp.eid}/admin/users/{user['user_id']}", json={"display_name": "Nina N"}, headers=idp.auth(idp.root_token)
    )
    assert r.json()["display_name"] == "Nina N" and r.json()["totp_enrolled"]
    dup = await idp.http.post(
        f"/e/{idp.eid}/admin/users", json={"username": "NINA", "display_name": "x"}, headers=idp.auth(idp.root_token)
    )
    assert dup.status_code == 409
    g = await idp.http.post(f"/e/{idp.eid}/admin/groups", json={"name": "ICU"}, headers=idp.auth(idp.root_token))
    gid = g.json()["group_id"]
    await idp.probe.wait_for("directory.group_upserted.v1", group_id=gid)
    assert (
        await idp.http.delete(f"/e/{idp.eid}/admin/groups/{gid}", headers=idp.auth(idp.root_token))
    ).status_code == 204
    await idp.probe.wait_for("directory.group_deleted.v1", group_id=gid)
    r = await idp.http.delete(f"/e/{idp.eid}/admin/users/{user['user_id']}", headers=idp.auth(idp.root_token))
    assert r.status_code == 204
    await idp.probe.wait_for("directory.user_deleted.v1", user_id=user["user_id"])
    wire = b"".join(rec.value for rec in idp.probe.raw)
    assert b"argon2" not in wire and base64.b32encode(secret).rstrip(b"=") not in wire
    assert b"pa55word-long" not in wire
    bad = await idp.http.post(
        f"/e/{idp.eid}/admin/users",
        json={"username": "has space", "display_name": "x"},
        headers=idp.auth(idp.root_token),
    )
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_request"


async def test_app_profiles_template_credentials_once_rotation_metadata(idp):
    h = idp.auth(idp.root_token)
    tpl = (await idp.http.get(f"/e/{idp.eid}/admin/app-profiles/templates/epic-rover", headers=h)).json()
    assert tpl["profile_name"] == "Epic Rover" and tpl["display_name"] == "Rover"
    assert tpl["redirect_uris"] == ["com.epic.rover.oidc://callback", "https://mobile.epic.com/rover/OIDC/redirect/"]
    # The seed: "Click Generate Client credentials ... A Client ID and Client secret are created":
    # the template's default is confidential, and PKCE stays required.
    assert (tpl["client_type"], tpl["require_pkce"]) == ("confidential", True)
    choices = {c["client_type"]: c for c in tpl["client_type_choices"]}
    assert choices["confidential"]["default"] is True and choices["public"]["default"] is False
    assert "RFC 8252" in choices["public"]["reason"] and "Client secret" in choices["confidential"]["reason"]
    r = await idp.http.post(f"/e/{idp.eid}/admin/app-profiles?template=epic-rover", headers=h)
    assert r.status_code == 201, r.text
    rover = r.json()
    assert (rover["client_type"], rover["require_pkce"]) == ("confidential", True)
    assert rover["claims"][:2] == ["sub", "name"] and "PKCE" in rover["client_type_reason"]
    event = await idp.probe.wait_for("app_profile.upserted.v1", client_id=rover["client_id"], template="epic-rover")
    assert (event.payload.client_type, event.payload.require_pkce) == ("confidential", True)
    creds = await idp.http.post(f"/e/{idp.eid}/admin/app-profiles/{rover['client_id']}/credentials", headers=h)
    assert creds.status_code == 201 and creds.headers["cache-control"] == "no-store"
    assert (creds.json()["client_type"], creds.json()["pkce_required"]) == ("confidential", True)
    assert await idp.side.clients.verify_secret(idp.eid, rover["client_id"], creds.json()["client_secret"])
    # ... or public native (RFC 8252), with the reason shown: no secret, PKCE.
    r = await idp.http.post(
        f"/e/{idp.eid}/admin/app-profiles?template=epic-rover", json={"client_type": "public"}, headers=h
    )
    native = r.json()
    assert (r.status_code, native["client_type"], native["require_pkce"]) == (201, "public", True)
    assert "RFC 8252" in native["client_type_reason"]
    url = f"/e/{idp.eid}/admin/app-profiles/{native['client_id']}/credentials"
    creds = (await idp.http.post(url, headers=h)).json()
    assert "client_secret" not in creds and creds["client_type"] == "public" and "RFC 8252" in creds["reason"]
    await idp.http.delete(f"/e/{idp.eid}/admin/app-profiles/{native['client_id']}", headers=h)

    for bad in ("myapp://cb", "https://rp.example.org/cb#x", "https://*.example.org/cb", "http://example.org/cb"):
        body = {"profile_name": "X", "display_name": "X", "redirect_uris": [bad]}
        r = await idp.http.post(f"/e/{idp.eid}/admin/app-profiles", json=body, headers=h)
        assert (r.status_code, r.json()["error"]) == (400, "invalid_redirect_uri")
    assert len((await idp.http.get(f"/e/{idp.eid}/admin/app-profiles", headers=h)).json()["app_profiles"]) == 1

    body = {
        "profile_name": "Conformance RP",
        "display_name": "RP",
        "client_type": "confidential",
        "redirect_uris": ["https://rp.example.org/cb"],
        "backchannel_logout_uri": "https://rp.example.org/bcl",
        "custom_claims": [{"claim": "dept", "source": "department"}],
    }
    rp = (await idp.http.post(f"/e/{idp.eid}/admin/app-profiles", json=body, headers=h)).json()
    cid = rp["client_id"]
    first = await idp.http.post(f"/e/{idp.eid}/admin/app-profiles/{cid}/credentials", headers=h)
    assert first.status_code == 201 and first.headers["cache-control"] == "no-store"
    secret = first.json()["client_secret"]
    assert len(base64.urlsafe_b64decode(secret + "==")) == 32
    again = await idp.http.post(f"/e/{idp.eid}/admin/app-profiles/{cid}/credentials", headers=h)
    assert again.status_code == 409  # shown once
    shown = (await idp.http.get(f"/e/{idp.eid}/admin/app-profiles/{cid}", headers=h)).json()
    assert shown["has_secret"] and secret not in str(shown)
    assert await idp.side.clients.verify_secret(idp.eid, cid, secret)

    rot = await idp.http.post(
        f"/e/{idp.eid}/admin/app-profiles/{cid}/credentials/rotate", json={"grace_period_s": 300}, headers=h
    )
    new = rot.json()["client_secret"]
    assert await idp.side.clients.verify_secret(idp.eid, cid, new) and await idp.side.clients.verify_secret(
        idp.eid, cid, secret
    )
    await idp.probe.wait_for("app_profile.secret_rotated.v1", client_id=cid)
    rot = await idp.http.post(f"/e/{idp.eid}/admin/app-profiles/{cid}/credentials/rotate", headers=h)
    assert not await idp.side.clients.verify_secret(idp.eid, cid, new)  # no grace: the old one is dead

    meta = (await idp.http.get(f"/e/{idp.eid}/admin/app-profiles/{cid}/metadata", headers=h)).json()
    issuer = f"{idp.base}/e/{idp.eid}"
    assert meta["issuer"] == issuer and meta["discovery_url"] == f"{issuer}/.well-known/openid-configuration"
    assert meta["token_endpoint"] == f"{issuer}/token" and meta["end_session_endpoint"] == f"{issuer}/logout"
    assert {meta[k] for k in ("jwks_uri", "revocation_endpoint", "introspection_endpoint", "userinfo_endpoint")} == {
        f"{issuer}/jwks",
        f"{issuer}/revoke",
        f"{issuer}/introspect",
        f"{issuer}/userinfo",
    }

    r = await idp.http.patch(
        f"/e/{idp.eid}/admin/app-profiles/{cid}", json={"display_name": "RP 2", "enabled": False}, headers=h
    )
    assert r.json()["display_name"] == "RP 2" and not (await idp.side.clients.get(idp.eid, cid)).enabled
    assert (await idp.http.delete(f"/e/{idp.eid}/admin/app-profiles/{cid}", headers=h)).status_code == 204
    await idp.probe.wait_for("app_profile.deleted.v1", client_id=cid)
    assert (await idp.http.get(f"/e/{idp.eid}/admin/app-profiles/{cid}", headers=h)).status_code == 404
    wire = b"".join(rec.value for rec in idp.probe.raw)
    assert secret.encode() not in wire and new.encode() not in wire


async def test_app_profile_id_token_alg_registered_refused_and_reset(idp):
    h = idp.auth(idp.root_token)
    url = f"/e/{idp.eid}/admin/app-profiles"
    body = {"profile_name": "ES RP", "display_name": "ES RP", "redirect_uris": ["https://es.example.org/cb"]}
    plain = (await idp.http.post(url, json=body, headers=h)).json()
    assert plain["id_token_signed_response_alg"] is None  # absent: the IdP default (RS256)
    r = await idp.http.post(url, json={**body, "id_token_signed_response_alg": "ES256"}, headers=h)
    assert r.status_code == 201, r.text
    cid = r.json()["client_id"]
    assert r.json()["id_token_signed_response_alg"] == "ES256"
    assert (await idp.side.clients.get(idp.eid, cid)).id_token_signed_response_alg == "ES256"  # via the codec
    event = await idp.probe.wait_for("app_profile.upserted.v1", client_id=cid)
    assert event.payload.id_token_signed_response_alg == "ES256"

    before = (await idp.http.get(url, headers=h)).json()["app_profiles"]
    for bad in ("none", "HS256", "PS256", "es256", ""):
        r = await idp.http.post(url, json={**body, "id_token_signed_response_alg": bad}, headers=h)
        assert (r.status_code, r.json()["error"]) == (400, "invalid_client_metadata"), (bad, r.text)
        assert "RS256, ES256" in r.json()["error_description"]
        r = await idp.http.patch(f"{url}/{cid}", json={"id_token_signed_response_alg": bad}, headers=h)
        assert (r.status_code, r.json()["error"]) == (400, "invalid_client_metadata"), (bad, r.text)
    assert (await idp.http.get(url, headers=h)).json()["app_profiles"] == before  # nothing created or changed
    assert (await idp.side.clients.get(idp.eid, cid)).id_token_signed_response_alg == "ES256"

    # A PATCH leaving the field out keeps it; an explicit null returns the profile to the default.
    r = await idp.http.patch(f"{url}/{cid}", json={"display_name": "ES RP 2"}, headers=h)
    assert r.json()["id_token_signed_response_alg"] == "ES256"
    r = await idp.http.patch(f"{url}/{cid}", json={"id_token_signed_response_alg": None}, headers=h)
    assert r.status_code == 200 and r.json()["id_token_signed_response_alg"] is None
    assert (await idp.side.clients.get(idp.eid, cid)).id_token_signed_response_alg is None
    for c in (cid, plain["client_id"]):
        assert (await idp.http.delete(f"{url}/{c}", headers=h)).status_code == 204


async def test_key_rotation_publishes_next_before_use(idp):
    h = idp.auth(idp.root_token)
    before = await idp.side.keys.ring(idp.eid)
    nxt = {e.kid for e in before.entries if e.status == "next"}
    jwks_before = {k["kid"] for k in (await idp.side.keys.jwks(idp.eid))["keys"]}
    assert nxt <= jwks_before
    r = await idp.http.post(f"/e/{idp.eid}/admin/keys/rotate", headers=h)
    assert r.status_code == 200
    active = {e["kid"] for e in r.json()["keys"] if e["status"] == "active"}
    assert active == nxt
    # the token signed by the now-retired key keeps working until it expires
    assert (await idp.http.get(f"/e/{idp.eid}/admin/users", headers=h)).status_code == 200
    new_token = (await idp.token("root", idp.root_password)).json()["access_token"]
    header = base64.urlsafe_b64decode(new_token.split(".")[0] + "==")
    assert any(kid.encode() in header for kid in active)
    await idp.user("aa", roles=["admin"])
    admin = (await idp.token("aa", "pa55word-long")).json()["access_token"]
    assert (await idp.http.post(f"/e/{idp.eid}/admin/keys/rotate", headers=idp.auth(admin))).status_code == 403


async def test_mobileconfig_export(idp):
    r = await idp.http.get(f"/e/{idp.eid}/admin/sso-extension.mobileconfig", headers=idp.auth(idp.root_token))
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-apple-aspen-config")
    profile = plistlib.loads(r.content)
    assert profile["PayloadContent"][0]["URLs"] == [idp.base]  # the origin serves every enterprise
    assert b"dev.lanyard.locker.ssoextension" in r.content
    assert 'filename="lanyard-sso-127.0.0.1-8480.mobileconfig"' in r.headers["content-disposition"]
    assert "apple-app-site-association" in profile["PayloadDescription"]


async def test_login_page_password_then_totp_then_session(idp):
    user = await idp.user("lena")
    secret = await idp.enroll(user["user_id"])
    page = await idp.http.get(f"/e/{idp.eid}/login", params={"next": f"/e/{idp.eid}/authorize?x=1"})
    assert page.status_code == 200
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer" and page.headers["cache-control"] == "no-store"
    csrf = idp.csrf(page.text)

    no_csrf = await idp.http.post(f"/e/{idp.eid}/login", data={"username": "lena", "password": "pa55word-long"})
    assert no_csrf.status_code == 303 and "error=csrf" in no_csrf.headers["location"]
    assert "lanyard_session" not in idp.http.cookies

    form = {"username": "lena", "password": "wrong-pass", "csrf_token": csrf, "next": f"/e/{idp.eid}/authorize?x=1"}
    bad = await idp.http.post(f"/e/{idp.eid}/login", data=form)
    assert bad.status_code == 303 and "error=invalid" in bad.headers["location"]
    await idp.probe.wait_for("oidc.authentication_failed.v1", username="lena", factor="password")

    form["password"] = "pa55word-long"
    step1 = await idp.http.post(f"/e/{idp.eid}/login", data=form)
    assert step1.status_code == 303 and step1.headers["location"].startswith(f"/e/{idp.eid}/login/totp")
    totp_page = await idp.http.get(step1.headers["location"])
    assert totp_page.status_code == 200 and 'name="totp"' in totp_page.text
    wrong = await idp.http.post(f"/e/{idp.eid}/login/totp", data={"totp": "000000", "csrf_token": csrf})
    assert wrong.status_code == 303 and "error=invalid" in wrong.headers["location"]
    done = await idp.http.post(f"/e/{idp.eid}/login/totp", data={"totp": idp.code(secret), "csrf_token": csrf})
    assert done.status_code == 303 and done.headers["location"] == f"/e/{idp.eid}/authorize?x=1"
    set_cookie = done.headers["set-cookie"]
    assert "lanyard_session=" in set_cookie and "HttpOnly" in set_cookie
    assert "SameSite=lax" in set_cookie or "samesite=lax" in set_cookie.lower()
    assert f"Path=/e/{idp.eid}/" in set_cookie
    session = await idp.side.browser_sessions.get(idp.eid, idp.http.cookies.get("lanyard_session"))
    assert session.user_id == user["user_id"] and session.amr == ("pwd", "otp")
    event = await idp.probe.wait_for("oidc.user_authenticated.v1", user_id=user["user_id"], channel="login_page")
    assert event.payload.amr == ("pwd", "otp")
    failed = [e for e in idp.probe.events if e.type == "oidc.authentication_failed.v1"]
    assert failed and all("wrong-pass" not in e.to_json().decode() for e in failed)


async def test_login_in_one_post_and_never_an_open_redirect(idp):
    user = await idp.user("omar")
    secret = await idp.enroll(user["user_id"])
    csrf = idp.csrf((await idp.http.get(f"/e/{idp.eid}/login")).text)
    for i, evil in enumerate(("https://evil.example/", "//evil.example/x", "/e/other/authorize")):
        form = {"username": "omar", "password": "pa55word-long", "totp": idp.code(secret, i - 1), "csrf_token": csrf}
        r = await idp.http.post(f"/e/{idp.eid}/login", data=form | {"next": evil})
        assert r.status_code == 303 and r.headers["location"] == f"/e/{idp.eid}/login/done", evil
    assert (await idp.http.get(f"/e/{idp.eid}/login/done")).status_code == 200


async def test_locker_authn_checkout_assertion(idp):
    user = await idp.user("cara", badge_id="BADGE-1")
    url = f"/e/{idp.eid}/locker/authn"
    r = await idp.http.post(url, json={"device_id": "dev-1", "username": "cara", "password": "pa55word-long"})
    assert (r.status_code, r.json()["error"]) == (401, "second_factor_required")  # org default: required
    secret = await idp.enroll(user["user_id"])
    totp = idp.code(secret)
    r = await idp.http.post(
        url, json={"device_id": "dev-1", "username": "cara", "password": "pa55word-long", "totp": totp}
    )
    assert r.status_code == 200 and r.json()["expires_in"] <= 60
    verifier = TokenVerifier(idp.base, StaticJwks({idp.eid: await idp.side.keys.jwks(idp.eid)}))
    claims = await verifier.verify(
        r.json()["assertion"], enterprise_id=idp.eid, audience="lanyard-session", typ="checkout+jwt"
    )
    assert claims["sub"] == user["user_id"] and claims["amr"] == ["pwd", "otp"] and claims["device_id"] == "dev-1"
    assert claims["exp"] - claims["iat"] <= 60 and claims["jti"] and claims["auth_time"]
    await idp.probe.wait_for("oidc.user_authenticated.v1", user_id=user["user_id"], channel="locker")

    replay = await idp.http.post(
        url, json={"device_id": "dev-1", "username": "cara", "password": "pa55word-long", "totp": totp}
    )
    assert (replay.status_code, replay.json()["error"]) == (401, "invalid_grant")  # a TOTP step is single-use
    badge = await idp.http.post(
        url, json={"device_id": "dev-2", "badge_id": "BADGE-1", "totp": idp.code(secret, 1), "locker_version": "4.3.1"}
    )
    assert badge.status_code == 200
    # The Locker app reports its release on authn too; it is announced with the authentication.
    await idp.probe.wait_for("oidc.user_authenticated.v1", user_id=user["user_id"], client_version="4.3.1")
    badge_claims = await verifier.verify(
        badge.json()["assertion"], enterprise_id=idp.eid, audience="lanyard-session", typ="checkout+jwt"
    )
    assert badge_claims["amr"] == ["hwk", "otp"]
    assert (await idp.http.post(url, json={"device_id": "d"})).status_code == 400
    assert (await idp.http.post(url, json={"username": "cara"})).status_code == 400


async def test_lockout_after_five_failures(idp):
    await idp.user("dan")
    url = f"/e/{idp.eid}/locker/authn"
    wrong = {"device_id": "d", "username": "dan", "password": "not-it", "totp": "123456"}
    for _ in range(5):
        assert (await idp.http.post(url, json=wrong)).status_code == 401
    right = wrong | {"password": "pa55word-long"}
    locked = await idp.http.post(url, json=right)
    assert locked.status_code == 429 and locked.json()["error"] == "temporarily_locked"
    assert int(locked.headers["retry-after"]) > 800
    await idp.probe.wait_for("oidc.authentication_failed.v1", username="dan", locked_out=True)
    assert (await idp.token("dan", "pa55word-long")).status_code == 429  # every entrance is locked
    # an unknown username is treated the same way (no user enumeration)
    ghost = {"device_id": "d", "username": "ghost", "password": "x"}
    assert (await idp.http.post(url, json=ghost)).json()["error"] == "invalid_grant"


async def test_org_settings_from_policy_config(idp):
    side = idp.side
    await bootstrap(
        side.enterprises, side.keys, side.directory, Passwords(), side.outbox, "beta", "B", "broot", idp.root_password
    )
    root = (
        await idp.http.post("/e/beta/admin/token", data={"username": "broot", "password": idp.root_password})
    ).json()
    created = await idp.http.post(
        "/e/beta/admin/users",
        json={"username": "eve", "display_name": "Eve", "password": "pa55word-long"},
        headers=idp.auth(root["access_token"]),
    )
    assert created.status_code == 201
    url = "/e/beta/locker/authn"
    body = {"device_id": "d", "username": "eve", "password": "pa55word-long"}
    assert (await idp.http.post(url, json=body)).json()["error"] == "second_factor_required"
    publisher = EventPublisher(idp.app.state.runtime.broker)
    await publisher.publish(
        OrgSettingsChanged(
            enterprise_id="beta", producer="policy", payload=OrgSettingsChangedPayload(require_second_factor=False)
        )
    )

    async def allowed() -> bool:
        return (await idp.http.post(url, json=body)).status_code == 200

    await eventually(allowed, 20, what="org setting applied")
    claims = await TokenVerifier(idp.base, StaticJwks({"beta": await side.keys.jwks("beta")})).verify(
        (await idp.http.post(url, json=body)).json()["assertion"],
        enterprise_id="beta",
        audience="lanyard-session",
        typ="checkout+jwt",
    )
    assert claims["amr"] == ["pwd"]
    other = {"device_id": "d", "username": "root", "password": idp.root_password}
    assert (await idp.http.post(f"/e/{idp.eid}/locker/authn", json=other)).json()["error"] == "second_factor_required"


async def test_an_event_whose_first_publish_failed_reaches_the_bus_without_a_restart(idp):
    """The running IdP's outbox relay (`lanyard.runtime.outbox`, every `outbox_interval_s`)
    publishes an event the request path could not: before, it waited for the next start-up."""
    from lanyard.contracts.events import GroupUpserted, GroupUpsertedPayload
    from lanyard.idp.adapters.outbox import OutboxPublisher
    from lanyard.idp.directory.domain import Group

    class BrokerAway:
        async def publish(self, event):
            raise ConnectionError("broker away")

    side = idp.side
    group = Group(idp.eid, "g-outbox", "Night porters")
    event = GroupUpserted(
        enterprise_id=idp.eid, producer="idp", payload=GroupUpsertedPayload(group_id=group.group_id, name=group.name)
    )
    failing = OutboxPublisher(idp.app.state.runtime.redis, BrokerAway())
    await side.directory.save_group(group, event)  # stored with its event staged, as the API does
    with pytest.raises(ConnectionError):
        await failing.publish(event)  # the first publish fails; the admin call would answer 5xx
    seen = await idp.probe.wait_for("directory.group_upserted.v1", timeout=30, group_id=group.group_id)
    assert seen.event_id == event.event_id
