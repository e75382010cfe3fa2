"""The Redis queue of back-channel logout deliveries (OIDC Back-Channel Logout 1.0); the worker
that posts them is `lanyard.idp.devices.backchannel`.

Layout (one queue for every enterprise; `{bcl}` is a Redis Cluster hash tag so the Lua scripts
may touch all of it):

    idp:{bcl}:due              sorted set: delivery id → due time (ms)
    idp:{bcl}:d:<id>           hash: enterprise_id client_id uri sid user_id device_session_id
                               created_ms attempts claim outcome status error
    idp:{bcl}:done:<id>        marker after the outcome was published (dedup of re-enqueues)

A delivery id is `<enterprise>:<client>:<sid>`, so queuing the same logout twice is harmless.
While a worker runs, a new delivery is stored already leased to it and handed to it at once (no
claim round between a revocation and its logout); otherwise, or when it has enough in flight,
it is stored due now and the worker claims it. Claiming is one Lua step that moves the due time
forward by a lease and stamps a claim token: two instances never hold one delivery at once, and
every later step only acts while the token still matches. A worker that dies mid-delivery loses
its lease and the delivery is retried. A claim or an enqueue whose answer is lost (Redis crashed
right after running it) is released by its token once Redis answers again, so a Redis crash does
not hold those logouts for a whole lease.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from lanyard.idp.devices.ports import Clients, Delivery, LogoutTaker, RevokedSession
from lanyard.runtime.logging import get_logger
from lanyard.runtime.redis import LuaScript
from lanyard.runtime.settle import run_all

QUEUED_AT_ONCE = 4
"""Apps queued at once for one revocation: each takes Redis connections from a pool of 100 that
the batch's other revocations (`devices.handlers.REVOCATIONS_AT_ONCE`) share."""

log = get_logger("lanyard.idp.devices.backchannel")

PREFIX = "idp:{bcl}"
DUE = f"{PREFIX}:due"
DONE_TTL_S = 24 * 3600

_ENQUEUE = """
-- KEYS: hash, done marker, due; ARGV: id, now ms, claim token ('' for none), lease ms, then
-- field/value pairs. With a token the delivery is stored already leased to its taker (attempt 1),
-- due again when the lease ends; without one it is due now.
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'claim', ARGV[3], 'attempts', 1)
  redis.call('ZADD', KEYS[3], tonumber(ARGV[2]) + tonumber(ARGV[4]), ARGV[1])
else
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
end
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


class BackchannelQueue:
    """Implements `devices.ports.LogoutQueue` (and so `BackchannelLogouts`): enqueue (durable),
    claim, settle."""

    def __init__(self, redis: Redis, clients: Clients, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self.clients = clients
        self._clock = clock
        self._enqueue = LuaScript(redis, _ENQUEUE)
        self._claim = LuaScript(redis, _CLAIM)
        self._retry = LuaScript(redis, _RETRY)
        self._release = LuaScript(redis, _RELEASE)
        self._outcome = LuaScript(redis, _OUTCOME)
        self._settle = LuaScript(redis, _SETTLE)
        self.taker: LogoutTaker | None = None
        """The worker, while it runs: each new delivery is leased to it as it is stored."""

    async def enqueue(
        self, enterprise_id: str, client_id: str, sid: str, user_id: str, device_session_id: str | None = None
    ) -> None:
        """Queue a logout token for `client_id` if it registered a back-channel logout URI, and
        hand it to the `taker` in the same step (leased to it), so it is posted at once."""
        client = await self.clients.get(enterprise_id, client_id)
        if client is None or not client.backchannel_logout_uri:
            return
        delivery_id = f"{enterprise_id}:{client_id}:{sid}"
        now_ms = int(self._clock() * 1000)
        taker = self.taker
        claim = secrets.token_hex(12) if taker is not None and taker.accepting else ""
        lease_ms = int(taker.lease_s * 1000) if taker is not None and claim else 0
        fields = {
            "enterprise_id": enterprise_id,
            "client_id": client_id,
            "uri": client.backchannel_logout_uri,
            "sid": sid,
            "user_id": user_id,
            "device_session_id": device_session_id or "",
            "created_ms": str(now_ms),
            "attempts": "0",
            "alg": client.id_token_signed_response_alg or "",
        }
        args: list[Any] = [delivery_id, now_ms, claim, lease_ms]
        for k, v in fields.items():
            args += [k, v]
        try:
            added = await self._enqueue(keys=[_hash(delivery_id), _done(delivery_id), DUE], args=args)
        except Exception:
            if taker is not None and claim:
                taker.lost(claim)  # it may have been stored, leased to nobody who knows it
            raise
        if not added:
            return
        log.info("back-channel logout queued", enterprise_id=enterprise_id, client_id=client_id)
        if taker is None:
            return
        if not claim:
            taker.wake()
            return
        taker.take(
            Delivery(
                delivery_id=delivery_id,
                enterprise_id=enterprise_id,
                client_id=client_id,
                uri=client.backchannel_logout_uri,
                sid=sid,
                user_id=user_id,
                device_session_id=device_session_id or None,
                created_ms=now_ms,
                attempts=1,
                claim=claim,
                outcome=None,
                status=None,
                error=None,
                alg=client.id_token_signed_response_alg or None,
            )
        )

    async def enqueue_revoked(
        self, enterprise_id: str, sessions: list[RevokedSession], device_session_id: str | None = None
    ) -> None:
        """Queue a logout for every client of every revoked session, `QUEUED_AT_ONCE` apps at a
        time: one after the other, a nurse signed in to ten apps waited twenty round trips (each
        app's registration, then its queue entry) for the last app's logout. Each is idempotent;
        if one fails the call raises once all have finished, and the caller's retry queues the rest."""
        await run_all(
            (
                self.enqueue(enterprise_id, client_id, session.sid, session.user_id, device_session_id)
                for session in sessions
                for client_id in session.client_ids
            ),
            QUEUED_AT_ONCE,
        )

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
                    alg=f.get("alg") or None,
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
