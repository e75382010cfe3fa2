"""The device-session read model in Redis (implements `devices.ports.DeviceStore`).

One hash per (enterprise, device session): `idp:{eid}:devsess:{dsid}`, holding `model.to_fields`.
Facts from the two topics may be applied concurrently by different consumers (even different
instances) for one session, so every change is an optimistic compare-and-set (WATCH/MULTI) of
the pure `model.apply`. Revocation is therefore one constant-cost write whatever the number of
live sessions, and `state` is the single field introspection and refresh depend on. The consumer
applies a fetched batch with `apply_many`: one transaction for all the sessions it names.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import WatchError

from lanyard.idp.devices import domain as model
from lanyard.idp.devices.domain import Fact, Outcome, SessionView
from lanyard.runtime.proofs import replay_mark
from lanyard.runtime.redis import LuaScript

_READ_VIEWS = """
-- KEYS: views. Each view's field/value list (empty when absent), in the order of KEYS.
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('HGETALL', key) end
return out
"""

_WRITE_VIEWS = """
-- KEYS: views to replace; ARGV: retention (s), then per key its fields as one JSON object.
for i, key in ipairs(KEYS) do
  local flat = {}
  for name, value in pairs(cjson.decode(ARGV[i + 1])) do
    flat[#flat + 1] = name
    flat[#flat + 1] = value
  end
  redis.call('DEL', key)
  redis.call('HSET', key, unpack(flat))
  redis.call('EXPIRE', key, ARGV[1])
end
return #KEYS
"""

RETENTION_S = 8 * 24 * 3600
"""Kept a day beyond the topics' 7-day retention: a replayed late grant still meets its CLOSED view."""


def _compact(fields: dict[str, str]) -> str:
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))


def session_key(enterprise_id: str, device_session_id: str) -> str:
    """The Redis key of one device session's view."""
    return f"idp:{enterprise_id}:devsess:{device_session_id}"


# KEYS: the view, the proof's replay mark; ARGV: the mark's lifetime (s). Returns {the view's
# fields, 1 if this is the proof's first use else 0}; the mark is set either way (SET NX EX).
_READ_MARKING_PROOF = """
local view = redis.call('HGETALL', KEYS[1])
local first = redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1])
return {view, first and 1 or 0}
"""


def proof_replay_key(enterprise_id: str, replay_key: str) -> str:
    """Where the IdP remembers a device proof's use (one enterprise's replay marks)."""
    return replay_mark(f"idp:{enterprise_id}:device-proof", replay_key)


class SessionStore:
    """Reads and compare-and-set writes of device-session views."""

    def __init__(self, redis: Redis, max_cas_attempts: int = 50) -> None:
        self._redis = redis
        self._attempts = max_cas_attempts
        self._read_views = LuaScript(redis, _READ_VIEWS)
        self._read_marking = LuaScript(redis, _READ_MARKING_PROOF)

    async def load(self, enterprise_id: str, device_session_id: str) -> SessionView | None:
        """The view, or None when nothing is known about this session."""
        return model.from_fields(await self._redis.hgetall(session_key(enterprise_id, device_session_id)))

    async def load_marking_proof(
        self, enterprise_id: str, device_session_id: str, replay_key: str, ttl_s: int
    ) -> tuple[SessionView | None, bool]:
        """The view and the proof's first use (the replay mark `RedisReplayCache.first_use` sets)
        by one script: one command, where the read and the mark were two (a pipeline of the two
        saved a third of that: docs/performance.md)."""
        flat, first = await self._read_marking(
            keys=[session_key(enterprise_id, device_session_id), proof_replay_key(enterprise_id, replay_key)],
            args=[max(1, ttl_s)],
        )
        return model.from_fields(dict(zip(flat[::2], flat[1::2], strict=True))), bool(first)

    async def state(self, enterprise_id: str, device_session_id: str) -> tuple[str | None, bool]:
        """(state, checked out) with one small read: the introspection fast path."""
        values = await self._redis.hmget(session_key(enterprise_id, device_session_id), list(model.ACTIVITY_FIELDS))
        return model.activity(dict(zip(model.ACTIVITY_FIELDS, values, strict=True)))

    async def apply(self, enterprise_id: str, device_session_id: str, fact: Fact) -> Outcome:
        """Apply `fact` atomically against concurrent writers; returns what changed."""
        return (await self.apply_many([(enterprise_id, device_session_id, [fact])]))[0]

    async def apply_many(self, changes: Sequence[tuple[str, str, Sequence[Fact]]]) -> list[Outcome]:
        """Apply each session's facts in order, every session in one optimistic transaction:
        WATCH all the views, read them with one script, write the changed ones with one script
        inside MULTI/EXEC (three round trips whatever the number of sessions); all again if a
        concurrent writer changed any of them. One outcome per entry of `changes` (which names
        each session once): its final view, `changed`/`closed` if any of its facts did.

        Scripts rather than one command per field: a pipeline's every reply is read under its
        own timeout (a timer each), and a batch of hundreds of sessions made thousands of them:
        ≈ 30 % of the IdP's CPU while seeding sessions (py-spy, docs/performance.md)."""
        keys = [session_key(eid, dsid) for eid, dsid, _ in changes]
        for _ in range(self._attempts):
            async with self._redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(*keys)
                    # Read on another connection: the WATCH above already covers every write
                    # that lands after it.
                    current = await self._read_views(keys=keys)
                    outcomes = [
                        model.apply_in_order(model.from_fields(dict(zip(flat[::2], flat[1::2], strict=True))), facts)
                        for flat, (_, _, facts) in zip(current, changes, strict=True)
                    ]
                    if not any(o.changed for o in outcomes):
                        await pipe.unwatch()
                        return outcomes
                    written: list[str] = []
                    args: list[str | int] = [RETENTION_S]
                    for key, outcome in zip(keys, outcomes, strict=True):
                        if outcome.changed:
                            written.append(key)
                            # One argument per view: redis-py packs each argument on its own,
                            # and 2 per field was most of the batch's write (py-spy).
                            args.append(_compact(model.to_fields(outcome.view)))
                    pipe.multi()
                    # EVAL, not LuaScript's EVALSHA: a NOSCRIPT inside MULTI would fail this one
                    # command of a transaction that EXEC still applies.
                    pipe.eval(_WRITE_VIEWS, len(written), *written, *args)
                    await pipe.execute()
                    return outcomes
                except WatchError:
                    continue
        raise RuntimeError("device-session view kept changing under a concurrent writer")

    async def mark_revocation_done(self, enterprise_id: str, device_session_id: str) -> None:
        """Record that the OIDC sessions of a CLOSED device session were revoked and logouts queued."""
        await self._redis.hset(session_key(enterprise_id, device_session_id), "revocation_done", "1")
