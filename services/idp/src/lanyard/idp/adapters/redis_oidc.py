"""The protocol's Redis layout: codes, grants, refresh-token families, interactions, indexes.

Every key lives under `idp:oidc:{<enterprise>}:` (the braces are a Redis Cluster hash tag, so an
enterprise's keys share a slot and the Lua scripts below may touch several of them).

    code:<sha256(code)>        JSON of the authorization request it answers      TTL code_ttl (60 s)
    code-used:<sha256(code)>   the same JSON, once redeemed (replay detection)    TTL replay window
    grant:<gid>                hash: client_id user_id sid dsid scope auth_time amr acr nonce
                               claims, state (issued|active|revoked), rt (current refresh hash)
    rt:<sha256(refresh)>       hash: gid client_id state (current|rotated)       TTL refresh ttl
    sid:<sid>                  set of gids of one OIDC session (index for logout)
    ds:<dsid>                  set of gids of one device session (index for check-in)
    revoked-sid:<sid>, revoked-ds:<dsid>   markers: no new grant may join a revoked session
    ix:<id>                    a validated authorization request waiting for login TTL 10 min
    logout:<token>             a pending logout confirmation (the browser sid)     TTL 10 min

A grant is one authorization (one code) and everything issued from it: its access tokens carry
`gid`, its refresh tokens are one rotation family. Revoking anything flips `grant.state`, so the
hot checks (introspection, UserInfo, refresh) read one hash field, whatever the number of live
sessions, and revoking a session touches only its own index. Secrets (codes, refresh tokens) are
stored only as SHA-256 hashes: they are 256-bit random, so a plain hash is enough.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from lanyard.idp.oidc.domain import Grant, RevokedGrant
from lanyard.runtime.redis import LuaScript

_CREATE = """
-- KEYS: grant, sid index, ds index (or ''), code, revoked-sid, revoked-ds (or '')
-- ARGV: code json, code ttl, grant ttl, then field/value pairs of the grant
if redis.call('EXISTS', KEYS[5]) == 1 then return 0 end
if KEYS[6] ~= '' and redis.call('EXISTS', KEYS[6]) == 1 then return 0 end
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], 'state', 'issued', unpack(fields))
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[2], string.match(KEYS[1], 'grant:(.*)$'))
redis.call('EXPIRE', KEYS[2], ARGV[3], 'GT')
if redis.call('TTL', KEYS[2]) < 0 then redis.call('EXPIRE', KEYS[2], ARGV[3]) end
if KEYS[3] ~= '' then
  redis.call('SADD', KEYS[3], string.match(KEYS[1], 'grant:(.*)$'))
  redis.call('EXPIRE', KEYS[3], ARGV[3], 'GT')
  if redis.call('TTL', KEYS[3]) < 0 then redis.call('EXPIRE', KEYS[3], ARGV[3]) end
end
redis.call('SET', KEYS[4], ARGV[1], 'EX', ARGV[2])
return 1
"""

# A Lua function both token-endpoint reads start with: the status of a grant's user, read from
# the directory's record under `prefix` ('' for no such user; false when no prefix was given).
_USER_STATUS = """
local function user_status(prefix, grant)
  if prefix == '' then return false end
  for i = 1, #grant, 2 do
    if grant[i] == 'user_id' then
      local user = redis.call('GET', prefix .. grant[i + 1])
      if not user then return '' end
      local s = cjson.decode(user)['status']
      if type(s) == 'string' then return s end
      return ''
    end
  end
  return ''
end
"""

_CONSUME = (
    _USER_STATUS
    + """
-- One atomic step: exactly one caller ever gets {1, record, grant fields, user status}; every
-- later caller gets {0, record} (a replay) or {0} (never issued / expired). The grant comes back
-- whole, as it stood at the redemption, and with it its user's status read from the directory's
-- record ('' for no such user; nil when no user key prefix was given), so the token endpoint
-- needs no second read.
-- KEYS: code, code-used; ARGV: replay window, grant key prefix, user key prefix (or '')
local v = redis.call('GET', KEYS[1])
if v then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], v, 'EX', ARGV[1])
  local gid = cjson.decode(v)['gid']
  local grant = redis.call('HGETALL', ARGV[2] .. gid)
  return {1, v, grant, user_status(ARGV[3], grant)}
end
local used = redis.call('GET', KEYS[2])
if used then return {0, used} end
return {0}
"""
)

_ACTIVATE = """
-- KEYS: grant, new rt, sid index, ds index (or ''); ARGV: rt hash, client id, ttl
if redis.call('HGET', KEYS[1], 'state') ~= 'issued' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'active', 'rt', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('HSET', KEYS[2], 'gid', string.match(KEYS[1], 'grant:(.*)$'), 'client_id', ARGV[2], 'state', 'current')
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[3], 'GT')
if KEYS[4] ~= '' then redis.call('EXPIRE', KEYS[4], ARGV[3], 'GT') end
return 1
"""

_READ_REFRESH = (
    _USER_STATUS
    + """
-- KEYS: rt; ARGV: grant key prefix, device-view key prefix (or ''), user key prefix (or '').
-- Returns {rt fields, grant fields, device-view fields, user status} or {}: the device view of
-- the grant's device session (empty when none, or when no prefix was given) and its user's status
-- ('' for no such user; nil when no user prefix was given) are read in the same round trip, so a
-- refresh checks the token, its grant, its device session and its user with one read.
local rt = redis.call('HGETALL', KEYS[1])
if #rt == 0 then return {} end
local gid
for i = 1, #rt, 2 do if rt[i] == 'gid' then gid = rt[i + 1] end end
local grant = redis.call('HGETALL', ARGV[1] .. gid)
local view = {}
if ARGV[2] ~= '' then
  for i = 1, #grant, 2 do
    if grant[i] == 'dsid' and grant[i + 1] ~= '' then view = redis.call('HGETALL', ARGV[2] .. grant[i + 1]) end
  end
end
return {rt, grant, view, user_status(ARGV[3], grant)}
"""
)

_GRANT_AND_VIEW = """
-- KEYS: grant, device view; ARGV: how many grant fields, the grant fields, the view fields.
-- Returns {grant values, view values}: an access-token check's two reads in one round trip.
local n = tonumber(ARGV[1])
local g, v = {}, {}
for i = 2, n + 1 do g[#g + 1] = ARGV[i] end
for i = n + 2, #ARGV do v[#v + 1] = ARGV[i] end
return {redis.call('HMGET', KEYS[1], unpack(g)), redis.call('HMGET', KEYS[2], unpack(v))}
"""

_ROTATE = """
-- KEYS: old rt, new rt, grant, sid index, ds index (or ''); ARGV: new hash, client id, ttl,
-- now ms, retry grace ms, rt key prefix.
-- A rotated token presented again is reuse (the family dies) unless it is the retry of a refresh
-- whose answer was lost: within the grace of its first rotation and while the token it was
-- rotated to has never been used. Then it rotates again and that unused successor is superseded.
local s = redis.call('HGET', KEYS[1], 'state')
if s == false then return 'unknown' end
if s ~= 'current' then
  local r = redis.call('HMGET', KEYS[1], 'rotated_ms', 'successor')
  local retry = s == 'rotated' and r[1] and r[2]
    and tonumber(ARGV[4]) - tonumber(r[1]) <= tonumber(ARGV[5])
    and redis.call('HGET', ARGV[6] .. r[2], 'state') == 'current'
  -- The caller revokes the family (revoke_grant), which announces it: a grant already marked
  -- revoked here would never be announced.
  if not retry then return 'reuse' end
  if redis.call('HGET', KEYS[3], 'state') ~= 'active' then return 'revoked' end
  redis.call('HSET', ARGV[6] .. r[2], 'state', 'superseded')
else
  if redis.call('HGET', KEYS[3], 'state') ~= 'active' then return 'revoked' end
  redis.call('HSET', KEYS[1], 'state', 'rotated', 'rotated_ms', ARGV[4])
end
redis.call('HSET', KEYS[1], 'successor', ARGV[1])
redis.call('HSET', KEYS[2], 'gid', string.match(KEYS[3], 'grant:(.*)$'), 'client_id', ARGV[2], 'state', 'current')
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('HSET', KEYS[3], 'rt', ARGV[1])
redis.call('EXPIRE', KEYS[3], ARGV[3])
redis.call('EXPIRE', KEYS[4], ARGV[3], 'GT')
if KEYS[5] ~= '' then redis.call('EXPIRE', KEYS[5], ARGV[3], 'GT') end
return 'ok'
"""

_REVOKE_GRANT = """
-- KEYS: grant. Returns {previous state, fields...} or {} when unknown.
local prev = redis.call('HGET', KEYS[1], 'state')
if prev == false then return {} end
redis.call('HSET', KEYS[1], 'state', 'revoked')
return {prev, redis.call('HGETALL', KEYS[1])}
"""

_REVOKE_INDEX = """
-- KEYS: index set, revoked marker; ARGV: marker ttl, grant key prefix, cause, now ms, first only.
-- Marks every grant of the index revoked (a grant revoked here for the first time records the
-- cause and time, so a retried revocation knows which announcements are its own); returns
-- {gid, previous state, fields} per grant. With "first only" set and the marker already there
-- (revoked before: every grant then was, and none has joined since), returns false untouched.
if ARGV[5] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then return false end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[1])
local out = {}
for _, gid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[2] .. gid
  local prev = redis.call('HGET', key, 'state')
  if prev then
    if prev ~= 'revoked' then
      redis.call('HSET', key, 'state', 'revoked', 'revoked_by', ARGV[3], 'revoked_ms', ARGV[4])
    end
    out[#out + 1] = {gid, prev, redis.call('HGETALL', key)}
  end
end
return out
"""


def token_hash(token: str) -> str:
    """The storage name of a code or refresh token (SHA-256, hex)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _pairs(flat: list[Any]) -> dict[str, str]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


class OidcStore:
    """Implements `oidc.ports.GrantStore` on Redis (asyncio client; every call is one round trip)."""

    def __init__(
        self,
        redis: Redis,
        config_replay_window_s: int = 600,
        device_view_key: Callable[[str, str], str] | None = None,
        user_key: Callable[[str, str], str] | None = None,
    ) -> None:
        """`device_view_key(eid, dsid)` names the device part's view of a device session (same
        Redis, same `{eid}` hash tag): given, `read_refresh_and_view` reads it with the grant.
        `user_key(eid, user_id)` names the directory's record of a user on the same Redis:
        given, `consume_code` and `read_refresh_and_view` read the user's status with the code
        or the token."""
        self._r = redis
        self._replay = config_replay_window_s
        self._device_view_key = device_view_key
        self._user_key = user_key
        self._create = LuaScript(redis, _CREATE)
        self._consume = LuaScript(redis, _CONSUME)
        self._activate = LuaScript(redis, _ACTIVATE)
        self._read_refresh = LuaScript(redis, _READ_REFRESH)
        self._rotate = LuaScript(redis, _ROTATE)
        self._grant_and_view = LuaScript(redis, _GRANT_AND_VIEW)
        self._revoke_grant = LuaScript(redis, _REVOKE_GRANT)
        self._revoke_index = LuaScript(redis, _REVOKE_INDEX)

    @staticmethod
    def prefix(eid: str) -> str:
        """The key prefix of one enterprise."""
        return f"idp:oidc:{{{eid}}}:"

    def _k(self, eid: str, *parts: str) -> str:
        return self.prefix(eid) + ":".join(parts)

    # ------------------------------------------------------------------------ codes and grants

    async def create_code(
        self,
        eid: str,
        code: str,
        record: dict[str, Any],
        grant: Grant,
        code_ttl_s: int,
        grant_ttl_s: int,
    ) -> bool:
        """Store a new grant (state issued), index it under its sid and device session, and
        store its code. False when the session was revoked meanwhile (no code is stored)."""
        gid, sid, dsid = record["gid"], record["sid"], record.get("dsid")
        keys = [
            self._k(eid, "grant", gid),
            self._k(eid, "sid", sid),
            self._k(eid, "ds", dsid) if dsid else "",
            self._k(eid, "code", token_hash(code)),
            self._k(eid, "revoked-sid", sid),
            self._k(eid, "revoked-ds", dsid) if dsid else "",
        ]
        flat: list[str] = []
        for k, v in grant.to_fields().items():
            flat += [k, v]
        return bool(await self._create(keys=keys, args=[json.dumps(record), code_ttl_s, grant_ttl_s, *flat]))

    async def consume_code(self, eid: str, code: str) -> tuple[bool, dict[str, Any] | None, Grant | None, str | None]:
        """(won, record, grant, user status): `won` for the one redemption that consumed the code,
        with its grant as it stood then (None when gone) and its user's status ('' for no such
        user; None when this store was not given the user's key: the caller asks the
        directory); (False, record, None, None) for a replay; (False, None, None, None) for an
        unknown or expired code. One round trip."""
        h = token_hash(code)
        out = await self._consume(
            keys=[self._k(eid, "code", h), self._k(eid, "code-used", h)],
            args=[self._replay, self._k(eid, "grant", ""), self._user_key(eid, "") if self._user_key else ""],
        )
        if int(out[0]) == 1:
            record = json.loads(out[1])
            flat = out[2]
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
            status = out[3] if len(out) > 3 else None
            return True, record, (Grant.from_fields(record["gid"], fields) if fields else None), status
        return False, (json.loads(out[1]) if len(out) > 1 else None), None, None

    async def activate_grant(self, eid: str, grant: Grant, refresh_token: str, ttl_s: int) -> bool:
        """Tokens were issued from an `issued` grant: make it active and store its first refresh
        token. False if the grant was revoked meanwhile (a replay raced us)."""
        keys = [
            self._k(eid, "grant", grant.gid),
            self._k(eid, "rt", token_hash(refresh_token)),
            self._k(eid, "sid", grant.sid),
            self._k(eid, "ds", grant.dsid) if grant.dsid else "",
        ]
        return bool(await self._activate(keys=keys, args=[token_hash(refresh_token), grant.client_id, ttl_s]))

    async def grant_state(self, eid: str, gid: str) -> str | None:
        """`issued`, `active`, `revoked`, or None when unknown or expired (one round trip)."""
        return await self._r.hget(self._k(eid, "grant", gid), "state")

    async def grant_fields(self, eid: str, gid: str, *fields: str) -> list[str | None]:
        """Some fields of a grant (one round trip); Nones when unknown."""
        return await self._r.hmget(self._k(eid, "grant", gid), list(fields))

    async def grant_fields_and_view(
        self, eid: str, gid: str, fields: tuple[str, ...], dsid: str, view_fields: tuple[str, ...]
    ) -> tuple[list[str | None], dict[str, str | None] | None]:
        """Some fields of a grant and of its device session's view, in one round trip (the view
        part is None when this store was not given the view's key: the caller reads it)."""
        if self._device_view_key is None:
            return await self.grant_fields(eid, gid, *fields), None
        out = await self._grant_and_view(
            keys=[self._k(eid, "grant", gid), self._device_view_key(eid, dsid)],
            args=[len(fields), *fields, *view_fields],
        )
        return list(out[0]), dict(zip(view_fields, out[1], strict=True))

    async def get_grant(self, eid: str, gid: str) -> Grant | None:
        """A grant with all its fields."""
        fields = await self._r.hgetall(self._k(eid, "grant", gid))
        return Grant.from_fields(gid, fields) if fields else None

    # --------------------------------------------------------------------------- refresh tokens

    async def read_refresh(self, eid: str, refresh_token: str) -> tuple[dict[str, str], Grant] | None:
        """The refresh token's record and its grant, or None when unknown (one round trip)."""
        found = await self._read_refresh_of(eid, refresh_token, "", "")
        return None if found is None else found[:2]

    async def read_refresh_and_view(
        self, eid: str, refresh_token: str
    ) -> tuple[dict[str, str], Grant, dict[str, str] | None, str | None] | None:
        """As `read_refresh`, plus the fields of the grant's device-session view ({} when that
        view is unknown; None when the grant has no device session or this store was not given
        the view's key) and its user's status ('' for no such user; None when this store was
        not given the user's key): one round trip for everything the refresh grant checks."""
        prefix = self._device_view_key(eid, "") if self._device_view_key is not None else ""
        users = self._user_key(eid, "") if self._user_key is not None else ""
        found = await self._read_refresh_of(eid, refresh_token, prefix, users)
        if found is None:
            return None
        rt, grant, view, status = found
        return rt, grant, (view if prefix and grant.dsid else None), status

    async def _read_refresh_of(
        self, eid: str, refresh_token: str, view_prefix: str, user_prefix: str
    ) -> tuple[dict[str, str], Grant, dict[str, str], str | None] | None:
        out = await self._read_refresh(
            keys=[self._k(eid, "rt", token_hash(refresh_token))],
            args=[self._k(eid, "grant", ""), view_prefix, user_prefix],
        )
        if not out:
            return None
        rt = _pairs(out[0])
        grant_fields = _pairs(out[1])
        if not grant_fields:
            return None
        status = out[3] if len(out) > 3 else None
        return rt, Grant.from_fields(rt["gid"], grant_fields), _pairs(out[2]), status

    async def rotate_refresh(self, eid: str, old: str, new: str, grant: Grant, ttl_s: int, grace_s: float) -> str:
        """'ok' (old rotated, new current), 'reuse' (old was already rotated: the family is now
        revoked), 'revoked' (grant no longer active) or 'unknown'. A rotated `old` within
        `grace_s` of its rotation whose successor was never used is a retry: 'ok', rotated again."""
        keys = [
            self._k(eid, "rt", token_hash(old)),
            self._k(eid, "rt", token_hash(new)),
            self._k(eid, "grant", grant.gid),
            self._k(eid, "sid", grant.sid),
            self._k(eid, "ds", grant.dsid) if grant.dsid else "",
        ]
        now_ms, grace_ms = int(time.time() * 1000), int(grace_s * 1000)
        args = [token_hash(new), grant.client_id, ttl_s, now_ms, grace_ms, self._k(eid, "rt", "")]
        return str(await self._rotate(keys=keys, args=args))

    # ------------------------------------------------------------------------------ revocation

    async def revoke_grant(self, eid: str, gid: str) -> tuple[str, Grant] | None:
        """Revoke one grant (its refresh family and access tokens); (previous state, grant)."""
        out = await self._revoke_grant(keys=[self._k(eid, "grant", gid)])
        if not out:
            return None
        return out[0], Grant.from_fields(gid, _pairs(out[1]))

    async def revoke_sid(self, eid: str, sid: str, marker_ttl_s: int) -> list[RevokedGrant]:
        """Revoke every grant of an OIDC session; refuse new ones."""
        revoked = await self._revoke_index_of(
            eid, self._k(eid, "sid", sid), self._k(eid, "revoked-sid", sid), marker_ttl_s, f"sid:{sid}"
        )
        return revoked or []  # never None without first_only

    async def revoke_device_session(
        self, eid: str, dsid: str, marker_ttl_s: int, first_only: bool = False
    ) -> list[RevokedGrant] | None:
        """Revoke every grant of a device session; refuse new ones. `first_only`: None, touching
        nothing, when the device session was revoked before."""
        return await self._revoke_index_of(
            eid, self._k(eid, "ds", dsid), self._k(eid, "revoked-ds", dsid), marker_ttl_s, f"ds:{dsid}", first_only
        )

    async def _revoke_index_of(
        self, eid: str, index: str, marker: str, ttl: int, cause: str, first_only: bool = False
    ) -> list[RevokedGrant] | None:
        now_ms = int(time.time() * 1000)
        args = [ttl, self._k(eid, "grant", ""), cause, now_ms, int(first_only)]
        out = await self._revoke_index(keys=[index, marker], args=args)
        if out is None:
            return None
        found = []
        for gid, prev, flat in out:
            fields = _pairs(flat)
            mine = prev != "revoked" or fields.get("revoked_by") == cause
            at_ms = int(fields.get("revoked_ms") or now_ms)
            found.append(RevokedGrant(prev, Grant.from_fields(gid, fields), mine, at_ms))
        return found

    # ------------------------------------------------------------------- interactions, logout

    async def put_interaction(self, eid: str, ix_id: str, record: dict[str, Any], ttl_s: int) -> None:
        """Park a validated authorization request while the user signs in."""
        await self._r.set(self._k(eid, "ix", ix_id), json.dumps(record), ex=ttl_s)

    async def get_interaction(self, eid: str, ix_id: str) -> dict[str, Any] | None:
        """A parked authorization request."""
        raw = await self._r.get(self._k(eid, "ix", ix_id))
        return json.loads(raw) if raw else None

    async def drop_interaction(self, eid: str, ix_id: str) -> None:
        """The parked request was answered: it cannot be resumed again."""
        await self._r.delete(self._k(eid, "ix", ix_id))

    async def put_logout(self, eid: str, token: str, sid: str, ttl_s: int) -> None:
        """A logout confirmation form was shown for browser session `sid`."""
        await self._r.set(self._k(eid, "logout", token_hash(token)), sid, ex=ttl_s)

    async def take_logout(self, eid: str, token: str) -> str | None:
        """The sid of a pending logout confirmation, consumed (single use)."""
        return await self._r.getdel(self._k(eid, "logout", token_hash(token)))
