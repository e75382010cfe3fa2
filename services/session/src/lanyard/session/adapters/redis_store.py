"""The session store on Redis: the authoritative state, its timers and the event outbox.

Every write of a session changes the session record, the device's current-session pointer, the
live index, the session's timers and the outbox entries of its events together or not at all,
under optimistic concurrency: the records are read, the domain decides in Python, and one script
(`_WRITE_IF_UNCHANGED`) writes only if every record it decided on is still what was read; if
one moved, the lot is read and decided again. Two round trips per write (one when the caller
read the session a moment ago and says so), where WATCH, read and MULTI/EXEC took three to five
and redis-py's watched pipeline cost as much CPU again. Timers live in one sorted set by
due time; a Lua script claims due members atomically by pushing their score a lease ahead, so
with several instances each timer is handed to one of them, and a claim lost in a crash comes
due again after the lease. The state itself decides whether a fired timer acts, so a timer that
fires again after a crash still acts at most once.

Keys (all prefixed `session:`): per enterprise `session:{eid}:…`; the timer queue and the outbox
are service-wide (`session:timers`, `session:outbox`), their members carry the enterprise id.
The outbox is the runtime's (`lanyard.runtime.outbox.RedisOutbox`), its events indexed by device
so a retried call can publish what an earlier attempt left pending.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from lanyard.contracts import Event
from lanyard.runtime.outbox import OutboxKeys, RedisOutbox
from lanyard.runtime.proofs import replay_mark
from lanyard.runtime.redis import LuaScript
from lanyard.session.adapters.proofs import replay_prefix
from lanyard.session.domain import (
    TIMER_KINDS,
    Device,
    DeviceSession,
    Entitlement,
    LockerOptions,
    OrgSettings,
    State,
    deadlines,
)
from lanyard.session.ports import Change, Clock, Mutation, TimerRef

TIMERS = "session:timers"
CLOSED_RETENTION_S = 7 * 24 * 3600

_SET_HIGHER_VERSION = """
local cur = redis.call('GET', KEYS[1])
if cur and cjson.decode(cur)['version'] >= tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""

_DELETE_IF_EQUAL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: the records a decision was made on; ARGV[1..#KEYS]: each as it was read ('' for none);
# then the writes, each as its word count and its words (see `_Writes`). Writes nothing and
# answers 0 when any record is not what was read; every command is checked before the first is
# run, so a bad one cannot leave half a change behind.
_WRITE_IF_UNCHANGED = """
for k = 1, #KEYS do
  if (redis.call('GET', KEYS[k]) or '') ~= ARGV[k] then return 0 end
end
local allowed = {SET=true, SADD=true, SREM=true, ZADD=true, ZREM=true, HSET=true, DELIFEQ=true}
local first = #KEYS + 1
local i = first
while i <= #ARGV do
  if not allowed[ARGV[i + 1]] then return redis.error_reply('not a session write: ' .. tostring(ARGV[i + 1])) end
  i = i + tonumber(ARGV[i]) + 1
end
i = first
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  if ARGV[i + 1] == 'DELIFEQ' then
    if redis.call('GET', ARGV[i + 2]) == ARGV[i + 3] then redis.call('DEL', ARGV[i + 2]) end
  else
    redis.call(unpack(ARGV, i + 1, i + n))
  end
  i = i + n + 1
end
return 1
"""

# KEYS: the device's current-session pointer; ARGV: the session key prefix. Returns {the live
# session's id or false, its stored form or false}: what `open` decides on, in one read.
_READ_CURRENT = """
local current = redis.call('GET', KEYS[1])
if not current then return {false, false} end
return {current, redis.call('GET', ARGV[1] .. current)}
"""

_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[2], member)
end
return due
"""

# KEYS: the session, the proof's replay mark; ARGV: the mark's lifetime (s). Returns {the
# session's JSON or nil, 1 if this is the proof's first use else 0}; the mark is set either way.
_READ_MARKING_PROOF = """
local session = redis.call('GET', KEYS[1])
local first = redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1])
return {session, first and 1 or 0}
"""


def session_to_json(session: DeviceSession) -> str:
    """The stored form of a session."""
    return json.dumps(dataclasses.asdict(session), separators=(",", ":"))


def session_from_json(raw: str) -> DeviceSession:
    """A session from its stored form."""
    data = json.loads(raw)
    data["state"] = State(data["state"])
    data["amr"] = tuple(data["amr"])
    if data.get("entitlement"):
        data["entitlement"] = Entitlement(**data["entitlement"])
    return DeviceSession(**data)


def _org_settings(raw: str | None) -> OrgSettings:
    return OrgSettings(**json.loads(raw)) if raw else OrgSettings()


def _locker_options(raw: str | None) -> LockerOptions:
    if not raw:
        return LockerOptions()
    data = json.loads(raw)
    return LockerOptions(**{k: v for k, v in data.items() if k in LockerOptions.__dataclass_fields__})


def _device_of(event: Event) -> str | None:
    """The outbox index of the session service's events: every one is about a device."""
    return f"device:{event.subject.device_id}" if event.subject.device_id else None


def _timer_member(eid: str, dsid: str, kind: str) -> str:
    return f"{eid}|{dsid}|{kind}"


class _Writes:
    """The commands of one write, recorded once and sent either inside a MULTI/EXEC (`onto`) or
    as the arguments of `_WRITE_IF_UNCHANGED` (`as_script_args`): one description of what a
    change writes serves both paths. Offers the pipeline methods the outbox's `stage` calls."""

    def __init__(self) -> None:
        self.commands: list[tuple[object, ...]] = []

    def set(self, key: str, value: str, ex: int | None = None) -> None:
        self.commands.append(("SET", key, value, "EX", ex) if ex else ("SET", key, value))

    def sadd(self, key: str, *members: str) -> None:
        self.commands.append(("SADD", key, *members))

    def srem(self, key: str, *members: str) -> None:
        self.commands.append(("SREM", key, *members))

    def zadd(self, key: str, mapping: Mapping[str, float]) -> None:
        self.commands.append(("ZADD", key, *(w for member, score in mapping.items() for w in (score, member))))

    def zrem(self, key: str, *members: str) -> None:
        self.commands.append(("ZREM", key, *members))

    def hset(self, key: str, mapping: Mapping[str, str]) -> None:
        self.commands.append(("HSET", key, *(w for item in mapping.items() for w in item)))

    def delete_if_equal(self, key: str, value: str) -> None:
        """Delete `key` if it holds `value` (decided where the write runs, atomically with it)."""
        self.commands.append(("DELIFEQ", key, value))

    def onto(self, pipe: Pipeline) -> None:
        """Queue the commands on `pipe` (inside its MULTI)."""
        for command in self.commands:
            if command[0] == "DELIFEQ":
                # EVAL, not EVALSHA: a NOSCRIPT inside MULTI would fail this one command while
                # the rest of the transaction still applied (Redis does not roll back).
                pipe.eval(_DELETE_IF_EQUAL, 1, command[1], command[2])
            else:
                pipe.execute_command(*command)

    def as_script_args(self) -> list[object]:
        """The commands as `_WRITE_IF_UNCHANGED` reads them, after its first argument."""
        return [w for command in self.commands for w in (len(command), *command)]


class RedisSessionStore:
    """`SessionStore` on one Redis server. Not Redis Cluster ready: one write (a script, or the
    rebuild's transaction) spans an enterprise's keys and the service-wide timer and outbox
    sets, which hash to different slots, and the script names keys it was not given in KEYS."""

    def __init__(self, redis: Redis, clock: Clock, outbox_grace_s: float = 5.0) -> None:
        self._redis = redis
        self._clock = clock
        self._claim = LuaScript(redis, _CLAIM)
        self._read_marking = LuaScript(redis, _READ_MARKING_PROOF)
        self._write_if_unchanged = LuaScript(redis, _WRITE_IF_UNCHANGED)
        self._read_current = LuaScript(redis, _READ_CURRENT)
        self.outbox = RedisOutbox(redis, OutboxKeys("session", _device_of, clock.now), outbox_grace_s)

    # ---------------------------------------------------------------- keys

    @staticmethod
    def _device_key(eid: str, device_id: str) -> str:
        return f"session:{eid}:device:{device_id}"

    @staticmethod
    def _current_key(eid: str, device_id: str) -> str:
        return f"session:{eid}:device:{device_id}:current"

    @staticmethod
    def _session_key(eid: str, dsid: str) -> str:
        return f"session:{eid}:ds:{dsid}"

    # ---------------------------------------------------------------- devices

    async def get_device(self, enterprise_id: str, device_id: str) -> Device | None:
        raw = await self._redis.get(self._device_key(enterprise_id, device_id))
        return Device(**json.loads(raw)) if raw else None

    async def put_device(self, device: Device, events: Sequence[Event]) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._device_key(device.enterprise_id, device.device_id), json.dumps(dataclasses.asdict(device)))
            pipe.sadd(f"session:{device.enterprise_id}:devices", device.device_id)
            self._park(pipe, events)
            await pipe.execute()

    async def list_devices(self, enterprise_id: str) -> list[Device]:
        ids = sorted(await self._redis.smembers(f"session:{enterprise_id}:devices"))
        if not ids:
            return []
        raws = await self._redis.mget([self._device_key(enterprise_id, i) for i in ids])
        return [Device(**json.loads(r)) for r in raws if r]

    # ---------------------------------------------------------------- sessions

    async def get_session(self, enterprise_id: str, device_session_id: str) -> DeviceSession | None:
        raw = await self._redis.get(self._session_key(enterprise_id, device_session_id))
        return session_from_json(raw) if raw else None

    async def get_session_marking_proof(
        self, enterprise_id: str, device_session_id: str, replay_key: str, ttl_s: int
    ) -> tuple[DeviceSession | None, bool]:
        # One script, one command: the replay mark is the one `DeviceProofVerifier.verify` sets
        # (SET NX EX under the enterprise's prefix).
        raw, first = await self._read_marking(
            keys=[
                self._session_key(enterprise_id, device_session_id),
                replay_mark(replay_prefix(enterprise_id), replay_key),
            ],
            args=[max(1, ttl_s)],
        )
        return (session_from_json(raw) if raw else None), bool(first)

    async def current_session_id(self, enterprise_id: str, device_id: str) -> str | None:
        return await self._redis.get(self._current_key(enterprise_id, device_id))

    async def list_live(self, enterprise_id: str) -> list[DeviceSession]:
        ids = sorted(await self._redis.smembers(f"session:{enterprise_id}:live"))
        if not ids:
            return []
        raws = await self._redis.mget([self._session_key(enterprise_id, i) for i in ids])
        return [s for s in (session_from_json(r) for r in raws if r) if s.live]

    async def mutate(
        self,
        enterprise_id: str,
        device_session_id: str,
        decide: Callable[[DeviceSession], Change | None],
        known: DeviceSession | None = None,
    ) -> Change | None:
        if known is not None:
            # The caller read the session a moment ago (a Locker call reads it with its proof):
            # decide on that and write at once, one round trip where reading again is two, before
            # a checkin's event can go out. Anything else — no change, a refusal, a record that
            # moved — is decided again on what is stored.
            try:
                change = decide(known)
            except Exception:
                change = None
            if change is not None:
                key = self._session_key(enterprise_id, device_session_id)
                if await self._write_if(self._change_writes([change]), {key: session_to_json(known)}):
                    return change
        return (await self.mutate_many([(enterprise_id, device_session_id, decide)]))[0]

    async def mutate_many(self, items: Sequence[Mutation]) -> list[Change | None]:
        # One MGET and one script for the whole list, where a mutation per record spent three
        # round trips on each: a fetched batch of grants was 3 x its length in socket writes
        # (py-spy, docs/performance.md). Any concurrent write to one of them re-runs the lot.
        ids = {self._session_key(eid, dsid): (eid, dsid) for eid, dsid, _ in items}
        keys = list(ids)
        while True:
            raws = dict(zip(keys, await self._redis.mget(keys), strict=True))
            current = {k: session_from_json(r) for k, r in raws.items() if r is not None}
            results: list[Change | None] = []
            unchanged: dict[str, DeviceSession] = {}
            changes: list[Change] = []
            for eid, dsid, decide in items:
                key = self._session_key(eid, dsid)
                session = current.get(key)
                change = decide(session) if session is not None else None
                results.append(change)
                if change is None:
                    if session is not None:
                        unchanged[key] = session
                    continue
                changes.append(change)
                for s in change.sessions:
                    current[self._session_key(s.enterprise_id, s.device_session_id)] = s
            writes = self._change_writes(changes)
            for key, (eid, dsid) in ids.items():
                if key not in current:  # unknown: its timers go, as in `mutate`
                    writes.zrem(TIMERS, *(_timer_member(eid, dsid, k) for k in TIMER_KINDS))
            for session in unchanged.values():
                self._schedule(writes, session)
            if await self._write_if(writes, {k: r or "" for k, r in raws.items()}):
                return results

    def _change_writes(self, changes: Sequence[Change]) -> _Writes:
        writes = _Writes()
        for change in changes:
            self._write(writes, change)
            self._release_pointers(writes, change)
        return writes

    async def _write_if(self, writes: _Writes, read: Mapping[str, str]) -> bool:
        """Run `writes` if every key in `read` still holds what was read ('' for nothing)."""
        keys = list(read)
        return bool(await self._write_if_unchanged(keys=keys, args=[*read.values(), *writes.as_script_args()]))

    def _release_pointers(self, writes: _Writes, change: Change) -> None:
        for s in change.sessions:
            if not s.live:
                # Decided where the write runs, not read and watched before it: a checkin is
                # two round trips shorter (the checkin's event waits for this), and a newer
                # session of the device keeps its pointer either way.
                writes.delete_if_equal(self._current_key(s.enterprise_id, s.device_id), s.device_session_id)

    async def open(
        self, enterprise_id: str, device_id: str, decide: Callable[[DeviceSession | None], Change]
    ) -> Change:
        ckey = self._current_key(enterprise_id, device_id)
        while True:
            current, raw = await self._read_current(keys=[ckey], args=[self._session_key(enterprise_id, "")])
            previous = session_from_json(raw) if raw else None
            change = decide(previous)
            writes = _Writes()
            self._write(writes, change)
            writes.set(ckey, change.sessions[-1].device_session_id)
            read = {ckey: current or ""}
            if current:
                read[self._session_key(enterprise_id, current)] = raw or ""
            if await self._write_if(writes, read):
                return change

    def _write(self, writes: _Writes, change: Change) -> None:
        for s in change.sessions:
            key = self._session_key(s.enterprise_id, s.device_session_id)
            live = f"session:{s.enterprise_id}:live"
            if s.live:
                writes.set(key, session_to_json(s))
                writes.sadd(live, s.device_session_id)
            else:
                writes.set(key, session_to_json(s), ex=CLOSED_RETENTION_S)
                writes.srem(live, s.device_session_id)
            self._schedule(writes, s)
        self._park(writes, change.events)

    @staticmethod
    def _schedule(writes: _Writes, session: DeviceSession) -> None:
        due = deadlines(session)
        for kind in TIMER_KINDS:
            member = _timer_member(session.enterprise_id, session.device_session_id, kind)
            if kind in due:
                writes.zadd(TIMERS, {member: due[kind]})
            else:
                writes.zrem(TIMERS, member)

    def _park(self, pipe: Pipeline | _Writes, events: Sequence[Event]) -> None:
        self.outbox.stage(pipe, events)

    # ---------------------------------------------------------------- rebuild

    async def restore(
        self, devices: Sequence[Device], sessions: Sequence[DeviceSession], org_settings: Mapping[str, OrgSettings]
    ) -> int:
        """Write rebuilt records the store does not hold; what it holds is newer and stays.

        Each session is written as the live path writes it (record, live index, timers), plus
        the device's current pointer when live and unset; no event is parked.
        """
        written = 0
        for device in devices:
            key = self._device_key(device.enterprise_id, device.device_id)
            if await self._redis.set(key, json.dumps(dataclasses.asdict(device)), nx=True):
                await self._redis.sadd(f"session:{device.enterprise_id}:devices", device.device_id)
                written += 1
        for eid, settings in org_settings.items():
            written += bool(
                await self._redis.set(f"session:{eid}:org-settings", json.dumps(dataclasses.asdict(settings)), nx=True)
            )
        for s in sessions:
            key = self._session_key(s.enterprise_id, s.device_session_id)
            async with self._redis.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        await pipe.watch(key)
                        if await pipe.exists(key):
                            break
                        writes = _Writes()
                        self._write(writes, Change((s,)))
                        pipe.multi()
                        writes.onto(pipe)
                        if not s.live and s.closed_at is not None:
                            # Kept as long as it would have been had Redis not lost it.
                            left = s.closed_at + CLOSED_RETENTION_S - self._clock.now()
                            pipe.expire(key, max(int(left), 1))
                        if s.live:
                            pipe.set(self._current_key(s.enterprise_id, s.device_id), s.device_session_id, nx=True)
                        await pipe.execute()
                        written += 1
                        break
                    except WatchError:
                        continue
        return written

    # ---------------------------------------------------------------- timers and outbox

    async def claim_due_timers(self, now: float, lease_s: float, limit: int) -> list[TimerRef]:
        members = await self._claim(keys=[TIMERS], args=[now, now + lease_s, limit])
        refs = []
        for m in members:
            eid, dsid, kind = m.split("|", 2)
            if kind in TIMER_KINDS:
                refs.append(TimerRef(eid, dsid, kind))  # type: ignore[arg-type]
        return refs

    async def claim_outbox(self, now: float, lease_s: float, limit: int) -> list[Event]:
        return await self.outbox.claim(now, lease_s, limit)

    async def outbox_done(self, event: Event) -> None:
        await self.outbox.done(event)

    async def outbox_later(self, events: Sequence[Event], due: float) -> None:
        await self.outbox.later(events, due)

    async def pending_events(self, enterprise_id: str, device_id: str) -> list[Event]:
        return await self.outbox.pending(enterprise_id, f"device:{device_id}")

    # ---------------------------------------------------------------- settings, single use, challenges

    async def get_org_settings(self, enterprise_id: str) -> OrgSettings:
        return _org_settings(await self._redis.get(f"session:{enterprise_id}:org-settings"))

    async def put_org_settings(self, enterprise_id: str, settings: OrgSettings) -> None:
        await self._redis.set(f"session:{enterprise_id}:org-settings", json.dumps(dataclasses.asdict(settings)))

    async def get_locker_options(self, enterprise_id: str) -> LockerOptions:
        return _locker_options(await self._redis.get(f"session:{enterprise_id}:locker-options"))

    async def get_view_settings(self, enterprise_id: str) -> tuple[OrgSettings, LockerOptions]:
        org, options = await self._redis.mget(
            [f"session:{enterprise_id}:org-settings", f"session:{enterprise_id}:locker-options"]
        )
        return _org_settings(org), _locker_options(options)

    async def put_locker_options(self, enterprise_id: str, options: LockerOptions) -> bool:
        raw = json.dumps(dataclasses.asdict(options))
        return bool(await self._redis.eval(_SET_HIGHER_VERSION, 1, f"session:{enterprise_id}:locker-options", raw,
                                           options.version))  # fmt: skip

    async def park(self, events: Sequence[Event]) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            self._park(pipe, events)
            await pipe.execute()

    async def first_use(self, enterprise_id: str, kind: str, value: str, ttl_s: int) -> bool:
        digest = hashlib.sha256(value.encode()).hexdigest()
        return bool(await self._redis.set(f"session:{enterprise_id}:once:{kind}:{digest}", "1", nx=True, ex=ttl_s))

    async def put_challenge(self, enterprise_id: str, challenge: str, device_session_id: str, ttl_s: int) -> None:
        await self._redis.set(f"session:{enterprise_id}:face-challenge:{challenge}", device_session_id, ex=ttl_s)

    async def take_challenge(self, enterprise_id: str, challenge: str) -> str | None:
        if not isinstance(challenge, str) or not 16 <= len(challenge) <= 128:
            return None
        return await self._redis.getdel(f"session:{enterprise_id}:face-challenge:{challenge}")
