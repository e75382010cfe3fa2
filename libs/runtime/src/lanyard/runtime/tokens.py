"""Verifying the JWTs the IdP issues, in every service: admin bearer tokens, checkout assertions.

The only cross-service read is the IdP's JWKS (DESIGN §1): `HttpJwks` fetches it and caches it;
an unknown `kid` triggers at most one refetch per minute (key rotation publishes keys before
use, so a fresh key is in the JWKS before any token carries it). Algorithms are pinned per key
type (RSA → RS256, EC P-256 → ES256): the token's `alg` never chooses the key (RFC 8725 §2.1).

The enterprise id that selects a key set comes from the request URL, so anyone can name any id:
every cache keyed by it is bounded (`LruCache`), an IdP answer of "no such enterprise" is kept only
briefly and in a bounded cache of its own (so made-up ids never evict real key sets), and a
service that knows its enterprises from its read model passes `known` to `TokenVerifier`, which
then looks up no key set at all for an enterprise it has never heard of.

Two kinds of bearer token reach the admin APIs: an enterprise admin's (issuer `/e/{eid}`,
audience `lanyard-admin`, `roles`), and a vendor services principal's (issuer `/idp/services`,
audience `lanyard-services`, `scope`), which belongs to no enterprise. Neither is ever accepted
as the other: issuer and audience differ and both are checked.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import httpx
from fastapi import HTTPException, Request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey
from joserfc.jws import extract_compact

from lanyard.contracts.events import SERVICES_REALM
from lanyard.runtime.caches import LruCache

MAX_TOKEN_BYTES = 16 * 1024
ADMIN_AUDIENCE = "lanyard-admin"
SESSION_AUDIENCE = "lanyard-session"
ADMIN_TOKEN_TYP = "at+jwt"
CHECKOUT_TYP = "checkout+jwt"
SERVICES_AUDIENCE = "lanyard-services"
SERVICES_PATH = "/idp/services"
SERVICES_JWKS_PATH = f"{SERVICES_PATH}/jwks"
SERVICES_SCOPES = ("establish_trust", "read")
"""What a services principal may do: establish cloud trust, and read configuration views."""
_FORBIDDEN_HEADERS = ("jku", "x5u", "jwk", "x5c", "crit")
_ENTERPRISE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
NO_KEYS: Mapping[str, Any] = {"keys": []}


def issuer_for(public_base_url: str, enterprise_id: str) -> str:
    """The one issuer string of an enterprise; used byte for byte everywhere."""
    return f"{public_base_url.rstrip('/')}/e/{enterprise_id}"


def services_issuer(public_base_url: str) -> str:
    """The issuer of services-principal tokens (the vendor's realm, no enterprise)."""
    return f"{public_base_url.rstrip('/')}{SERVICES_PATH}"


def alg_for(key: Any) -> str | None:
    """The only algorithm a key may verify: pinned by key type, never taken from a token."""
    if isinstance(key, RSAKey):
        return "RS256"
    if isinstance(key, ECKey) and key.curve_name == "P-256":
        return "ES256"
    return None


class InvalidToken(Exception):
    """A token that must not be honoured; `reason` is safe to log (it holds no token material)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class JwksSource(Protocol):
    """Where an enterprise's public keys come from."""

    async def jwks(self, enterprise_id: str, *, refresh: bool = False) -> Mapping[str, Any]: ...


class StaticJwks:
    """Fixed key sets by enterprise: for tests, and for the IdP verifying its own tokens."""

    def __init__(self, by_enterprise: Mapping[str, Mapping[str, Any]] | Callable[[str], Any]) -> None:
        self._source = by_enterprise

    async def jwks(self, enterprise_id: str, *, refresh: bool = False) -> Mapping[str, Any]:
        if callable(self._source):
            found = self._source(enterprise_id)
            if hasattr(found, "__await__"):
                found = await found
            return found or {"keys": []}
        return self._source.get(enterprise_id, {"keys": []})


class KeysUnavailable(Exception):
    """The IdP's key set could not be fetched and none is cached: a dependency that is down, not a
    bad token (answered 503, never 401)."""


class HttpJwks:
    """The IdP's JWKS over HTTP (`{base}/e/{eid}/jwks`; with `path`, one fixed key set such as the
    services realm's `/idp/services/jwks`, whatever id is asked for), cached for `ttl_s`.

    Key sets: at most `max_enterprises`, least recently used evicted first; a cached set outlives
    `ttl_s` only to bridge an IdP outage. "No keys" (404, or an empty set): remembered for
    `negative_ttl_s` in a separate cache of at most `max_negative` ids, so an enterprise created a
    moment later works soon and made-up ids cost a bounded amount of memory."""

    def __init__(
        self,
        base_url: str,
        ttl_s: float = 300,
        min_refresh_s: float = 60,
        timeout_s: float = 3,
        *,
        max_enterprises: int = 1024,
        negative_ttl_s: float = 30,
        max_negative: int = 256,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
        path: str | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._path = path
        self._ttl = ttl_s
        self._min_refresh = min_refresh_s
        self._clock = clock
        self._client = httpx.AsyncClient(timeout=timeout_s, transport=transport)
        self._cache: LruCache[str, tuple[float, Mapping[str, Any]]] = LruCache(max_enterprises, clock=clock)
        self._missing: LruCache[str, bool] = LruCache(max_negative, negative_ttl_s, clock=clock)

    def cached(self) -> tuple[int, int]:
        """How many key sets and how many "no keys" answers are held (for tests and metrics)."""
        return len(self._cache), len(self._missing)

    async def jwks(self, enterprise_id: str, *, refresh: bool = False) -> Mapping[str, Any]:
        if self._path is None and not _ENTERPRISE_ID.fullmatch(enterprise_id):
            return NO_KEYS
        if self._missing.get(enterprise_id):
            return NO_KEYS
        now = self._clock()
        cached = self._cache.get(enterprise_id)
        if cached and (now - cached[0] < self._ttl) and not (refresh and now - cached[0] >= self._min_refresh):
            return cached[1]
        try:
            path = self._path or f"/e/{quote(enterprise_id, safe='')}/jwks"
            response = await self._client.get(f"{self._base}{path}")
            keys = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            keys, response = None, None
        if isinstance(keys, dict) and isinstance(keys.get("keys"), list) and keys["keys"]:
            self._cache.put(enterprise_id, (now, keys))
            return keys
        if response is not None and response.status_code in (200, 404):
            # The IdP says this enterprise has no keys (or does not exist): nothing to verify with.
            self._cache.pop(enterprise_id)
            self._missing.put(enterprise_id, True)
            return NO_KEYS
        if cached:
            return cached[1]  # the IdP is briefly unreachable: keys we already trust still verify
        raise KeysUnavailable(f"the key set of {enterprise_id} could not be fetched")

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


class KnownEnterprises:
    """Whether an enterprise exists, from a service's read model (`lookup`); a yes is remembered
    for `ttl_s` in a bounded cache (enterprises are not deleted), a no is asked again each time
    (one read-model lookup, no memory)."""

    def __init__(self, lookup: Callable[[str], Awaitable[bool]], max_entries: int = 4096, ttl_s: float = 300) -> None:
        self._lookup = lookup
        self._yes: LruCache[str, bool] = LruCache(max_entries, ttl_s)

    async def __call__(self, enterprise_id: str) -> bool:
        if self._yes.get(enterprise_id):
            return True
        if not _ENTERPRISE_ID.fullmatch(enterprise_id) or not await self._lookup(enterprise_id):
            return False
        self._yes.put(enterprise_id, True)
        return True


class TokenVerifier:
    """Verifies our JWTs: size, header (`typ`, `kid`, no key-carrying headers), pinned algorithm,
    signature, then `iss`, `aud`, `exp`, `iat`, `nbf`."""

    def __init__(
        self,
        public_base_url: str,
        jwks: JwksSource,
        leeway_s: int = 30,
        clock: Callable[[], float] = time.time,
        *,
        known: Callable[[str], Awaitable[bool]] | None = None,
        max_enterprises: int = 1024,
        issuer_of: Callable[[str], str] | None = None,
    ) -> None:
        self._base = public_base_url
        self._jwks = jwks
        self._leeway = leeway_s
        self._clock = clock
        self._known = known
        self._parsed: LruCache[str, tuple[int, KeySet]] = LruCache(max_enterprises)
        self._issuer_of = issuer_of or (lambda eid: issuer_for(public_base_url, eid))

    @classmethod
    def for_services(cls, public_base_url: str, jwks: JwksSource, **kwargs: Any) -> TokenVerifier:
        """A verifier of services-principal tokens (issuer `/idp/services`)."""
        return cls(public_base_url, jwks, issuer_of=lambda _realm: services_issuer(public_base_url), **kwargs)

    def issuer(self, enterprise_id: str) -> str:
        """The issuer a token for `enterprise_id` must carry."""
        return self._issuer_of(enterprise_id)

    async def _key(self, enterprise_id: str, kid: str) -> Any:
        if self._known is not None and not await self._known(enterprise_id):
            raise InvalidToken("unknown enterprise")
        for refresh in (False, True):
            raw = await self._jwks.jwks(enterprise_id, refresh=refresh)
            if not raw.get("keys"):
                break  # no key set at all: nothing to parse, and no refetch to ask for
            cached = self._parsed.get(enterprise_id)
            if cached is None or cached[0] != id(raw):
                try:
                    cached = (id(raw), KeySet.import_key_set(dict(raw)))  # type: ignore[arg-type]
                except (JoseError, ValueError, TypeError, KeyError) as exc:
                    raise InvalidToken("unusable key set") from exc
                self._parsed.put(enterprise_id, cached)
            for key in cached[1].keys:
                if key.kid == kid:
                    return key
        raise InvalidToken("unknown kid")

    async def verify(self, token: str, *, enterprise_id: str, audience: str, typ: str) -> dict[str, Any]:
        """The claims of a valid token; raises InvalidToken naming the first failed rule."""
        claims = await signed_claims(token, (typ,), lambda kid: self._key(enterprise_id, kid))
        self._check_claims(claims, self.issuer(enterprise_id), audience)
        return claims

    def _check_claims(self, claims: dict[str, Any], issuer: str, audience: str) -> None:
        now = self._clock()
        if claims.get("iss") != issuer:
            raise InvalidToken("wrong issuer")
        aud = claims.get("aud")
        if not (aud == audience or (isinstance(aud, list) and audience in aud)):
            raise InvalidToken("wrong audience")
        exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
        if not isinstance(exp, int | float) or exp <= now - self._leeway:
            raise InvalidToken("expired")
        if not isinstance(iat, int | float) or iat > now + self._leeway:
            raise InvalidToken("issued in the future")
        if nbf is not None and (not isinstance(nbf, int | float) or nbf > now + self._leeway):
            raise InvalidToken("not yet valid")
        if not isinstance(claims.get("sub"), str):
            raise InvalidToken("missing sub")


async def signed_claims(token: str, typs: Iterable[str], key_for: Callable[[str], Awaitable[Any]]) -> dict[str, Any]:
    """The claims of a compact JWS whose signature checks out, before any claim is looked at:
    size and shape, no key-carrying headers, `typ` one of `typs`, `kid` present and resolved by
    `key_for` (which raises InvalidToken for an unknown one), the algorithm pinned by the key's
    type. The IdP (its own tokens) and every other service (the IdP's tokens) share it."""
    header = read_header(token)
    if str(header.get("typ", "")).lower() not in {t.lower() for t in typs}:
        raise InvalidToken("wrong typ")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidToken("missing kid")
    key = await key_for(kid)
    alg = alg_for(key)
    if alg is None or header.get("alg") != alg:
        raise InvalidToken("algorithm not allowed for this key")
    try:
        return jwt.decode(token, key, algorithms=[alg]).claims
    except (JoseError, ValueError, TypeError) as exc:
        raise InvalidToken("bad signature") from exc


def read_header(token: str, forbidden: tuple[str, ...] = _FORBIDDEN_HEADERS) -> dict[str, Any]:
    """The protected header of a compact JWS, after size and shape checks (no signature check)."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
        raise InvalidToken("malformed")
    try:
        header = dict(extract_compact(token.encode()).protected)
    except (JoseError, ValueError, TypeError) as exc:
        raise InvalidToken("malformed") from exc
    if any(h in header for h in forbidden):
        raise InvalidToken("key-carrying header not allowed")
    return header


@dataclass(frozen=True)
class AdminPrincipal:
    """The admin behind a request, from a verified admin bearer token."""

    enterprise_id: str
    user_id: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class ServicesPrincipal:
    """A vendor services principal behind a request (belongs to no enterprise)."""

    principal_id: str
    scopes: tuple[str, ...]

    @property
    def user_id(self) -> str:
        """The actor recorded on events it causes: never mistaken for an enterprise user id."""
        return f"services:{self.principal_id}"


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            401,
            {"error": "unauthorized", "error_description": "an admin bearer token is required"},
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token.strip()


async def _verified(verifier: TokenVerifier, token: str, enterprise_id: str, audience: str) -> dict[str, Any]:
    """The claims, or the HTTP refusal: 401 for a bad token, 503 when the keys cannot be fetched."""
    try:
        return await verifier.verify(token, enterprise_id=enterprise_id, audience=audience, typ=ADMIN_TOKEN_TYP)
    except InvalidToken as exc:
        raise HTTPException(
            401,
            {"error": "invalid_token", "error_description": exc.reason},
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        ) from None
    except KeysUnavailable:
        raise HTTPException(
            503,
            {"error": "temporarily_unavailable", "error_description": "the IdP's keys cannot be fetched now"},
            headers={"Retry-After": "5"},
        ) from None


async def _admin(verifier: TokenVerifier, token: str, enterprise_id: str, roles: tuple[str, ...]) -> AdminPrincipal:
    claims = await _verified(verifier, token, enterprise_id, ADMIN_AUDIENCE)
    granted = tuple(r for r in claims.get("roles", []) if isinstance(r, str))
    if not set(granted) & set(roles):
        raise HTTPException(403, {"error": "insufficient_role", "error_description": f"needs one of {roles}"})
    return AdminPrincipal(enterprise_id=enterprise_id, user_id=claims["sub"], roles=granted)


def require_roles(verifier_getter: Callable[[Request], TokenVerifier], *roles: str) -> Callable[..., Any]:
    """A FastAPI dependency for routes with an `{enterprise_id}` path parameter: 401 without a
    valid admin token of that enterprise (with `WWW-Authenticate: Bearer`), 403 without a role."""

    async def dependency(request: Request, enterprise_id: str) -> AdminPrincipal:
        return await _admin(verifier_getter(request), _bearer(request), enterprise_id, roles)

    return dependency


def unverified_issuer(token: str) -> str | None:
    """The `iss` a token claims, before any check: only to pick which verifier must check it."""
    try:
        read_header(token)
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (InvalidToken, ValueError, TypeError):
        return None
    iss = claims.get("iss") if isinstance(claims, dict) else None
    return iss if isinstance(iss, str) else None


def require_roles_or_services(
    verifier_getter: Callable[[Request], TokenVerifier],
    services_verifier_getter: Callable[[Request], TokenVerifier],
    roles: tuple[str, ...],
    scope: str | None,
) -> Callable[..., Any]:
    """Like `require_roles`, but a services principal's token with `scope` is accepted too (None:
    only recognised, then refused with 403, so a caller can say who was refused). The token's
    claimed issuer picks the verifier; that verifier then checks everything, the issuer
    included, so claiming the other issuer gains nothing."""

    async def dependency(request: Request, enterprise_id: str) -> AdminPrincipal | ServicesPrincipal:
        token = _bearer(request)
        services = services_verifier_getter(request)
        if unverified_issuer(token) != services.issuer(SERVICES_REALM):
            return await _admin(verifier_getter(request), token, enterprise_id, roles)
        claims = await _verified(services, token, SERVICES_REALM, SERVICES_AUDIENCE)
        granted = tuple(str(claims.get("scope", "")).split())
        if scope is None or scope not in granted:
            needs = f"scope {scope}" if scope else f"an enterprise admin role ({', '.join(roles)})"
            raise HTTPException(403, {"error": "insufficient_scope", "error_description": f"needs {needs}"})
        return ServicesPrincipal(principal_id=claims["sub"], scopes=granted)

    return dependency


class TestIssuer:
    """Test and benchmark support: an RS256 and an ES256 key per enterprise and a signer.

    Not used by services; it lets a service's tests mint tokens exactly as the IdP would."""

    __test__ = False  # not a pytest test class

    def __init__(self, public_base_url: str) -> None:
        self.public_base_url = public_base_url
        self._keys: dict[str, KeySet] = {}
        self._public: dict[str, dict[str, Any]] = {}

    def keyset(self, enterprise_id: str) -> KeySet:
        """The enterprise's private key set (created on first use)."""
        if enterprise_id not in self._keys:
            self._keys[enterprise_id] = KeySet(
                [
                    RSAKey.generate_key(2048, parameters={"kid": f"rs-{uuid.uuid4().hex[:8]}", "use": "sig"}),
                    ECKey.generate_key("P-256", parameters={"kid": f"es-{uuid.uuid4().hex[:8]}", "use": "sig"}),
                ]
            )
        return self._keys[enterprise_id]

    def jwks(self, enterprise_id: str) -> dict[str, Any]:
        """The public JWKS (the same object each time, so verifiers cache the parsed set)."""
        if enterprise_id not in self._public:
            self._public[enterprise_id] = self.keyset(enterprise_id).as_dict(private=False)
        return self._public[enterprise_id]

    def static_jwks(self) -> StaticJwks:
        """A JwksSource over every enterprise this issuer knows (created lazily)."""
        return StaticJwks(lambda eid: self.jwks(eid))

    def sign(self, enterprise_id: str, claims: Mapping[str, Any], typ: str, alg: str = "ES256") -> str:
        """A compact JWT with `iss`, `iat`, `exp` and `jti` filled in unless given."""
        key = next(k for k in self.keyset(enterprise_id).keys if alg_for(k) == alg)
        now = int(time.time())
        body = {"iss": issuer_for(self.public_base_url, enterprise_id), "iat": now, "exp": now + 300}
        body["jti"] = uuid.uuid4().hex
        body.update(claims)
        return jwt.encode({"alg": alg, "typ": typ, "kid": key.kid}, body, key)

    def admin_token(self, enterprise_id: str, user_id: str, *roles: str) -> str:
        """An admin bearer token as the IdP issues it."""
        return self.sign(enterprise_id, {"sub": user_id, "aud": ADMIN_AUDIENCE, "roles": list(roles)}, ADMIN_TOKEN_TYP)

    def services_token(self, principal_id: str, *scopes: str) -> str:
        """A services principal's bearer token as the IdP's services realm issues it."""
        claims = {
            "iss": services_issuer(self.public_base_url),
            "sub": principal_id,
            "aud": SERVICES_AUDIENCE,
            "scope": " ".join(scopes or SERVICES_SCOPES),
        }
        return self.sign(SERVICES_REALM, claims, ADMIN_TOKEN_TYP)

    def checkout_assertion(
        self, enterprise_id: str, user_id: str, device_id: str, amr: tuple[str, ...] = ("pwd", "otp")
    ) -> str:
        """A checkout assertion as the IdP's Locker authn API issues it."""
        now = int(time.time())
        claims = {
            "sub": user_id,
            "aud": SESSION_AUDIENCE,
            "exp": now + 60,
            "auth_time": now,
            "amr": list(amr),
            "device_id": device_id,
        }
        return self.sign(enterprise_id, claims, CHECKOUT_TYP)
