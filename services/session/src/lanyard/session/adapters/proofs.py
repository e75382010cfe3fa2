"""Device-signed JWTs checked with the shared verifier (`lanyard.runtime.proofs`).

`DeviceProofVerifier` checks the proof on each Locker call; `SignedFaceResultVerifier` checks the
face result the Locker app's face provider returns, signed by the same enrolled device key.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from lanyard.runtime import proofs
from lanyard.session.ports import Clock, FaceResult, InvalidFaceResult, InvalidProof

FACE_RESULT_TYP = "face-result+jwt"


class DeviceProofVerifier:
    """`ProofVerifier` with a Redis replay cache per enterprise."""

    def __init__(self, redis: Redis, clock: Clock, max_skew_s: int = 60) -> None:
        self._redis = redis
        self._clock = clock
        self._skew = max_skew_s

    async def verify(
        self,
        proof: str,
        *,
        enterprise_id: str,
        method: str,
        url: str,
        expected_jkt: str,
        handle: str | None = None,
    ) -> dict[str, Any]:
        replay = proofs.RedisReplayCache(self._redis, replay_prefix(enterprise_id))
        try:
            return await proofs.verify_device_proof(
                proof,
                method=method,
                url=url,
                expected_jkt=expected_jkt,
                replay=replay,
                now=self._clock.now(),
                max_skew_s=self._skew,
                handle=handle,
            )
        except proofs.InvalidProof as exc:
            raise InvalidProof(exc.reason) from None

    def check(self, proof: str, *, method: str, url: str, handle: str | None = None) -> proofs.CheckedProof:
        # Raises InvalidProof: the port's is the runtime's.
        return proofs.check_device_proof(
            proof, method=method, url=url, now=self._clock.now(), max_skew_s=self._skew, handle=handle
        )


def replay_prefix(enterprise_id: str) -> str:
    """Where one enterprise's device-proof uses are remembered (`proofs.replay_mark` under it)."""
    return f"session:{enterprise_id}:proof"


class SignedFaceResultVerifier:
    """`FaceResultVerifier`: a `face-result+jwt` signed by the enrolled device key, fresh."""

    def __init__(self, clock: Clock, max_skew_s: int = 60) -> None:
        self._clock = clock
        self._skew = max_skew_s

    def verify(self, result: str, *, expected_jkt: str) -> FaceResult:
        try:
            claims = proofs.verify_device_signed(
                result, typ=FACE_RESULT_TYP, expected_jkt=expected_jkt, now=self._clock.now(), max_skew_s=self._skew
            )
        except proofs.InvalidProof as exc:
            raise InvalidFaceResult(exc.reason) from None
        challenge, sub = claims.get("challenge"), claims.get("sub")
        match, liveness = claims.get("match_score"), claims.get("liveness_score")
        if not isinstance(challenge, str) or not isinstance(sub, str):
            raise InvalidFaceResult("challenge and sub are required")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1 for v in (match, liveness)):
            raise InvalidFaceResult("scores must be numbers between 0 and 1")
        return FaceResult(challenge, sub, float(match), float(liveness), float(claims["iat"]))  # type: ignore[arg-type]
