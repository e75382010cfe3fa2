"""The IdP's front door as a hostile client and a retrying one see it (issue 12): every body bounded,
every error in the documented shape without the submitted value, free text normalised, a pending
login that keeps the app's authorization request through its expiry, and Idempotency-Key on every
state-changing POST."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlsplit

import pytest

from lanyard.idp.directory.authn import Passwords
from lanyard.idp.directory.domain import Invalid
from lanyard.idp.directory.service import bootstrap
from lanyard.runtime.bodies import unbounded_routes

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

JSON = {"content-type": "application/json"}


def nested(depth: int) -> bytes:
    """`{"a":[[…]]}`: objects would cost 5 bytes a level, arrays 2 (deep and still under 64 KiB)."""
    return b'{"a":' + b"[" * depth + b"]" * depth + b"}"


def assert_error(r, status: int, error: str = "invalid_request") -> str:
    """The documented shape, exactly: returns the description."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "error_description"} and body["error"] == error, body
    return body["error_description"]


async def test_deep_nesting_repeated_keys_and_oversized_bodies_are_400_or_413_never_500(idp):
    e = idp.eid
    assert unbounded_routes(idp.app) == []  # every route that takes a body reads it through the bounded parser
    for path, headers in (
        (f"/e/{e}/admin/token", {}),  # read by the route itself, unauthenticated
        (f"/e/{e}/locker/authn", {}),  # parsed by FastAPI for its model, unauthenticated
        (f"/e/{e}/admin/users", {}),
        (f"/e/{e}/admin/app-profiles", idp.auth()),
    ):
        r = await idp.http.post(path, content=nested(20_000), headers={**JSON, **headers})
        assert "nested deeper" in assert_error(r, 400), path
        r = await idp.http.post(path, content=b'{"a":' * 20_000, headers={**JSON, **headers})
        assert_error(r, 413)  # the 20,000 objects deep: over the size limit before anything else
        r = await idp.http.post(path, content=nested(900), headers={**JSON, **headers})
        assert "nested deeper" in assert_error(r, 400), path  # below the recursion limit, still refused
        r = await idp.http.post(path, content=b"[" * 70_000, headers={**JSON, **headers})
        assert_error(r, 413)
    twice = b'{"username": "root", "password": "x", "username": "admin"}'
    r = await idp.http.post(f"/e/{e}/admin/token", content=twice, headers=JSON)
    assert "repeats the key 'username'" in assert_error(r, 400)
    form = {"content-type": "application/x-www-form-urlencoded"}
    r = await idp.http.post(f"/e/{e}/admin/token", content=b"username=root&username=x&password=y", headers=form)
    assert "repeated 'username'" in assert_error(r, 400)
    r = await idp.http.post(f"/e/{e}/admin/token", content='{"password": NaN}', headers=JSON)
    assert "NaN is not JSON" in assert_error(r, 400)
    r = await idp.http.post(f"/e/{e}/admin/token", content=b'{"username": "\\ud800", "password": "x"}', headers=JSON)
    assert "surrogate" in assert_error(r, 400)
    r = await idp.http.post(f"/e/{e}/admin/token", content=b"\xff\xfe", headers=JSON)
    assert "not UTF-8" in assert_error(r, 400)


async def test_validation_errors_name_field_and_rule_never_the_value(idp):
    e = idp.eid
    r = await idp.http.post(
        f"/e/{e}/admin/users",
        json={"username": "shorty", "display_name": "S", "password": "s3cr3t!"},
        headers=idp.auth(),
    )
    text = assert_error(r, 400)
    assert "body.password" in text and "at least 8 characters" in text and "s3cr3t!" not in r.text
    long_password = "p" + secrets.token_hex(700)
    r = await idp.http.post(
        f"/e/{e}/locker/authn", json={"device_id": "d", "username": "cara", "password": long_password}
    )
    assert "body.password" in assert_error(r, 400) and long_password not in r.text
    totp_seed = base64.b32encode(secrets.token_bytes(20)).decode()
    r = await idp.http.post(
        f"/e/{e}/locker/authn", json={"device_id": "d", "username": "u", "password": "p", "totp_seed": totp_seed}
    )
    text = assert_error(r, 400)
    assert "body.totp_seed" in text and "Extra inputs are not permitted" in text and totp_seed not in r.text
    r = await idp.http.post(
        f"/e/{e}/admin/users", json={"username": "has space", "display_name": "x"}, headers=idp.auth()
    )
    assert "body.username" in assert_error(r, 400) and "has space" not in r.text
    r = await idp.http.post(f"/e/{e}/admin/app-profiles?template={'x' * 100}", headers=idp.auth())
    assert "query.template" in assert_error(r, 400) and "x" * 100 not in r.text
    profile = {
        "profile_name": "P",
        "display_name": "P",
        "redirect_uris": ["https://rp.example/cb", "https://rp.example/cb#tok3n"],
    }
    r = await idp.http.post(f"/e/{e}/admin/app-profiles", json=profile, headers=idp.auth())
    text = assert_error(r, 400, "invalid_redirect_uri")
    assert text == "redirect_uris[1]: fragments are not allowed" and "tok3n" not in r.text
    r = await idp.http.post(f"/e/{e}/admin/app-profiles", json={**profile, "redirect_uris": "x"}, headers=idp.auth())
    assert "body.redirect_uris" in assert_error(r, 400)  # read by the route itself: the same 400, not a 500


async def test_401_and_404_answer_in_the_documented_shape(idp):
    e = idp.eid
    r = await idp.http.get(f"/e/{e}/admin/users")
    assert_error(r, 401, "unauthorized")
    assert r.headers["www-authenticate"] == "Bearer"
    r = await idp.http.get(f"/e/{e}/admin/users", headers={"Authorization": "Bearer not.a.token"})
    assert assert_error(r, 401, "invalid_token") == "malformed"
    assert r.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert_error(await idp.http.get(f"/e/{e}/admin/no-such-route", headers=idp.auth()), 404, "not_found")
    assert_error(await idp.http.put(f"/e/{e}/admin/users", headers=idp.auth()), 405, "method_not_allowed")


async def test_free_text_is_normalised_and_control_characters_are_refused_with_the_field_named(idp):
    e, h = idp.eid, idp.auth()
    made = await idp.user("nela", display_name="  Ne\u0301la Nurse \n", attributes={"ward": " O\u0308R "})
    assert made["display_name"] == "N\u00e9la Nurse" and made["attributes"] == {"ward": "\u00d6R"}
    for field, value in (
        ("display_name", "Nurse\x00Joy"),
        ("display_name", "Joy\x1b[31m"),
        ("display_name", "\u202eyoJ"),
        ("employee_id", "E\r\n1"),
        ("email", "a\x07@example.org"),
    ):
        r = await idp.http.post(
            f"/e/{e}/admin/users", json={"username": f"u-{field}", "display_name": "X", field: value}, headers=h
        )
        assert f"body.{field}" in assert_error(r, 400), (field, value)
    r = await idp.http.post(
        f"/e/{e}/admin/users", json={"username": "attr", "display_name": "A", "attributes": {"k": "v\x00"}}, headers=h
    )
    assert "body.attributes" in assert_error(r, 400)
    r = await idp.http.patch(f"/e/{e}/admin/users/{made['user_id']}", json={"display_name": "\x00"}, headers=h)
    assert "body.display_name" in assert_error(r, 400)
    assert "body.name" in assert_error(
        await idp.http.post(f"/e/{e}/admin/groups", json={"name": "ICU\x00"}, headers=h), 400
    )
    r = await idp.http.post(
        f"/e/{e}/admin/app-profiles", json={"profile_name": "P", "display_name": "Rover\u202e", "redirect_uris": ["x"]},
        headers=h,
    )  # fmt: skip
    assert "body.display_name" in assert_error(r, 400)
    # Unauthenticated names end up in oidc.authentication_failed events: refused before any lookup.
    r = await idp.http.post(f"/e/{e}/locker/authn", json={"device_id": "d", "username": "root\x00", "password": "x"})
    assert "body.username" in assert_error(r, 400)
    r = await idp.http.post(f"/e/{e}/admin/token", data={"username": "root\x1b", "password": "x"})
    assert "username" in assert_error(r, 400)
    side = idp.side
    for name, admin in (("St Mungo\x00s", "root"), ("St Mungo's", "ro ot")):
        with pytest.raises(Invalid):
            await bootstrap(side.enterprises, side.keys, side.directory, Passwords(), side.outbox, "mungo", name,
                            admin, idp.root_password)  # fmt: skip
    assert await side.enterprises.get("mungo") is None


def _query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def test_an_expired_pending_login_restarts_with_the_authorization_request_kept(idp):
    e, h = idp.eid, idp.auth()
    user = await idp.user("tess")
    secret = await idp.enroll(user["user_id"])
    rover = (await idp.http.post(f"/e/{e}/admin/app-profiles?template=epic-rover", headers=h)).json()
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    authz = {"response_type": "code", "client_id": rover["client_id"], "redirect_uri": rover["redirect_uris"][0],
             "scope": "openid", "state": "s1", "code_challenge": challenge,
             "code_challenge_method": "S256"}  # fmt: skip
    r = await idp.http.get(f"/e/{e}/authorize", params=authz)
    assert r.status_code == 303
    next_path = _query(r.headers["location"])["next"]
    assert next_path.startswith(f"/e/{e}/authorize/resume/")
    page = await idp.http.get(r.headers["location"])
    csrf = idp.csrf(page.text)
    step1 = await idp.http.post(
        f"/e/{e}/login", data={"username": "tess", "password": "pa55word-long", "csrf_token": csrf, "next": next_path}
    )
    assert step1.headers["location"].startswith(f"/e/{e}/login/totp")
    totp_page = await idp.http.get(step1.headers["location"])
    assert f'name="next" value="{next_path}"' in totp_page.text
    # 300 s later: the pending login has expired in Redis and its cookie in the browser.
    await idp.side.pending_logins.drop(e, idp.http.cookies.get("lanyard_pending"))
    idp.http.cookies.delete("lanyard_pending")
    late = await idp.http.post(
        f"/e/{e}/login/totp", data={"totp": idp.code(secret), "csrf_token": csrf, "next": next_path}
    )
    assert late.status_code == 303 and _query(late.headers["location"]) == {"next": next_path, "error": "expired"}
    restart = await idp.http.get(late.headers["location"])
    assert "took too long" in restart.text and f'name="next" value="{next_path}"' in restart.text
    again = await idp.http.post(
        f"/e/{e}/login",
        data={"username": "tess", "password": "pa55word-long", "totp": idp.code(secret), "csrf_token": csrf,
              "next": next_path},
    )  # fmt: skip
    assert again.status_code == 303 and again.headers["location"] == next_path
    done = await idp.http.get(next_path)
    assert done.status_code == 303 and done.headers["location"].startswith(rover["redirect_uris"][0])
    assert "code" in _query(done.headers["location"]) and _query(done.headers["location"])["state"] == "s1"


async def test_next_only_ever_points_at_our_authorization_endpoint(idp):
    e = idp.eid
    for evil in ("https://evil.example/", f"/e/{e}/logout?x=1", f"/e/{e}/admin/users", f"/e/{e}/login/done",
                 f"/e/{e}/authorize/resume/../../x", f"/e/{e}/authorize/resume/a/b"):  # fmt: skip
        r = await idp.http.post(f"/e/{e}/login/totp", data={"totp": "123456", "csrf_token": "c", "next": evil})
        assert r.status_code == 303 and "next" not in _query(r.headers["location"]), evil
        page = await idp.http.get(f"/e/{e}/login", params={"next": evil})
        assert 'name="next" value=""' in page.text, evil


async def test_idempotency_key_replays_admin_posts_instead_of_running_them_twice(idp):
    e, h = idp.eid, idp.auth()

    async def twice(path: str, key: str, **kw):
        first = await idp.http.post(path, headers={**h, "Idempotency-Key": key}, **kw)
        again = await idp.http.post(path, headers={**h, "Idempotency-Key": key}, **kw)
        assert again.headers.get("idempotent-replayed") == "true", (path, again.text)
        assert (again.status_code, again.content) == (first.status_code, first.content)
        return first

    profile = {"profile_name": "Idem RP", "display_name": "RP", "client_type": "confidential",
               "redirect_uris": ["https://rp.example.org/cb"]}  # fmt: skip
    made = await twice(f"/e/{e}/admin/app-profiles", "profile-1", json=profile)
    assert made.status_code == 201
    listed = (await idp.http.get(f"/e/{e}/admin/app-profiles", headers=h)).json()["app_profiles"]
    assert [p["client_id"] for p in listed if p["profile_name"] == "Idem RP"] == [made.json()["client_id"]]
    other = await idp.http.post(
        f"/e/{e}/admin/app-profiles",
        json={**profile, "display_name": "Other"},
        headers={**h, "Idempotency-Key": "profile-1"},
    )
    assert_error(other, 422, "idempotency_key_reused")
    cid = made.json()["client_id"]
    creds = await twice(f"/e/{e}/admin/app-profiles/{cid}/credentials", "creds-1")
    assert creds.status_code == 201 and creds.headers["cache-control"] == "no-store"
    assert await idp.side.clients.verify_secret(e, cid, creds.json()["client_secret"])  # the replayed one works
    rotated = await twice(f"/e/{e}/admin/app-profiles/{cid}/credentials/rotate", "rot-1")
    assert await idp.side.clients.verify_secret(e, cid, rotated.json()["client_secret"])
    before = (await idp.side.keys.ring(e)).version
    await twice(f"/e/{e}/admin/keys/rotate", "keys-1")
    assert (await idp.side.keys.ring(e)).version == before + 1  # rotated once, not twice
    user = await twice(
        f"/e/{e}/admin/users", "user-1", json={"username": "idem", "display_name": "Idem", "password": "pa55word-long"}
    )
    enrolled = await twice(f"/e/{e}/admin/users/{user.json()['user_id']}/totp", "totp-1")
    seed = enrolled.json()["secret"]
    group = await twice(f"/e/{e}/admin/groups", "group-1", json={"name": "Idem group"})
    groups = (await idp.http.get(f"/e/{e}/admin/groups", headers=h)).json()["groups"]
    assert [g["group_id"] for g in groups if g["name"] == "Idem group"] == [group.json()["group_id"]]
    # The Locker app retrying its sign-in gets the same assertion, although the TOTP step was spent.
    totp = idp.code(base64.b32decode(seed + "=" * (-len(seed) % 8)))
    authn = {"device_id": "dev-9", "username": "idem", "password": "pa55word-long", "totp": totp}
    first = await idp.http.post(f"/e/{e}/locker/authn", json=authn, headers={"Idempotency-Key": "authn-1"})
    retry = await idp.http.post(f"/e/{e}/locker/authn", json=authn, headers={"Idempotency-Key": "authn-1"})
    assert first.status_code == 200 and retry.json() == first.json() and retry.headers["idempotent-replayed"] == "true"
    # Another admin's request with the same key is its own request, never the first one's answer.
    await idp.user("adm2", roles=["superadmin"])
    other_admin = (await idp.token("adm2", "pa55word-long")).json()["access_token"]
    r = await idp.http.post(
        f"/e/{e}/admin/groups",
        json={"name": "Idem group"},
        headers={**idp.auth(other_admin), "Idempotency-Key": "group-1"},
    )
    assert r.status_code == 201 and "idempotent-replayed" not in r.headers
    assert r.json()["group_id"] != group.json()["group_id"]
