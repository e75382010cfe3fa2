"""Device proofs: JWTs a shared device signs with its enrolled EC P-256 key.

One verifier serves both places that need it: the session service (Locker API calls) and the
IdP (the SSO extension's authorization requests). The format follows DPoP (RFC 9449) closely:

    header  {"typ": "device-proof+jwt", "alg": "ES256", "jwk": <device public key>}
    claims  {"jti", "htm", "htu", "iat", optional "dsh" (device-session handle), optional "nonce"}

The key travels in the header, and is trusted only if its RFC 7638 thumbprint equals the one
the device enrolled (`expected_jkt`). `htu` is the request URL without query and fragment, as in
DPoP; `jti` is single-use within the skew window (replay cache), `iat` within ±`max_skew_s`.
`verify_device_signed` checks the same binding for other device-signed results (face results).

A device signs every request with the same key, and importing that key from the header and
hashing its thumbprint was a third of a proof's verification (≈ 0.14 of 0.40 ms), so both are
remembered per exact JWK (`_KEYS`, bounded): the signature, the binding and the claims are
checked on every proof, and a key not seen before (or a made-up one) costs what it always did.
"""

from __future__ import annotations

import hmac
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from redis.asyncio import Redis

from lanyard.runtime.caches import LruCache
from lanyard.runtime.tokens import InvalidToken, read_header

PROOF_TYP = "device-proof+jwt"
MAX_PROOF_BYTES = 8 * 1024


class InvalidProof(Exception):
    """A proof that must be refused; `reason` is safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ReplayCache(Protocol):
    """Remembers single-use identifiers for a while."""

    async def first_use(self, key: str, ttl_s: int) -> bool:
        """True the first time `key` is seen within `ttl_s`, False on every later use."""
        ...


class RedisReplayCache:
    """ReplayCache on Redis: one SET NX EX, atomic across every instance of a service."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    async def first_use(self, key: str, ttl_s: int) -> bool:
        return bool(await self._redis.set(replay_mark(self._prefix, key), "1", nx=True, ex=max(1, ttl_s)))


def replay_mark(prefix: str, key: str) -> str:
    """The Redis key that marks `key` used under `prefix` (`RedisReplayCache`'s, SET NX EX): a
    store that reads what a proof is bound to may set it in the same round trip."""
    return f"{prefix}:replay:{key}"


# JWK members (sorted) -> (thumbprint, imported key). A pure function of the members, so a hit is
# the same answer the import would give; bounded so made-up keys cannot grow it (issue 12).
_KEYS: LruCache[tuple[tuple[str, str], ...], tuple[str, ECKey]] = LruCache(4096)


def device_key(jwk: Any) -> tuple[str, ECKey]:
    """The RFC 7638 SHA-256 thumbprint and the imported key of a public EC P-256 JWK; raises
    InvalidProof for any other key."""
    if not isinstance(jwk, dict) or jwk.get("kty") != "EC" or jwk.get("crv") != "P-256" or "d" in jwk:
        raise InvalidProof("device key must be a public EC P-256 JWK")
    members = None
    if all(isinstance(k, str) and isinstance(v, str) for k, v in jwk.items()):
        members = tuple(sorted(jwk.items()))
        if (hit := _KEYS.get(members)) is not None:
            return hit
    try:
        key = ECKey.import_key(jwk)
        found = key.thumbprint(), key
    except (JoseError, ValueError, TypeError) as exc:
        raise InvalidProof("unusable device key") from exc
    if members is not None:
        _KEYS.put(members, found)
    return found


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint of an EC P-256 public key; refuses any other key."""
    return device_key(jwk)[0]


def request_target(url: str) -> str:
    """The `htu` a proof for `url` must carry: scheme, host, port and path only."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, "", ""))


def _header_key(token: str, typ: str) -> tuple[str, ECKey]:
    """(thumbprint, key) of the device key in the header of a JWT of `typ` (nothing verified yet)."""
    if not isinstance(token, str) or len(token) > MAX_PROOF_BYTES:
        raise InvalidProof("malformed")
    try:
        header = read_header(token, forbidden=("jku", "x5u", "x5c", "crit", "kid"))
    except InvalidToken as exc:
        raise InvalidProof(exc.reason) from None
    if str(header.get("typ", "")).lower() != typ or header.get("alg") != "ES256":
        raise InvalidProof("wrong typ or alg")
    return device_key(header.get("jwk"))


def _bind(jkt: str, expected_jkt: str) -> None:
    if not hmac.compare_digest(jkt.encode(), expected_jkt.encode()):
        raise InvalidProof("not signed by the enrolled device key")


def _fresh_claims(token: str, key: ECKey, now: float | None, max_skew_s: int) -> dict[str, Any]:
    try:
        claims = jwt.decode(token, key, algorithms=["ES256"]).claims
    except (JoseError, ValueError) as exc:
        raise InvalidProof("bad signature") from exc
    now = time.time() if now is None else now
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or abs(now - iat) > max_skew_s:
        raise InvalidProof("stale or future proof")
    return claims


def verify_device_signed(
    token: str, *, typ: str, expected_jkt: str, now: float | None = None, max_skew_s: int = 60
) -> dict[str, Any]:
    """Claims of a JWT signed by the device whose key thumbprint is `expected_jkt`."""
    jkt, key = _header_key(token, typ)
    _bind(jkt, expected_jkt)  # before the signature: a foreign key costs no verification
    return _fresh_claims(token, key, now, max_skew_s)


@dataclass(frozen=True)
class CheckedProof:
    """A device proof whose signature, time and request binding hold, not yet tied to an
    enrolled key nor checked for replay: `accept`, with the first-use answer for `replay_key`,
    finishes it."""

    claims: dict[str, Any]
    jkt: str
    """The thumbprint of the key that signed it."""
    replay_key: str
    """What the replay cache must see used once (`jkt:jti`, as `verify_device_proof` uses)."""
    ttl_s: int
    """How long the replay cache must remember it (twice the skew: a proof is valid that long)."""

    def accept(self, expected_jkt: str, first_use: bool) -> None:
        """Raise InvalidProof unless the proof is signed by the key of thumbprint `expected_jkt`
        and `first_use` (the replay cache's answer for `replay_key`) says it was not seen before."""
        _bind(self.jkt, expected_jkt)
        if not first_use:
            raise InvalidProof("replayed proof")


def check_device_proof(
    proof: str,
    *,
    method: str,
    url: str,
    now: float | None = None,
    max_skew_s: int = 60,
    handle: str | None = None,
    expected_jkt: str | None = None,
) -> CheckedProof:
    """Every check of a proof that needs no store: the signature by the key in its header, its
    typ/alg, time window, method, URL, device session and jti (and the key's thumbprint, when
    `expected_jkt` is known already). A caller that reads the enrolled key and marks the jti in
    one round trip calls this first, then `CheckedProof.accept` with its first-use answer, so
    only a proof whose signature verified ever marks a jti."""
    jkt, key = _header_key(proof, PROOF_TYP)
    if expected_jkt is not None:
        _bind(jkt, expected_jkt)  # before the signature, as verify_device_signed
    claims = _fresh_claims(proof, key, now, max_skew_s)
    if str(claims.get("htm", "")).upper() != method.upper():
        raise InvalidProof("proof is for another method")
    if claims.get("htu") != request_target(url):
        raise InvalidProof("proof is for another URL")
    if handle is not None and "dsh" in claims and claims["dsh"] != handle:
        raise InvalidProof("proof is for another device session")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 8 <= len(jti) <= 128:
        raise InvalidProof("missing jti")
    return CheckedProof(claims, jkt, f"{jkt}:{jti}", 2 * max_skew_s)


async def verify_device_proof(
    proof: str,
    *,
    method: str,
    url: str,
    expected_jkt: str,
    replay: ReplayCache,
    now: float | None = None,
    max_skew_s: int = 60,
    handle: str | None = None,
) -> dict[str, Any]:
    """Claims of a valid, fresh, first-use proof for this request; raises InvalidProof."""
    checked = check_device_proof(
        proof, method=method, url=url, now=now, max_skew_s=max_skew_s, handle=handle, expected_jkt=expected_jkt
    )
    checked.accept(expected_jkt, await replay.first_use(checked.replay_key, checked.ttl_s))
    return checked.claims


def sign_device_proof(
    device_key: ECKey, method: str, url: str, handle: str | None = None, iat: float | None = None
) -> str:
    """What the Locker app and its SSO extension send: a fresh proof for one request."""
    claims: dict[str, Any] = {
        "jti": uuid.uuid4().hex,
        "htm": method.upper(),
        "htu": request_target(url),
        "iat": int(time.time() if iat is None else iat),
    }
    if handle is not None:
        claims["dsh"] = handle
    return sign_device_result(device_key, claims, PROOF_TYP)


def sign_device_result(device_key: ECKey, claims: dict[str, Any], typ: str) -> str:
    """A JWT signed by the device key with the public key in the header (e.g. a face result)."""
    header = {"typ": typ, "alg": "ES256", "jwk": device_key.as_dict(private=False)}
    return jwt.encode(header, claims, device_key)
