"""`Idempotency-Key` for every state-changing POST of every service (admin APIs, the Locker app).

A client that did not get an answer (a dropped connection, a timeout on a hospital Wi-Fi) sends the
same request again with the same key; the first answer is replayed instead of running it twice (two
provisioning codes, two app profiles, a second key rotation). The rules, on Redis so every instance
of a service shares them:

- no header: the call just runs. A key must be 1 to 255 characters (else 400).
- A key is scoped by enterprise, method, path and the caller (`subject`: the admin, or nothing for
  calls the device proof already ties to one device), so nobody replays another caller's answer.
- The first request claims the key (SET NX, `in_flight_ttl_s` in case it dies); a retry racing it is
  answered 409 `request_in_progress` with `Retry-After: 1`, and never runs. Reading a kept answer
  and claiming the key are one script (one round trip before the call runs, no gap between them),
  keeping the answer and releasing the claim one transaction after it.
- Only final answers are kept: anything below 500 except 429. A 5xx (e.g. the session service's 503
  "saved, event not yet acknowledged") or a 429 is not stored, so the retry runs again and gets the
  real outcome.
- A kept answer is replayed (status, body, content type, cache headers, `Idempotent-Replayed: true`)
  for `ttl_s` — but one marked `Cache-Control: no-store` (it carries a secret: a client secret, a
  provisioning code, a TOTP seed, a checkout assertion) only for `secret_ttl_s`, long enough for a
  retry, not a day of plaintext secrets in Redis.
- The same key with a different body: 422 `idempotency_key_reused`.

The route authenticates the caller first (bearer token, device proof), then calls `run`; so an
unauthenticated request never reaches a stored answer.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from redis.asyncio import Redis
from starlette.exceptions import HTTPException

from lanyard.runtime.errors import error_response
from lanyard.runtime.redis import LuaScript

HEADER = "idempotency-key"
REPLAYED = "Idempotent-Replayed"
KEPT_HEADERS = ("content-type", "cache-control", "pragma", "location", "content-disposition")

# KEYS: the kept answer, the in-flight claim; ARGV: the claim's lifetime (s). Answers {1, the kept
# answer}, {0} when this request claimed the key, or {2} when another request holds the claim.
# One script, so no answer can be kept between the read and the claim.
_ANSWER_OR_CLAIM = """
local kept = redis.call('GET', KEYS[1])
if kept then return {1, kept} end
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then return {0} end
return {2}
"""


@dataclass(frozen=True)
class StoredAnswer:
    """An answer kept for an Idempotency-Key."""

    status: int
    body: bytes
    headers: dict[str, str]
    fingerprint: str

    def to_json(self) -> str:
        return json.dumps(
            {
                "status": self.status,
                "body_b64": base64.b64encode(self.body).decode(),
                "headers": self.headers,
                "fingerprint": self.fingerprint,
            }
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> StoredAnswer:
        data: dict[str, Any] = json.loads(raw)
        if "body_b64" in data:
            body = base64.b64decode(data["body_b64"])
        else:  # kept by the session service's own implementation before this module: a JSON body
            body = json.dumps(data["body"]).encode()
        headers = data.get("headers") or {"content-type": "application/json"}
        return cls(status=int(data["status"]), body=body, headers=headers, fingerprint=data["fingerprint"])


def final(status: int) -> bool:
    """Whether an answer is the outcome of the request (kept) or only of this attempt (not kept)."""
    return status < 500 and status != 429


class Idempotency:
    """Runs a state-changing call once per Idempotency-Key and replays its first answer.

    `prefix` names the service's Redis keys (`{prefix}:{enterprise}:idem:{digest}`)."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        ttl_s: int = 24 * 3600,
        *,
        secret_ttl_s: int = 300,
        in_flight_ttl_s: int = 60,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self.ttl_s = ttl_s
        self.secret_ttl_s = min(secret_ttl_s, ttl_s)
        self.in_flight_ttl_s = in_flight_ttl_s
        self._answer_or_claim = LuaScript(redis, _ANSWER_OR_CLAIM)

    def _key(self, enterprise_id: str, scope: str, key: str) -> str:
        digest = hashlib.sha256(f"{scope}\n{key}".encode()).hexdigest()
        return f"{self._prefix}:{enterprise_id}:idem:{digest}"

    async def run(
        self,
        request: Request,
        enterprise_id: str,
        work: Callable[[], Awaitable[Response]],
        *,
        subject: str | None = None,
        keep_s: int | None = None,
    ) -> Response:
        """`work()`'s answer, or the first answer to this request's Idempotency-Key.

        An exception from `work` becomes the answer the app's exception handler gives it (so a
        refusal such as a 404 or 409 is replayed like a success); one no handler knows propagates.
        `keep_s` caps how long any answer is kept: for a route anyone may call (no caller to
        scope by), so made-up keys cannot fill Redis for a day."""
        key = request.headers.get(HEADER)
        if key is None:
            return await work()
        if not 1 <= len(key) <= 255:
            return error_response(400, "invalid_request", "Idempotency-Key must be 1 to 255 characters")
        scope = f"{request.method} {request.url.path}" + (f" {subject}" if subject else "")
        fingerprint = hashlib.sha256(scope.encode() + b"\n" + await request.body()).hexdigest()
        redis_key = self._key(enterprise_id, scope, key)
        # A retry that races the first request (a Locker app resending on a slow network) must not
        # run it twice: the first claims the key, the second is told to come back for the answer.
        claimed = await self._answer_or_claim(keys=[redis_key, redis_key + ":running"], args=[self.in_flight_ttl_s])
        if claimed[0] == 1:
            return _replay(StoredAnswer.from_json(claimed[1]), fingerprint)
        if claimed[0] == 2:
            return error_response(
                409,
                "request_in_progress",
                "a request with this Idempotency-Key is still running; retry",
                {"Retry-After": "1"},
            )
        keep: StoredAnswer | None = None
        ttl = self.ttl_s
        try:
            response = await _answer(request, work)
            body = getattr(response, "body", None)  # a streamed answer has none: it is not kept
            if final(response.status_code) and isinstance(body, bytes):
                headers = {k: v for k, v in response.headers.items() if k in KEPT_HEADERS}
                ttl = self.secret_ttl_s if "no-store" in headers.get("cache-control", "") else self.ttl_s
                ttl = min(ttl, keep_s) if keep_s else ttl
                keep = StoredAnswer(response.status_code, body, headers, fingerprint)
        finally:
            async with self._redis.pipeline(transaction=True) as pipe:
                if keep is not None:
                    pipe.set(redis_key, keep.to_json(), ex=ttl, nx=True)
                pipe.delete(redis_key + ":running")
                await pipe.execute()
        return response


async def _answer(request: Request, work: Callable[[], Awaitable[Response]]) -> Response:
    try:
        return await work()
    except Exception as exc:
        handler = _handler_for(request, exc)
        if handler is None:
            raise
        response = await handler(request, exc)
        return response if isinstance(response, Response) else JSONResponse(response)


def _handler_for(request: Request, exc: Exception) -> Callable[..., Any] | None:
    """The app's handler for `exc` (most specific class first), as Starlette would pick it; the
    catch-all `Exception` handler is not one: an unexpected error is never a kept answer."""
    handlers = getattr(request.app, "exception_handlers", {})
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    if isinstance(exc, HTTPException) and HTTPException in handlers:
        return handlers[HTTPException]
    return None


def _replay(stored: StoredAnswer, fingerprint: str) -> Response:
    """The first answer to this Idempotency-Key, or 422 when the key now comes with another request."""
    if stored.fingerprint != fingerprint:
        return error_response(422, "idempotency_key_reused", "the Idempotency-Key was used for a different request")
    return Response(stored.body, status_code=stored.status, headers={**stored.headers, REPLAYED: "true"})
