"""Minting and verifying our own JWTs: ID tokens, access tokens (RFC 9068), hints.

Keys come from the `Keys` port, cached in process for a few seconds (`keys_cache_s`): rotation
publishes a key before it signs anything and keeps retired keys published until their tokens
expire, so a briefly stale cache can neither sign with an unpublished key nor reject a valid
token (an unknown `kid` refetches, at most once a second). Algorithms are pinned per key type
(`alg_for`): the token header never picks the key or the algorithm (RFC 8725 §2.1, §3.1).
`typ` is explicit on every token we sign (`JWT` for ID tokens, `at+jwt` for access tokens) and
checked on every token we accept, so one kind can never stand in for another (RFC 8725 §3.11).

A token whose signature was verified is remembered for as long as keys are cached (resource
servers introspect the same token on every call); issuer, audience and expiry are still checked
on every use, and revocation is never cached (callers read the grant's state each time).
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable, Iterable
from typing import Any

from lanyard.idp.directory.ports import Keys
from lanyard.runtime.signing import JwtSigner
from lanyard.runtime.tokens import InvalidToken, signed_claims

ID_TOKEN_TYP = "JWT"
ACCESS_TOKEN_TYP = "at+jwt"
_NEGATIVE_REFETCH_S = 1.0
_VERIFIED_MAX = 10_000


def at_hash(access_token: str) -> str:
    """OIDC Core §3.1.3.6: left half of SHA-256 (RS256/ES256 both hash with SHA-256), base64url."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


class TokenKeys:
    """Signs and verifies an enterprise's tokens with the `Keys` port's keys, cached briefly."""

    def __init__(self, keys: Keys, cache_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._keys = keys
        self._cache_s = cache_s
        self._clock = clock
        # `sign(eid, claims, alg=, typ=)`: the one signer, bound directly (no extra await on the
        # token endpoint's path).
        self.sign = JwtSigner(keys, cache_s, clock).sign
        self._verifying: dict[str, tuple[float, dict[str, Any]]] = {}
        self._verified: dict[tuple[str, str], tuple[float, frozenset[str], dict[str, Any]]] = {}

    async def _verification_key(self, eid: str, kid: str) -> Any:
        now = self._clock()
        hit = self._verifying.get(eid)
        if hit and kid in hit[1] and now - hit[0] < self._cache_s:
            return hit[1][kid]
        if hit and kid not in hit[1] and now - hit[0] < _NEGATIVE_REFETCH_S:
            raise InvalidToken("unknown kid")
        keyset = await self._keys.verification_keys(eid)
        by_kid = {k.kid: k for k in keyset.keys if k.kid}
        self._verifying[eid] = (now, by_kid)
        if kid not in by_kid:
            raise InvalidToken("unknown kid")
        return by_kid[kid]

    async def verify(
        self,
        eid: str,
        token: str,
        *,
        issuer: str,
        typs: Iterable[str],
        audience: str | None = None,
        check_exp: bool = True,
        leeway_s: int = 30,
    ) -> dict[str, Any]:
        """The claims of one of our tokens; raises InvalidToken for anything else: wrong size or
        shape, key-carrying headers, wrong `typ`, missing or unknown `kid`, an algorithm that is
        not the key's pinned one (so no `none`, no RS/HS confusion), bad signature, wrong `iss`,
        wrong `aud`, expired (unless `check_exp` is off, as for logout hints)."""
        claims = await self._signed_claims(eid, token, frozenset(typs))
        if claims.get("iss") != issuer:
            raise InvalidToken("wrong issuer")
        if audience is not None:
            aud = claims.get("aud")
            if not (aud == audience or (isinstance(aud, list) and audience in aud)):
                raise InvalidToken("wrong audience")
        exp = claims.get("exp")
        if not isinstance(exp, int | float):
            raise InvalidToken("missing exp")
        if check_exp and exp <= time.time() - leeway_s:
            raise InvalidToken("expired")
        if not isinstance(claims.get("sub"), str):
            raise InvalidToken("missing sub")
        return claims

    async def _signed_claims(self, eid: str, token: str, typs: frozenset[str]) -> dict[str, Any]:
        """Header and signature checks, remembered per token for `cache_s` (the same staleness the
        key cache already allows); a copy is returned so callers cannot alter the cached claims."""
        now = self._clock()
        hit = self._verified.get((eid, token))
        if hit and now - hit[0] < self._cache_s and hit[1] <= typs:
            return dict(hit[2])
        claims = await signed_claims(token, typs, lambda kid: self._verification_key(eid, kid))
        if len(self._verified) >= _VERIFIED_MAX:
            self._verified.clear()
        self._verified[(eid, token)] = (now, typs, claims)
        return dict(claims)
