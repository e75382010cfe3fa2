"""The policy service's Redis read model: projection of its topics, and the live device sessions.

How configuration reaches Redis: **by consuming our own events**, never by dual-writing. The
admin API publishes a `lanyard.policy-config.v1` event and waits (bounded) until this
projection has applied it, so an admin reads their own write; the projection is the only
writer of configuration keys, and replaying the compacted topic rebuilds them. Directory and
app-profile events are projected the same way.

Key layout (every key of one enterprise shares the `{enterprise_id}` hash tag, so one
enterprise lives in one Redis Cluster slot and MULTI works across its keys):

    policy:{e}:policies | deployments | licences | apps | users   hash  id → JSON
    policy:{e}:groups                      set of group ids the directory knows
    policy:{e}:org                         JSON org settings
    policy:{e}:cloud                       hash state, failed_attempts, established_by, established_at,
                                           last_attempt (JSON)
    policy:{e}:locker-options              JSON Locker options (the highest version applied)
    policy:{e}:locker-options:next         the last version handed out to a change (may lead the above)
    policy:{e}:devices                     hash device_id → JSON of its Locker's last report
    policy:{e}:created_at                  ISO time of the earliest config event seen
    policy:{e}:applied:{event_id}          marker (1 h) that an event was projected
    policy:{e}:versions                    hash topic:record key → offset of the last record applied
                                           to that item (kept for deletions too)
    policy:{e}:sessions                    hash device_session_id → JSON LiveSession
    policy:{e}:user-sessions:{user_id}     set of that user's tracked sessions
    policy:{e}:seats                       hash user_id → live granted sessions (a seat each user)
    policy:{e}:apa-seats                   hash user_id → live grants with face_allowed (an APA seat)
    policy:{e}:closed:{device_session_id}  tombstone of a checked-in session (8 d)
    policy:{e}:lock                        the enterprise's evaluation lock
    policy:licence-checks                  zset enterprise → next licence boundary (epoch s)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import WatchError

from lanyard.contracts import Event
from lanyard.contracts import events as ev
from lanyard.policy.domain import (
    AppDeployment,
    AppProfile,
    DeviceReport,
    DirectoryUser,
    Grant,
    Licence,
    LiveSession,
    LockerOptions,
    OrgSettings,
    SeatCount,
    Snapshot,
    UserPolicy,
)
from lanyard.policy.ports import CheckoutView, SeatKind
from lanyard.runtime.errors import StateLost
from lanyard.runtime.redis import LuaScript

APPLIED_TTL_S = 3600
CLOSED_TTL_S = 8 * 24 * 3600
LICENCE_CHECKS = "policy:licence-checks"
KINDS = ("policies", "deployments", "licences", "apps", "users")
SEAT_KEYS: dict[SeatKind, str] = {"sso": "seats", "apa": "apa-seats"}

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
_SET_HIGHER_VERSION = """
local cur = redis.call('get', KEYS[1])
if cur and cjson.decode(cur)['version'] >= tonumber(ARGV[2]) then return 0 end
redis.call('set', KEYS[1], ARGV[1])
return 1
"""
# KEYS: the applied options, the version counter; ARGV: the version the change was made against
# ('' for none). Hands out the next version unless the change was made against an older one.
_NEXT_VERSION = """
local applied = redis.call('get', KEYS[1])
local current = applied and cjson.decode(applied)['version'] or 0
local issued = tonumber(redis.call('get', KEYS[2]) or '0')
if ARGV[1] ~= '' and tonumber(ARGV[1]) ~= current then return {-1, current} end
local nxt = math.max(current, issued) + 1
redis.call('set', KEYS[2], nxt)
return {nxt, current}
"""
# The seat rule of every script that changes seats: '1' takes one, '-1' gives one back, never
# below zero (the field goes at 0), '0' leaves the count as it is.
_SEAT_RULE = """
local function seat(key, user, delta)
  if delta == '1' then
    redis.call('HINCRBY', key, user, 1)
  elseif delta == '-1' then
    if redis.call('HINCRBY', key, user, -1) <= 0 then redis.call('HDEL', key, user) end
  end
end
"""
# KEYS: a seat hash; ARGV: user id. One seat given back.
_RELEASE_SEAT = _SEAT_RULE + "seat(KEYS[1], ARGV[1], '-1')\nreturn 1\n"
# KEYS: tombstones. 1 for each that exists, else 0, in the order of KEYS (one reply for a run).
_CLOSED = """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('EXISTS', key) end
return out
"""
# KEYS: sessions, pending, seats, apa-seats; ARGV: the user-sessions key prefix, then six values
# per session: its id, record, announcement ('' for none), user, and its change to each seat hash.
_SAVE_SESSIONS = (
    _SEAT_RULE
    + """
for i = 2, #ARGV, 6 do
  local dsid, user = ARGV[i], ARGV[i + 3]
  redis.call('HSET', KEYS[1], dsid, ARGV[i + 1])
  if ARGV[i + 2] ~= '' then redis.call('HSET', KEYS[2], dsid, ARGV[i + 2]) end
  redis.call('SADD', ARGV[1] .. user, dsid)
  seat(KEYS[3], user, ARGV[i + 4])
  seat(KEYS[4], user, ARGV[i + 5])
end
return (#ARGV - 1) / 6
"""
)
_SET_EARLIER = """
local cur = redis.call('get', KEYS[1])
if (not cur) or ARGV[1] < cur then redis.call('set', KEYS[1], ARGV[1]) return 1 end
return 0
"""


def k(enterprise_id: str, *parts: str) -> str:
    """A key of one enterprise (hash-tagged by enterprise id)."""
    return ":".join(("policy", "{" + enterprise_id + "}", *parts))


def _seat_changes(before: LiveSession | None, after: LiveSession | None) -> tuple[list[str], list[str]]:
    """The seat keys a session's change takes a seat in, and those it gives one back to."""
    taken: list[str] = []
    released: list[str] = []
    for key, holds in (("seats", lambda s: s.granted), ("apa-seats", lambda s: s.holds_apa_seat)):
        was, now = bool(before and holds(before)), bool(after and holds(after))
        if now and not was:
            taken.append(key)
        elif was and not now:
            released.append(key)
    return taken, released


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


def _dt(raw: str) -> datetime:
    value = datetime.fromisoformat(raw)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def session_to_json(s: LiveSession) -> str:
    """Serialise a tracked session."""
    grant = None
    if s.grant is not None:
        grant = {**s.grant.__dict__, "apps": list(s.grant.apps)}
    return json.dumps(
        {
            "device_session_id": s.device_session_id,
            "device_id": s.device_id,
            "user_id": s.user_id,
            "amr": list(s.amr),
            "checked_out_at": _iso(s.checked_out_at),
            "state": s.state,
            "version": s.version,
            "grant": grant,
        }
    )


def session_from_json(raw: str) -> LiveSession:
    """Parse a tracked session."""
    d = json.loads(raw)
    grant = d.get("grant")
    return LiveSession(
        device_session_id=d["device_session_id"],
        device_id=d["device_id"],
        user_id=d["user_id"],
        amr=tuple(d["amr"]),
        checked_out_at=_dt(d["checked_out_at"]),
        state=d["state"],
        version=d["version"],
        grant=Grant(**{**grant, "apps": tuple(grant["apps"])}) if grant else None,
    )


def _user(raw: str | None) -> DirectoryUser | None:
    if raw is None:
        return None
    d = json.loads(raw)
    return DirectoryUser(
        user_id=d["user_id"], status=d["status"], groups=tuple(d["groups"]), totp_enrolled=d.get("totp_enrolled")
    )


def _policy(d: dict[str, Any]) -> UserPolicy:
    return UserPolicy(
        policy_id=d["policy_id"],
        name=d["name"],
        sso_enabled=d["sso_enabled"],
        auth_mode=d["auth_mode"],
        inactivity_timeout_s=d["inactivity_timeout_s"],
        max_session_s=d["max_session_s"],
        face_recency_s=d["face_recency_s"],
        priority=d["priority"],
        users=tuple(d["users"]),
        groups=tuple(d["groups"]),
    )


def _licence(d: dict[str, Any]) -> Licence:
    return Licence(d["licence_id"], d["kind"], _dt(d["valid_from"]), _dt(d["valid_until"]), d["seats"])


def _device_json(r: DeviceReport) -> str:
    return json.dumps(
        {
            "locker_version": r.locker_version,
            "sso_extension_installed": r.sso_extension_installed,
            "at": _iso(r.at),
            "refused": r.refused,
        }
    )


def _cloud_record(p: ev.CloudConnectionChangedPayload) -> dict[str, str | int]:
    record: dict[str, str | int] = {"state": p.state, "failed_attempts": p.failed_attempts}
    record["established_by"] = p.established_by or ""
    record["established_at"] = _iso(p.established_at) if p.established_at else ""
    record["last_attempt"] = p.last_attempt.model_dump_json() if p.last_attempt else ""
    return record


def _org(raw: str | None) -> OrgSettings:
    if not raw:
        return OrgSettings()
    d = json.loads(raw)
    d.pop("settings_id", None)
    return OrgSettings(**{f: d[f] for f in OrgSettings.__dataclass_fields__ if f in d})


class RedisReadModel:
    """Implements `ports.ReadModel` on one asyncio Redis client (decoded strings)."""

    def __init__(
        self, redis: Redis, lock_ttl_ms: int = 10_000, lock_wait_s: float = 15.0, complete_key: str | None = None
    ) -> None:
        """`complete_key`: the rebuild's completeness marker; when given, every configuration
        read requires it (`StateLost` without it), so nothing is decided against a projection
        Redis lost while the service ran (a flush: the marker goes with everything else)."""
        self._r = redis
        self._complete_key = complete_key
        self._lock_ttl_ms = lock_ttl_ms
        self._lock_wait_s = lock_wait_s
        self._local_locks: dict[str, asyncio.Lock] = {}
        self._save_sessions = LuaScript(redis, _SAVE_SESSIONS)

    # ------------------------------------------------------------------------------ locking

    @contextlib.asynccontextmanager
    async def lock(self, enterprise_id: str) -> AsyncIterator[None]:
        """Serialise the evaluations of one enterprise (checkout, checkin, re-evaluation).

        The lock expires on its own if its holder dies; versions are allocated under it, so two
        evaluators never publish the same version with different contents. Contenders in this
        process queue on an asyncio lock first (FIFO, no polling): only one of them at a time
        polls Redis, against other instances. Without it, the consumer's concurrent partitions
        all polled with backoff and checkouts crawled at ~90/s.
        """
        local = self._local_locks.setdefault(enterprise_id, asyncio.Lock())
        async with local:
            async with self._redis_lock(enterprise_id):
                yield

    @contextlib.asynccontextmanager
    async def _redis_lock(self, enterprise_id: str) -> AsyncIterator[None]:
        key, token = k(enterprise_id, "lock"), secrets.token_hex(8)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._lock_wait_s
        delay = 0.002
        while not await self._r.set(key, token, nx=True, px=self._lock_ttl_ms):
            if loop.time() > deadline:
                raise TimeoutError(f"evaluation lock of {enterprise_id} not acquired")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        try:
            yield
        finally:
            await self._r.eval(_RELEASE, 1, key, token)

    # -------------------------------------------------------------------- config projection

    async def apply(self, event: Event, offset: int | None = None) -> bool:
        """Project one consumed event; idempotent (an upsert rewrites the same value).

        `offset` is the record's offset in its partition. One item's records always share a
        partition (they share a key), so the offset orders them: a record older than the one
        last applied to its item changes nothing and returns False. That is what a consumer
        resuming behind its last commit (a commit refused while the broker was cut) or a
        rebuild followed by the live consumer re-reads, and re-applying it would put an item
        back to an older state (trust "code issued" again) and re-evaluate live sessions against
        it. The record last applied itself is applied again and returns True, so a crash
        between projecting and re-evaluating still re-evaluates. Without an offset (no record
        behind the event) the event is applied unconditionally.

        Returns True when the event changes configuration (the caller then re-evaluates).
        """
        versions, item = k(event.enterprise_id, "versions"), f"{event.topic.name}:{event.key()}"
        async with self._r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    if offset is not None:
                        await pipe.watch(versions)
                        last = await pipe.hget(versions, item)
                        if last is not None and int(last) > offset:
                            await pipe.reset()
                            return False
                    pipe.multi()
                    if not self._queue_apply(pipe, event):
                        await pipe.reset()
                        return False
                    if offset is not None:
                        pipe.hset(versions, item, offset)
                    await pipe.execute()
                    return True
                except WatchError:
                    continue  # another item of the enterprise was applied meanwhile: read again

    def _queue_apply(self, pipe: Any, event: Event) -> bool:
        """Queue the writes projecting `event`; False for an event this projection ignores."""
        e, p = event.enterprise_id, event.payload
        match event:
            case ev.UserPolicyUpserted():
                pipe.hset(k(e, "policies"), p.policy_id, p.model_dump_json())
            case ev.UserPolicyDeleted():
                pipe.hdel(k(e, "policies"), p.policy_id)
            case ev.AppDeploymentUpserted():
                pipe.hset(k(e, "deployments"), p.client_id, p.model_dump_json())
            case ev.AppDeploymentDeleted():
                pipe.hdel(k(e, "deployments"), p.client_id)
            case ev.LicenceUpserted():
                pipe.hset(k(e, "licences"), p.licence_id, p.model_dump_json())
            case ev.LicenceDeleted():
                pipe.hdel(k(e, "licences"), p.licence_id)
            case ev.OrgSettingsChanged():
                pipe.set(k(e, "org"), p.model_dump_json())
            case ev.CloudConnectionChanged():
                pipe.hset(k(e, "cloud"), mapping=_cloud_record(p))
            case ev.LockerOptionsChanged():
                pipe.eval(_SET_HIGHER_VERSION, 1, k(e, "locker-options"), p.model_dump_json(), p.version)
            case ev.UserUpserted():
                record = {"user_id": p.user_id, "status": p.status, "groups": list(p.groups),
                          "totp_enrolled": p.totp_enrolled}  # fmt: skip
                pipe.hset(k(e, "users"), p.user_id, json.dumps(record))
            case ev.UserDeleted():
                pipe.hdel(k(e, "users"), p.user_id)
            case ev.GroupUpserted():
                pipe.sadd(k(e, "groups"), p.group_id)
            case ev.GroupDeleted():
                pipe.srem(k(e, "groups"), p.group_id)
            case ev.AppProfileUpserted():
                pipe.hset(k(e, "apps"), p.client_id, json.dumps({"client_id": p.client_id, "enabled": p.enabled}))
            case ev.AppProfileDeleted():
                pipe.hdel(k(e, "apps"), p.client_id)
            case _:
                return False
        if event.topic is ev.topics.POLICY_CONFIG:
            pipe.eval(_SET_EARLIER, 1, k(e, "created_at"), _iso(event.occurred_at))
        pipe.set(k(e, "applied", event.event_id), "1", ex=APPLIED_TTL_S)
        return True

    async def was_applied(self, enterprise_id: str, event_id: str) -> bool:
        """True once the projection applied the event (read-your-writes for the admin API)."""
        return bool(await self._r.exists(k(enterprise_id, "applied", event_id)))

    def _queue_snapshot(self, pipe: Any, e: str, complete: bool = True) -> None:
        for kind in ("policies", "deployments", "licences", "apps"):
            pipe.hgetall(k(e, kind))
        pipe.get(k(e, "org"))
        pipe.hget(k(e, "cloud"), "state")
        pipe.smembers(k(e, "groups"))
        if self._complete_key and complete:
            pipe.exists(self._complete_key)
        else:
            pipe.echo("1")

    def _build_snapshot(self, values: Sequence[Any]) -> Snapshot:
        policies, deployments, licences, apps, org, cloud_state, groups, complete = values
        if not int(complete):
            # Found by the soak (redis-flush:policy): the service went on deciding checkouts
            # against the emptied projection and denied a clinician (`unknown_user`).
            raise StateLost("the policy projection is lost and not rebuilt yet")
        return Snapshot(
            policies=tuple(_policy(json.loads(v)) for v in policies.values()),
            deployments=tuple(
                AppDeployment(d["client_id"], tuple(d["users"]), tuple(d["groups"]))
                for d in map(json.loads, deployments.values())
            ),
            licences=tuple(_licence(json.loads(v)) for v in licences.values()),
            org=_org(org),
            cloud_state=cloud_state or "not_connected",
            app_profiles={c: AppProfile(c, json.loads(v)["enabled"]) for c, v in apps.items()},
            known_groups=frozenset(groups),
        )

    async def snapshot(self, enterprise_id: str, complete: bool = True) -> Snapshot:
        """The enterprise's configuration, read atomically; `complete=False` reads it also while
        the projection is being rebuilt (what only schedules work, decides nothing)."""
        pipe = self._r.pipeline(transaction=True)
        self._queue_snapshot(pipe, enterprise_id, complete)
        return self._build_snapshot(await pipe.execute())

    async def known(self, enterprise_id: str) -> bool:
        """Whether any event of this enterprise reached the projection: its directory (the IdP's
        bootstrap publishes the first superadmin), app profiles or configuration."""
        keys = [k(enterprise_id, part) for part in ("users", "groups", "apps", "created_at")]
        return bool(await self._r.exists(*keys))

    async def created_at(self, enterprise_id: str) -> datetime | None:
        """When the enterprise was first configured (its earliest policy-config event)."""
        raw = await self._r.get(k(enterprise_id, "created_at"))
        return _dt(raw) if raw else None

    async def get_item(self, enterprise_id: str, kind: str, item_id: str) -> dict | None:
        """One configuration item as JSON (kind in KINDS)."""
        raw = await self._r.hget(k(enterprise_id, kind), item_id)
        return json.loads(raw) if raw else None

    async def list_items(self, enterprise_id: str, kind: str) -> list[dict]:
        """Every item of a kind, ordered by id."""
        raw = await self._r.hgetall(k(enterprise_id, kind))
        return [json.loads(raw[i]) for i in sorted(raw)]

    async def org_raw(self, enterprise_id: str) -> dict | None:
        """The last org-settings payload, if any was published."""
        raw = await self._r.get(k(enterprise_id, "org"))
        return json.loads(raw) if raw else None

    async def cloud(self, enterprise_id: str) -> dict:
        """The projected trust state: state, failures, who established it and the last attempt."""
        raw = await self._r.hgetall(k(enterprise_id, "cloud"))
        attempt = raw.get("last_attempt")
        return {
            "state": raw.get("state", "not_connected"),
            "failed_attempts": int(raw.get("failed_attempts", 0)),
            "established_by": raw.get("established_by") or None,
            "established_at": raw.get("established_at") or None,
            "last_attempt": json.loads(attempt) if attempt else None,
        }

    async def locker_options(self, enterprise_id: str) -> LockerOptions:
        """The Locker options applied last (the defaults at version 0 when none were set)."""
        raw = await self._r.get(k(enterprise_id, "locker-options"))
        if not raw:
            return LockerOptions()
        d = json.loads(raw)
        return LockerOptions(**{f: d[f] for f in LockerOptions.__dataclass_fields__ if f in d})

    async def next_locker_options_version(self, enterprise_id: str, expected: int | None) -> tuple[int, int]:
        """(the version a change gets, the current version); the first is -1 when `expected` is
        not the current version. Two concurrent changes never get the same version."""
        nxt, current = await self._r.eval(
            _NEXT_VERSION, 2, k(enterprise_id, "locker-options"), k(enterprise_id, "locker-options", "next"),
            "" if expected is None else str(expected),
        )  # fmt: skip
        return int(nxt), int(current)

    async def record_devices(self, enterprise_id: str, reports: Sequence[DeviceReport]) -> None:
        """Keep each device's latest report (a redelivered or older report changes nothing)."""
        if not reports:
            return
        key = k(enterprise_id, "devices")
        latest: dict[str, DeviceReport] = {}
        for r in reports:
            if r.device_id not in latest or latest[r.device_id].at <= r.at:
                latest[r.device_id] = r
        stored = await self._r.hmget(key, list(latest))
        fresh = {
            r.device_id: _device_json(r)
            for r, old in zip(latest.values(), stored, strict=True)
            if old is None or _dt(json.loads(old)["at"]) <= r.at
        }
        if fresh:
            await self._r.hset(key, mapping=fresh)

    async def devices(self, enterprise_id: str) -> list[DeviceReport]:
        """Every device's latest report."""
        raw = await self._r.hgetall(k(enterprise_id, "devices"))
        out = []
        for device_id, value in sorted(raw.items()):
            d = json.loads(value)
            out.append(
                DeviceReport(device_id, d["locker_version"], d["sso_extension_installed"], _dt(d["at"]), d["refused"])
            )
        return out

    async def all_users(self, enterprise_id: str) -> Mapping[str, DirectoryUser | None]:
        """Every directory user the projection knows (readiness, not the hot path)."""
        raw = await self._r.hgetall(k(enterprise_id, "users"))
        return {user_id: _user(value) for user_id, value in raw.items()}

    # ---------------------------------------------------------------------------- sessions

    async def checkout_view(self, enterprise_id: str, checkouts: Sequence[tuple[str, str]]) -> CheckoutView:
        """The checkout hot path's one round trip for a run of (user, device session) checkouts:
        the users, the configuration, seat counts and who of them holds one, the sessions, their
        unacknowledged announcements and tombstones."""
        e = enterprise_id
        users = sorted({user for user, _ in checkouts})
        dsids = [dsid for _, dsid in checkouts]
        pipe = self._r.pipeline(transaction=True)
        pipe.hmget(k(e, "users"), users)
        self._queue_snapshot(pipe, e)
        self._queue_seats(pipe, e, users)
        pipe.hmget(k(e, "sessions"), dsids)
        pipe.hmget(k(e, "pending"), dsids)
        pipe.eval(_CLOSED, len(dsids), *(k(e, "closed", dsid) for dsid in dsids))
        values = await pipe.execute()
        found, snapshot = values[0], values[1:9]
        sessions, pending, closed = values[13], values[14], values[15]
        return CheckoutView(
            users={user: _user(raw) for user, raw in zip(users, found, strict=True)},
            snapshot=self._build_snapshot(snapshot),
            seats=self._build_seats(users, values[9:13]),
            existing={d: session_from_json(raw) for d, raw in zip(dsids, sessions, strict=True) if raw},
            pending={
                d: raw.encode() if isinstance(raw, str) else raw for d, raw in zip(dsids, pending, strict=True) if raw
            },
            closed=frozenset(d for d, gone in zip(dsids, closed, strict=True) if gone),
        )

    @staticmethod
    def _queue_seats(pipe: Any, e: str, users: Sequence[str]) -> None:
        for kind in SEAT_KEYS.values():
            pipe.hlen(k(e, kind))
            pipe.hmget(k(e, kind), users)

    @staticmethod
    def _build_seats(users: Sequence[str], values: Sequence[Any]) -> SeatCount:
        in_use, held, apa_in_use, apa_held = values
        return SeatCount(
            int(in_use), frozenset(u for u, n in zip(users, held, strict=True) if n),
            int(apa_in_use), frozenset(u for u, n in zip(users, apa_held, strict=True) if n),
        )  # fmt: skip

    async def session(self, enterprise_id: str, device_session_id: str) -> LiveSession | None:
        """A tracked (not yet closed) session."""
        raw = await self._r.hget(k(enterprise_id, "sessions"), device_session_id)
        return session_from_json(raw) if raw else None

    async def is_closed(self, enterprise_id: str, device_session_id: str) -> bool:
        """True once the session was checked in (terminal)."""
        return bool(await self._r.exists(k(enterprise_id, "closed", device_session_id)))

    async def save_session(
        self, enterprise_id: str, before: LiveSession | None, after: LiveSession, pending: bytes | None = None
    ) -> None:
        """Store a session's new record and keep the seat count in step (call under the lock);
        `pending` is the event announcing it, kept until it was acknowledged by the broker."""
        await self.save_sessions(enterprise_id, [(before, after, pending)])

    async def save_sessions(
        self, enterprise_id: str, changes: Sequence[tuple[LiveSession | None, LiveSession, bytes | None]]
    ) -> None:
        """`save_session` for several sessions in one atomic script, seats taken and given back
        inside it (a seat never below zero). One script, not a transaction of four or five
        commands per session: every reply of a pipeline is read under a timer of its own, and a
        run of hundreds of checkouts made thousands of them (docs/performance.md)."""
        e = enterprise_id
        args: list[str | bytes] = [k(e, "user-sessions", "")]
        for before, after, pending in changes:
            taken, released = _seat_changes(before, after)
            deltas = ("1" if key in taken else "-1" if key in released else "0" for key in SEAT_KEYS.values())
            args += (after.device_session_id, session_to_json(after), pending or "", after.user_id, *deltas)
        keys = [k(e, "sessions"), k(e, "pending"), *(k(e, key) for key in SEAT_KEYS.values())]
        await self._save_sessions(keys=keys, args=args)

    async def clear_pending(self, enterprise_id: str, *device_session_ids: str) -> None:
        """These announcements were acknowledged."""
        if device_session_ids:
            await self._r.hdel(k(enterprise_id, "pending"), *device_session_ids)

    async def close_session(self, enterprise_id: str, device_session_id: str, before: LiveSession | None) -> None:
        """Forget a checked-in session and leave a tombstone so it is never granted again."""
        e = enterprise_id
        pipe = self._r.pipeline(transaction=True)
        pipe.set(k(e, "closed", device_session_id), "1", ex=CLOSED_TTL_S)
        pipe.hdel(k(e, "sessions"), device_session_id)
        if before is not None:
            pipe.srem(k(e, "user-sessions", before.user_id), device_session_id)
            # With the tombstone, in one transaction: a Redis lost between the two kept the seat
            # for good, since a retried checkin finds the tombstone and does nothing.
            for kind in _seat_changes(before, None)[1]:
                pipe.eval(_RELEASE_SEAT, 1, k(e, kind), before.user_id)
        await pipe.execute()

    async def live_sessions(self, enterprise_id: str, user_id: str | None = None) -> list[LiveSession]:
        """Tracked sessions of the enterprise, or of one user."""
        e = enterprise_id
        if user_id is None:
            return [session_from_json(v) for v in (await self._r.hgetall(k(e, "sessions"))).values()]
        ids = sorted(await self._r.smembers(k(e, "user-sessions", user_id)))
        if not ids:
            return []
        raws = await self._r.hmget(k(e, "sessions"), ids)
        return [session_from_json(r) for r in raws if r]

    async def users(self, enterprise_id: str, user_ids: Sequence[str]) -> Mapping[str, DirectoryUser | None]:
        """Directory records of several users."""
        ids = sorted(set(user_ids))
        if not ids:
            return {}
        raws = await self._r.hmget(k(enterprise_id, "users"), ids)
        return {i: _user(r) for i, r in zip(ids, raws, strict=True)}

    async def seat_holders(self, enterprise_id: str, kind: SeatKind = "sso") -> Mapping[str, int]:
        """User → that user's live sessions holding a seat of `kind`."""
        return {u: int(n) for u, n in (await self._r.hgetall(k(enterprise_id, SEAT_KEYS[kind]))).items()}

    async def user_seats(self, enterprise_id: str, user_id: str) -> SeatCount:
        """Seats in use, and whether this user holds one (SSO and APA)."""
        pipe = self._r.pipeline(transaction=True)
        self._queue_seats(pipe, enterprise_id, [user_id])
        return self._build_seats([user_id], await pipe.execute())

    async def restore_sessions(
        self, enterprise_id: str, sessions: Sequence[LiveSession], closed: Mapping[str, int]
    ) -> None:
        """Write rebuilt sessions, their seats and the tombstones (`closed`: id → seconds left) in
        one transaction. For a store that lost them: seat counts are set, not added to."""
        e = enterprise_id
        seats: dict[str, dict[str, int]] = {"seats": {}, "apa-seats": {}}
        pipe = self._r.pipeline(transaction=True)
        for s in sessions:
            pipe.hset(k(e, "sessions"), s.device_session_id, session_to_json(s))
            pipe.sadd(k(e, "user-sessions", s.user_id), s.device_session_id)
            for kind in _seat_changes(None, s)[0]:
                seats[kind][s.user_id] = seats[kind].get(s.user_id, 0) + 1
        for kind, held in seats.items():
            pipe.delete(k(e, kind))
            if held:
                pipe.hset(k(e, kind), mapping=held)
        for dsid, ttl_s in closed.items():
            pipe.set(k(e, "closed", dsid), "1", ex=ttl_s)
        await pipe.execute()

    # ------------------------------------------------------------------------ licence clock

    async def schedule_licence_check(self, enterprise_id: str, at: datetime | None) -> None:
        """Remember when the enterprise's licences next start or end (None: never)."""
        if at is None:
            await self._r.zrem(LICENCE_CHECKS, enterprise_id)
        else:
            await self._r.zadd(LICENCE_CHECKS, {enterprise_id: at.timestamp()})

    async def due_licence_checks(self, now: datetime) -> AsyncIterator[str]:
        """Enterprises whose licence boundary has passed; each is claimed by one instance only."""
        for enterprise_id in await self._r.zrangebyscore(LICENCE_CHECKS, "-inf", now.timestamp()):
            if await self._r.zrem(LICENCE_CHECKS, enterprise_id):
                yield enterprise_id
