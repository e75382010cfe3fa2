"""Back-channel logout (OIDC Back-Channel Logout 1.0): a durable queue in Redis and its worker.

Layout (one queue for every enterprise; `{bcl}` is a Redis Cluster hash tag so the Lua scripts
may touch all of it):

    idp:{bcl}:due              sorted set: delivery id → due time (ms)
    idp:{bcl}:d:<id>           hash: enterprise_id client_id uri sid user_id device_session_id
                               created_ms attempts claim outcome status error
    idp:{bcl}:done:<id>        marker after the outcome was published (dedup of re-enqueues)

A delivery id is `<enterprise>:<client>:<sid>`, so queuing the same logout twice is harmless.
Claiming is one Lua step that moves the due time forward by a lease and stamps a claim token:
two instances never hold one delivery at once, and every later step only acts while the token
still matches. A worker that dies mid-delivery loses its lease and the delivery is retried. A
claim whose answer is lost (Redis crashed right after running it) is released by its token once
Redis answers again, so a Redis crash does not hold those logouts for a whole lease.

Outcomes: 200/204 delivered; any other answer below 500 rejected (never retried); 5xx,
timeouts and connection errors retried with exponential backoff until `bcl_max_attempts` or
`bcl_max_age_s`, then failed. The outcome is written to the hash before its event is
published, so a publish that fails is retried without posting the logout token again.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jwt
from redis.asyncio import Redis

from lanyard.contracts import Subject
from lanyard.contracts import events as ev
from lanyard.idp.devices.settings import DeviceSettings
from lanyard.idp.ports import Clients, Keys, Publisher
from lanyard.runtime.logging import get_logger
from lanyard.runtime.tokens import issuer_for

log = get_logger("lanyard.idp.devices.backchannel")

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TYP = "logout+jwt"
PREFIX = "idp:{bcl}"
DUE = f"{PREFIX}:due"
DONE_TTL_S = 24 * 3600

_ENQUEUE = """
-- KEYS: hash, done marker, due; ARGV: id, due ms, then field/value pairs
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return 1
"""

_CLAIM = """
-- KEYS: due; ARGV: now ms, lease ms, limit, hash prefix, claim token
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  local h = ARGV[4] .. id
  if redis.call('EXISTS', h) == 0 then
    redis.call('ZREM', KEYS[1], id)
  else
    redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), id)
    redis.call('HSET', h, 'claim', ARGV[5])
    if not redis.call('HGET', h, 'outcome') then redis.call('HINCRBY', h, 'attempts', 1) end
    out[#out + 1] = id
    out[#out + 1] = redis.call('HGETALL', h)
  end
end
return out
"""

_RELEASE = """
-- KEYS: due; ARGV: now ms, lease ms, hash prefix, claim token. Deliveries this token leased (in
-- the last lease) come due again now: a claim whose answer was lost (Redis died after running it)
-- must not hold its deliveries for a whole lease.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], tonumber(ARGV[1]) + tonumber(ARGV[2]))
local n = 0
for _, id in ipairs(ids) do
  local h = ARGV[3] .. id
  if redis.call('HGET', h, 'claim') == ARGV[4] then
    redis.call('HSET', h, 'claim', '')
    redis.call('ZADD', KEYS[1], ARGV[1], id)
    n = n + 1
  end
end
return n
"""

_RETRY = """
-- KEYS: hash, due; ARGV: claim token, id, due ms, status, error
if redis.call('HGET', KEYS[1], 'claim') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[4], 'error', ARGV[5], 'claim', '')
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
return 1
"""

_OUTCOME = """
-- KEYS: hash; ARGV: claim token, outcome, status, error
if redis.call('HGET', KEYS[1], 'claim') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'outcome', ARGV[2], 'status', ARGV[3], 'error', ARGV[4])
return 1
"""

_SETTLE = """
-- KEYS: hash, due, done marker; ARGV: claim token, id, done ttl
if redis.call('HGET', KEYS[1], 'claim') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], '1', 'EX', ARGV[3])
return 1
"""


def _hash(delivery_id: str) -> str:
    return f"{PREFIX}:d:{delivery_id}"


def _done(delivery_id: str) -> str:
    return f"{PREFIX}:done:{delivery_id}"


@dataclass(frozen=True)
class Delivery:
    """One claimed delivery."""

    delivery_id: str
    enterprise_id: str
    client_id: str
    uri: str
    sid: str
    user_id: str
    device_session_id: str | None
    created_ms: int
    attempts: int
    claim: str
    outcome: str | None
    status: int | None
    error: str | None


def backoff_s(attempts: int, settings: DeviceSettings) -> float:
    """Delay after the `attempts`-th failed attempt: exponential, capped."""
    return min(settings.bcl_max_backoff_s, settings.bcl_backoff_s * (2 ** max(0, attempts - 1)))


class BackchannelQueue:
    """Implements `lanyard.idp.ports.BackchannelLogouts`: enqueue (durable), claim, settle."""

    def __init__(self, redis: Redis, clients: Clients | None, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self.clients = clients
        self._clock = clock
        self._enqueue = redis.register_script(_ENQUEUE)
        self._claim = redis.register_script(_CLAIM)
        self._retry = redis.register_script(_RETRY)
        self._release = redis.register_script(_RELEASE)
        self._outcome = redis.register_script(_OUTCOME)
        self._settle = redis.register_script(_SETTLE)
        self.on_enqueue: Callable[[], None] | None = None

    async def enqueue(
        self, enterprise_id: str, client_id: str, sid: str, user_id: str, device_session_id: str | None = None
    ) -> None:
        """Queue a logout token for `client_id` if it registered a back-channel logout URI."""
        client = await self.clients.get(enterprise_id, client_id) if self.clients is not None else None
        if client is None or not client.backchannel_logout_uri:
            return
        delivery_id = f"{enterprise_id}:{client_id}:{sid}"
        now_ms = int(self._clock() * 1000)
        fields = {
            "enterprise_id": enterprise_id,
            "client_id": client_id,
            "uri": client.backchannel_logout_uri,
            "sid": sid,
            "user_id": user_id,
            "device_session_id": device_session_id or "",
            "created_ms": str(now_ms),
            "attempts": "0",
        }
        args: list[Any] = [delivery_id, now_ms]
        for k, v in fields.items():
            args += [k, v]
        added = await self._enqueue(keys=[_hash(delivery_id), _done(delivery_id), DUE], args=args)
        if added:
            log.info("back-channel logout queued", enterprise_id=enterprise_id, client_id=client_id)
            if self.on_enqueue is not None:
                self.on_enqueue()

    async def claim(self, limit: int, lease_s: float, token: str | None = None) -> list[Delivery]:
        """Deliveries due now, each leased to this caller for `lease_s` under `token` (a fresh one
        by default; pass one to be able to `release` a claim whose answer was lost)."""
        token = token or secrets.token_hex(12)
        now_ms = int(self._clock() * 1000)
        raw = await self._claim(keys=[DUE], args=[now_ms, int(lease_s * 1000), limit, f"{PREFIX}:d:", token])
        out = []
        for i in range(0, len(raw), 2):
            flat = raw[i + 1]
            f = dict(zip(flat[::2], flat[1::2], strict=True))
            out.append(
                Delivery(
                    delivery_id=raw[i],
                    enterprise_id=f.get("enterprise_id", ""),
                    client_id=f.get("client_id", ""),
                    uri=f.get("uri", ""),
                    sid=f.get("sid", ""),
                    user_id=f.get("user_id", ""),
                    device_session_id=f.get("device_session_id") or None,
                    created_ms=int(f.get("created_ms", "0")),
                    attempts=int(f.get("attempts", "0")),
                    claim=token,
                    outcome=f.get("outcome") or None,
                    status=int(f["status"]) if f.get("status") else None,
                    error=f.get("error") or None,
                )
            )
        return out

    async def release(self, token: str, lease_s: float) -> int:
        """Make what a claim under `token` leased due again now; returns how many."""
        now_ms = int(self._clock() * 1000)
        return int(await self._release(keys=[DUE], args=[now_ms, int(lease_s * 1000) + 1000, f"{PREFIX}:d:", token]))

    async def retry_at(self, d: Delivery, due_s: float, status: int | None, error: str) -> bool:
        """Put a claimed delivery back for another attempt at `due_s`."""
        args = [d.claim, d.delivery_id, int(due_s * 1000), "" if status is None else status, error]
        return bool(await self._retry(keys=[_hash(d.delivery_id), DUE], args=args))

    async def record_outcome(self, d: Delivery, outcome: str, status: int | None, error: str | None) -> bool:
        """Remember the final outcome before its event is published."""
        args = [d.claim, outcome, "" if status is None else status, error or ""]
        return bool(await self._outcome(keys=[_hash(d.delivery_id)], args=args))

    async def settle(self, d: Delivery) -> bool:
        """Drop a delivery whose outcome event was published."""
        args = [d.claim, d.delivery_id, DONE_TTL_S]
        return bool(await self._settle(keys=[_hash(d.delivery_id), DUE, _done(d.delivery_id)], args=args))

    async def pending(self) -> int:
        """How many deliveries are queued (due or leased)."""
        return int(await self._redis.zcard(DUE))


class BackchannelWorker:
    """Delivers queued logout tokens; one per IdP instance, started in the app lifespan."""

    def __init__(
        self,
        queue: BackchannelQueue,
        keys: Keys | None,
        publisher: Publisher,
        settings: DeviceSettings,
        public_base_url: str,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.queue = queue
        self.keys = keys
        self._publisher = publisher
        self._settings = settings
        self._base = public_base_url
        self._http = http
        self._own_http = http is None
        self._clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._lost_claims: list[str] = []  # claims whose answer never came: released when Redis is back
        queue.on_enqueue = self._wake.set

    async def start(self) -> None:
        """Start delivering in the background."""
        self._stopping = False
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._settings.bcl_timeout_s, follow_redirects=False)
        self._task = asyncio.create_task(self._run(), name="idp-backchannel-logout")

    async def stop(self) -> None:
        """Finish the round in progress and stop (cancelling a Redis command mid-flight would
        leave its connection unusable); leased deliveries come back after their lease."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=self._settings.bcl_timeout_s + 5)
            if not done:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _run(self) -> None:
        while not self._stopping:
            try:
                worked = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("back-channel round failed", error=type(exc).__name__)
                worked = 0
            if not worked and not self._stopping:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._settings.bcl_poll_s)

    async def run_once(self) -> int:
        """Claim what is due and process it; returns how many deliveries were handled."""
        lease = self._settings.bcl_lease_s
        while self._lost_claims:
            await self.queue.release(self._lost_claims[0], lease)
            self._lost_claims.pop(0)
        token = secrets.token_hex(12)
        try:
            items = await self.queue.claim(self._settings.bcl_batch, lease, token)
        except Exception:
            # Redis may have run the claim and died before answering (a crash): its deliveries
            # would wait a whole lease; release them as soon as Redis answers again.
            self._lost_claims.append(token)
            raise
        if items:
            await asyncio.gather(*(self._process(d) for d in items))
        return len(items)

    async def _process(self, d: Delivery) -> None:
        if d.outcome is None:
            outcome, status, error = await self._attempt(d)
            if outcome == "retry":
                now = self._clock()
                too_old = (now - d.created_ms / 1000) >= self._settings.bcl_max_age_s
                if d.attempts < self._settings.bcl_max_attempts and not too_old:
                    await self.queue.retry_at(d, now + backoff_s(d.attempts, self._settings), status, error or "")
                    return
                outcome = "failed"
            if not await self.queue.record_outcome(d, outcome, status, error):
                return  # the lease was lost; whoever holds it now finishes the delivery
        else:
            outcome, status, error = d.outcome, d.status, d.error
        await self._publisher.publish(self._event(d, outcome, status, error))
        await self.queue.settle(d)
        log.info(
            "back-channel logout " + outcome,
            enterprise_id=d.enterprise_id,
            client_id=d.client_id,
            attempts=d.attempts,
            status=status,
        )

    async def _attempt(self, d: Delivery) -> tuple[str, int | None, str | None]:
        """('delivered' | 'rejected' | 'retry', HTTP status, error) of one POST."""
        assert self._http is not None
        try:
            token = await self.logout_token(d.enterprise_id, d.client_id, d.sid, d.user_id)
        except Exception as exc:  # no key yet, Redis blip: try again later
            return "retry", None, f"signing failed: {type(exc).__name__}"
        try:
            response = await self._http.post(
                d.uri,
                data={"logout_token": token},
                headers={"Cache-Control": "no-store"},
                timeout=self._settings.bcl_timeout_s,
            )
        except httpx.TimeoutException:
            return "retry", None, "timeout"
        except httpx.HTTPError as exc:
            return "retry", None, f"transport error: {type(exc).__name__}"
        code = response.status_code
        if code in (200, 204):
            return "delivered", code, None
        if code >= 500:
            return "retry", code, f"HTTP {code}"
        return "rejected", code, f"HTTP {code}"

    async def logout_token(self, enterprise_id: str, client_id: str, sid: str, user_id: str) -> str:
        """A logout token (BCL §2.4): typ logout+jwt, kid, RS256; never a nonce."""
        if self.keys is None:
            raise RuntimeError("no signing keys wired")
        key = await self.keys.signing_key(enterprise_id, "RS256")
        now = int(self._clock())
        claims = {
            "iss": issuer_for(self._base, enterprise_id),
            "aud": client_id,
            "iat": now,
            "exp": now + self._settings.bcl_token_ttl_s,
            "jti": uuid.uuid4().hex,
            "events": {BACKCHANNEL_EVENT: {}},
            "sid": sid,
            "sub": user_id,
        }
        header = {"alg": "RS256", "typ": LOGOUT_TYP, "kid": key.kid}
        return jwt.encode(header, claims, key, algorithms=["RS256"])

    def _event(self, d: Delivery, outcome: str, status: int | None, error: str | None) -> ev.Event:
        payload = ev.BackchannelLogoutPayload(
            client_id=d.client_id,
            sid=d.sid,
            user_id=d.user_id,
            attempts=d.attempts,
            status_code=status,
            error=error,
            device_session_id=d.device_session_id,
        )
        cls = ev.BackchannelLogoutDelivered if outcome == "delivered" else ev.BackchannelLogoutFailed
        return cls(
            enterprise_id=d.enterprise_id,
            producer="idp",
            subject=Subject(user_id=d.user_id, device_session_id=d.device_session_id, client_id=d.client_id),
            payload=payload,
        )
