"""JWTs we consume and issue: security.md §5.4 rows J1–J9 (the hint is the JWT we consume)."""

import base64
import hashlib
import hmac
import json
import time

import pytest
from joserfc import jwt

pytestmark = pytest.mark.integration


def b64(d):
    return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()


async def hint_rejected(world, hint):
    p = world.auth_params(prompt="none", id_token_hint=hint)
    r = await world.authorize(p)
    return world.q(r).get("error") == "invalid_request"


async def test_J1_alg_none_rejected(world):
    await world.login()
    good = (await world.tokens())["id_token"]
    assert await hint_rejected(world, world.unsigned(good))


async def test_J2_hs256_with_public_key_rejected(world):
    await world.login()
    good = (await world.tokens())["id_token"]
    header = jwt.decode(good, await world.keys.verification_keys(world.eid)).header
    rsa = next(k for k in world.keys.keyset(world.eid).keys if k.kid == header["kid"])
    pem = rsa.as_pem(private=False)
    signing_input = b64({"alg": "HS256", "kid": header["kid"], "typ": "JWT"}) + "." + good.split(".")[1]
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    forged = signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    assert await hint_rejected(world, forged)


async def test_J3_unknown_kid_rejected(world):
    await world.login()
    good = (await world.tokens())["id_token"]
    h, c, s = good.split(".")
    header = json.loads(base64.urlsafe_b64decode(h + "=="))
    header["kid"] = "unknown"
    assert await hint_rejected(world, b64(header) + "." + c + "." + s)


@pytest.mark.parametrize(
    "extra",
    [{"kid": "../../etc/passwd"}, {"jku": "https://evil/jwks"}, {"jwk": {"kty": "oct"}}, {"x5u": "https://evil"}],
)
async def test_J4_kid_payloads_and_key_carrying_headers(world, extra):
    await world.login()
    good = (await world.tokens())["id_token"]
    h, c, s = good.split(".")
    header = {**json.loads(base64.urlsafe_b64decode(h + "==")), **extra}
    assert await hint_rejected(world, b64(header) + "." + c + "." + s)


async def test_J5_every_token_and_jwk_has_kid(world):
    await world.login()
    tokens = await world.tokens()
    for t in (tokens["id_token"], tokens["access_token"]):
        assert json.loads(base64.urlsafe_b64decode(t.split(".")[0] + "=="))["kid"]
    jwks = (await world.http.get(world.url("/jwks"))).json()
    assert jwks["keys"] and all(k.get("kid") for k in jwks["keys"])
    assert not any("d" in k for k in jwks["keys"])  # public parts only


async def test_J6_duplicate_json_members_do_not_confuse(world):
    await world.login()
    good = (await world.tokens())["id_token"]
    h, c, s = good.split(".")
    raw = base64.urlsafe_b64decode(c + "==").decode()
    dup = raw[:-1] + ',"sub":"u2"}'
    forged = h + "." + base64.urlsafe_b64encode(dup.encode()).rstrip(b"=").decode() + "." + s
    assert await hint_rejected(world, forged)  # the signature covers the bytes


async def test_J7_oversized_jwt_rejected(world):
    await world.login()
    big = b64({"alg": "RS256", "kid": "x"}) + "." + b64({"pad": "x" * 20000}) + ".sig"
    r = await world.http.post(world.url("/authorize"), data=world.auth_params(id_token_hint=big))
    assert (
        r.status_code in (303, 400, 413) and world.q(r).get("error", "invalid_request") == "invalid_request"
        if r.status_code == 303
        else True
    )
    assert (await world.http.get(world.url("/userinfo"), headers={"Authorization": f"Bearer {big}"})).status_code == 401


async def test_J8_hint_wrong_iss_rejected_expired_ok_for_logout(world):
    await world.login()
    tokens = await world.tokens()
    claims = jwt.decode(tokens["id_token"], await world.keys.verification_keys(world.eid)).claims
    key = await world.keys.signing_key(world.eid, "RS256")
    wrong_iss = jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "JWT"}, {**claims, "iss": "https://evil"}, key)
    assert await hint_rejected(world, wrong_iss)
    expired = jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "JWT"}, {**claims, "exp": 1000, "iat": 900}, key)
    r = await world.http.get(
        world.url("/logout"),
        params={"id_token_hint": expired, "post_logout_redirect_uri": world.logout_redirect, "state": "s1"},
    )
    assert r.status_code == 303 and r.headers["location"] == world.logout_redirect + "?state=s1"


# J9 key rotation (publish before use, keep retired keys) belongs to the Keys adapter of the
# directory side (lanyard.idp.directory.domain.rotate_ring and its tests); we only sign with
# Keys.signing_key and verify with Keys.verification_keys, refetching on an unknown kid.
async def test_J9_verification_refetches_on_new_kid(world):
    await world.login()
    tokens = await world.tokens()
    assert (await world.introspect(tokens["access_token"])).json()["active"]
    from joserfc.jwk import ECKey

    new = ECKey.generate_key("P-256", parameters={"kid": "es-new", "use": "sig"})
    world.keys.sets[world.eid].keys.append(new)
    claims = jwt.decode(tokens["access_token"], await world.keys.verification_keys(world.eid)).claims
    fresh = jwt.encode({"alg": "ES256", "kid": "es-new", "typ": "at+jwt"}, claims, new)
    keys = world.oidc.provider.keys
    try:
        # step past the one-second negative cache instead of sleeping
        keys._clock = lambda: time.monotonic() + 2
        assert (await world.introspect(fresh)).json()["active"] is True
    finally:
        world.keys.sets[world.eid].keys.remove(new)


# Per-client ID-token alg (OIDC Dynamic Client Registration §2 `id_token_signed_response_alg`).


def _header(token):
    return json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))


async def _verified_with_published_key(world, token, alg):
    """The token's claims, verified with the JWKS entry its `kid` names, and only with `alg`."""
    from joserfc.jwk import KeySet

    published = (await world.http.get(world.url("/jwks"))).json()
    kid = _header(token)["kid"]
    (entry,) = [k for k in published["keys"] if k["kid"] == kid]
    assert entry["kty"] == {"ES256": "EC", "RS256": "RSA"}[alg]
    return jwt.decode(token, KeySet.import_key_set({"keys": [entry]}), algorithms=[alg]).claims


def _register_alg(world, client_id, alg):
    from dataclasses import replace

    client = world.clients.items[(world.eid, client_id)]
    world.clients.add(replace(client, id_token_signed_response_alg=alg))


async def test_id_token_is_signed_with_the_alg_the_client_registered(world):
    _register_alg(world, "conf", "ES256")
    await world.login()
    tokens = await world.tokens()
    header = _header(tokens["id_token"])
    assert (header["alg"], header["typ"]) == ("ES256", "JWT")
    es_kid = (await world.keys.signing_key(world.eid, "ES256")).kid
    assert header["kid"] == es_kid
    claims = await _verified_with_published_key(world, tokens["id_token"], "ES256")
    assert claims["aud"] == "conf" and claims["nonce"] == tokens["_params"]["nonce"]
    # The hint we consume back is accepted whichever alg signed it (alg pinned per key type).
    assert not await hint_rejected(world, tokens["id_token"])


async def test_id_token_without_registration_is_the_idp_default_rs256(world):
    await world.login()
    pub = await world.tokens("pub")
    header = _header(pub["id_token"])
    assert header["alg"] == "RS256" and header["kid"] == (await world.keys.signing_key(world.eid, "RS256")).kid
    assert (await _verified_with_published_key(world, pub["id_token"], "RS256"))["aud"] == "pub"


async def test_id_token_on_refresh_keeps_the_clients_alg(world, monkeypatch):
    provider = world.oidc.provider
    monkeypatch.setattr(provider, "config", provider.config.model_copy(update={"id_token_on_refresh": True}))
    _register_alg(world, "conf", "ES256")
    await world.login()
    tokens = await world.tokens()
    r = await world.refresh(tokens["refresh_token"])
    assert r.status_code == 200, r.text
    refreshed = r.json()["id_token"]
    assert _header(refreshed)["alg"] == "ES256"
    await _verified_with_published_key(world, refreshed, "ES256")
