"""Device proofs: bound to the enrolled key, the request, a time window, and used once."""

import time

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from lanyard.runtime import proofs
from lanyard.runtime.caches import LruCache
from lanyard.runtime.proofs import (
    PROOF_TYP,
    InvalidProof,
    check_device_proof,
    request_target,
    sign_device_proof,
    sign_device_result,
    thumbprint,
    verify_device_proof,
    verify_device_signed,
)

URL = "https://gw.example/e/e1/authorize?client_id=rover"


class MemoryReplay:
    def __init__(self):
        self.seen = set()

    async def first_use(self, key, ttl_s):
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


@pytest.fixture
def device():
    key = ECKey.generate_key("P-256", private=True)
    return key, thumbprint(key.as_dict(private=False))


async def check(proof, jkt, replay=None, method="GET", url=URL, **kw):
    return await verify_device_proof(
        proof, method=method, url=url, expected_jkt=jkt, replay=replay or MemoryReplay(), **kw
    )


async def test_a_fresh_proof_from_the_enrolled_key_is_accepted(device):
    key, jkt = device
    claims = await check(sign_device_proof(key, "GET", URL, handle="ds1"), jkt, handle="ds1")
    assert claims["htu"] == "https://gw.example/e/e1/authorize"


async def test_replayed_proof_is_refused(device):
    key, jkt = device
    replay, proof = MemoryReplay(), sign_device_proof(key, "GET", URL)
    await check(proof, jkt, replay)
    with pytest.raises(InvalidProof, match="replayed"):
        await check(proof, jkt, replay)


async def test_another_devices_key_is_refused(device):
    _, jkt = device
    other = ECKey.generate_key("P-256", private=True)
    with pytest.raises(InvalidProof, match="enrolled device key"):
        await check(sign_device_proof(other, "GET", URL), jkt)


def test_a_proof_checked_before_its_key_is_known_is_accepted_for_that_key_once(device):
    # The IdP and the session service check a proof before reading the enrolled key (read with
    # the replay mark, in one round trip): the checked proof names its key and its replay mark.
    key, jkt = device
    proof = sign_device_proof(key, "GET", URL, handle="ds1")
    checked = check_device_proof(proof, method="GET", url=URL, handle="ds1")
    assert checked.jkt == jkt and checked.replay_key == f"{jkt}:{checked.claims['jti']}"
    assert checked.ttl_s == 120
    checked.accept(jkt, first_use=True)
    other = thumbprint(ECKey.generate_key("P-256", private=True).as_dict(private=False))
    with pytest.raises(InvalidProof, match="enrolled device key"):
        checked.accept(other, first_use=True)
    with pytest.raises(InvalidProof, match="replayed"):
        checked.accept(jkt, first_use=False)


def test_a_proof_checked_before_its_key_is_known_still_needs_a_good_signature(device):
    key, _ = device
    proof = sign_device_proof(key, "GET", URL)
    tampered = proof[:-6] + ("AAAAAA" if not proof.endswith("AAAAAA") else "BBBBBB")
    with pytest.raises(InvalidProof, match="signature"):
        check_device_proof(tampered, method="GET", url=URL)
    with pytest.raises(InvalidProof, match="another method"):
        check_device_proof(proof, method="POST", url=URL)


@pytest.mark.parametrize(("method", "url"), [("POST", URL), ("GET", "https://gw.example/e/e2/authorize")])
async def test_proof_for_another_request_is_refused(device, method, url):
    key, jkt = device
    with pytest.raises(InvalidProof, match="another"):
        await check(sign_device_proof(key, "GET", URL), jkt, method=method, url=url)


@pytest.mark.parametrize("age", [-120, 120])
async def test_stale_or_future_proof_is_refused(device, age):
    key, jkt = device
    with pytest.raises(InvalidProof, match="stale"):
        await check(sign_device_proof(key, "GET", URL, iat=time.time() - age), jkt)


async def test_proof_for_another_device_session_is_refused(device):
    key, jkt = device
    with pytest.raises(InvalidProof, match="device session"):
        await check(sign_device_proof(key, "GET", URL, handle="ds-other"), jkt, handle="ds1")


def test_only_public_p256_keys_can_be_enrolled(device):
    key, _ = device
    with pytest.raises(InvalidProof):
        thumbprint(key.as_dict(private=True))
    with pytest.raises(InvalidProof):
        thumbprint({"kty": "RSA", "n": "x", "e": "AQAB"})


def test_device_signed_results_use_the_same_binding(device):
    key, jkt = device
    result = sign_device_result(
        key, {"challenge": "c", "match_score": 0.97, "iat": int(time.time())}, "face-result+jwt"
    )
    assert verify_device_signed(result, typ="face-result+jwt", expected_jkt=jkt)["match_score"] == 0.97
    with pytest.raises(InvalidProof, match="typ"):
        verify_device_signed(result, typ="device-proof+jwt", expected_jkt=jkt)


async def test_a_remembered_device_key_still_needs_its_signature(device):
    """The enrolled key in the header, the signature by another key: refused even after the
    enrolled key has been seen (and remembered) on a good proof."""
    key, jkt = device
    await check(sign_device_proof(key, "GET", URL), jkt)
    other = ECKey.generate_key("P-256", private=True)
    header = {"typ": PROOF_TYP, "alg": "ES256", "jwk": key.as_dict(private=False)}
    claims = {"jti": "forged-0001", "htm": "GET", "htu": request_target(URL), "iat": int(time.time())}
    with pytest.raises(InvalidProof, match="bad signature"):
        await check(jwt.encode(header, claims, other), jkt)


async def test_a_key_sharing_members_with_a_remembered_one_is_not_taken_for_it(device):
    """The enrolled key's x with another key's y (signed by that other key) is another key."""
    key, jkt = device
    await check(sign_device_proof(key, "GET", URL), jkt)
    other = ECKey.generate_key("P-256", private=True)
    mixed = {**other.as_dict(private=False), "x": key.as_dict(private=False)["x"]}
    header = {"typ": PROOF_TYP, "alg": "ES256", "jwk": mixed}
    claims = {"jti": "mixed-00001", "htm": "GET", "htu": request_target(URL), "iat": int(time.time())}
    with pytest.raises(InvalidProof, match=r"enrolled device key|unusable"):
        await check(jwt.encode(header, claims, other), jkt)


async def test_many_devices_keys_do_not_grow_the_remembered_keys(monkeypatch):
    """Every device's proofs verify while the remembered keys stay within their bound."""
    monkeypatch.setattr(proofs, "_KEYS", LruCache(4))
    for _ in range(12):
        key = ECKey.generate_key("P-256", private=True)
        jkt = thumbprint(key.as_dict(private=False))
        for _ in range(2):
            await check(sign_device_proof(key, "GET", URL), jkt)
    assert len(proofs._KEYS) == 4
