"""Redis adapters for enterprises, the directory (users, groups, credentials) and lockouts.

Keys (all under `idp:{enterprise_id}:`): `enterprise`, `user:{id}` (JSON, no secrets),
`username:{lowercased}` and `badge:{badge}` (→ user id), `users` (set), `group:{id}`, `groups`,
`cred:{id}` (hash: `pwd` argon2id hash, `totp` base32 secret, `totp_step` last accepted step),
`fail:{subject}` (failure state, expiring).
"""

from __future__ import annotations

import base64
import json

from redis.asyncio import Redis
from redis.exceptions import WatchError

from lanyard.contracts import Event
from lanyard.idp.adapters.codec import (
    dump_enterprise,
    dump_group,
    dump_user,
    load_enterprise,
    load_group,
    load_user,
)
from lanyard.idp.adapters.outbox import ENTERPRISES, stage
from lanyard.idp.directory.domain import Enterprise, FailureState, Group, LockoutPolicy, User
from lanyard.idp.directory.ports import Conflict
from lanyard.runtime.redis import LuaScript


def _k(eid: str, *parts: str) -> str:
    return ":".join(("idp", eid, *parts))


class RedisEnterprises:
    """Enterprises in Redis; `create` never overwrites."""

    def __init__(self, redis: Redis) -> None:
        self._r = redis

    async def get(self, enterprise_id: str) -> Enterprise | None:
        raw = await self._r.get(_k(enterprise_id, "enterprise"))
        return load_enterprise(raw) if raw else None

    async def create(self, enterprise: Enterprise) -> None:
        created = await self._r.set(_k(enterprise.enterprise_id, "enterprise"), dump_enterprise(enterprise), nx=True)
        if not created:
            raise Conflict(f"enterprise {enterprise.enterprise_id} exists")
        await self._r.sadd(ENTERPRISES, enterprise.enterprise_id)


# Lua: record a TOTP step as used only if it is later than the last one (atomic replay guard).
_CONSUME_STEP = """
local last = redis.call('HGET', KEYS[1], 'totp_step')
if last and tonumber(last) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'totp_step', ARGV[1])
return 1
"""


def user_key(enterprise_id: str, user_id: str) -> str:
    """The key of a user's record (a JSON object with its `status`): the OIDC store reads it in
    the step that redeems a code (adapters/redis_oidc)."""
    return _k(enterprise_id, "user", user_id)


class RedisDirectory:
    """Users, groups and credentials in Redis."""

    def __init__(self, redis: Redis) -> None:
        self._r = redis
        self._consume = LuaScript(redis, _CONSUME_STEP)

    async def get(self, enterprise_id: str, user_id: str) -> User | None:
        raw = await self._r.get(user_key(enterprise_id, user_id))
        return load_user(raw) if raw else None

    async def by_username(self, enterprise_id: str, username: str) -> User | None:
        user_id = await self._r.get(_k(enterprise_id, "username", username.lower()))
        return await self.get(enterprise_id, user_id) if user_id else None

    async def by_badge(self, enterprise_id: str, badge_id: str) -> User | None:
        user_id = await self._r.get(_k(enterprise_id, "badge", badge_id))
        return await self.get(enterprise_id, user_id) if user_id else None

    async def list_users(self, enterprise_id: str) -> list[User]:
        ids = sorted(await self._r.smembers(_k(enterprise_id, "users")))
        raws = await self._r.mget([_k(enterprise_id, "user", i) for i in ids]) if ids else []
        return [load_user(r) for r in raws if r]

    async def save_user(self, user: User, event: Event | None) -> None:
        eid, uid = user.enterprise_id, user.user_id
        ukey = _k(eid, "user", uid)
        name_key = _k(eid, "username", user.username.lower())
        badge_key = _k(eid, "badge", user.badge_id) if user.badge_id else None
        watched = [ukey, name_key] + ([badge_key] if badge_key else [])
        async with self._r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(*watched)
                    old_raw = await pipe.get(ukey)
                    old = load_user(old_raw) if old_raw else None
                    owner = await pipe.get(name_key)
                    if owner and owner != uid:
                        raise Conflict("username is taken")
                    if badge_key:
                        badge_owner = await pipe.get(badge_key)
                        if badge_owner and badge_owner != uid:
                            raise Conflict("badge id is taken")
                    pipe.multi()
                    if old and old.username.lower() != user.username.lower():
                        pipe.delete(_k(eid, "username", old.username.lower()))
                    if old and old.badge_id and old.badge_id != user.badge_id:
                        pipe.delete(_k(eid, "badge", old.badge_id))
                    pipe.set(ukey, dump_user(user))
                    pipe.set(name_key, uid)
                    if badge_key:
                        pipe.set(badge_key, uid)
                    pipe.sadd(_k(eid, "users"), uid)
                    stage(pipe, event)
                    await pipe.execute()
                    return
                except WatchError:
                    continue

    async def delete_user(self, enterprise_id: str, user_id: str, event: Event | None) -> bool:
        user = await self.get(enterprise_id, user_id)
        if user is None:
            return False
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.delete(_k(enterprise_id, "user", user_id), _k(enterprise_id, "cred", user_id))
            pipe.delete(_k(enterprise_id, "username", user.username.lower()))
            if user.badge_id:
                pipe.delete(_k(enterprise_id, "badge", user.badge_id))
            pipe.srem(_k(enterprise_id, "users"), user_id)
            stage(pipe, event)
            await pipe.execute()
        return True

    async def get_group(self, enterprise_id: str, group_id: str) -> Group | None:
        raw = await self._r.get(_k(enterprise_id, "group", group_id))
        return load_group(raw) if raw else None

    async def list_groups(self, enterprise_id: str) -> list[Group]:
        ids = sorted(await self._r.smembers(_k(enterprise_id, "groups")))
        raws = await self._r.mget([_k(enterprise_id, "group", i) for i in ids]) if ids else []
        return [load_group(r) for r in raws if r]

    async def save_group(self, group: Group, event: Event | None) -> None:
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.set(_k(group.enterprise_id, "group", group.group_id), dump_group(group))
            pipe.sadd(_k(group.enterprise_id, "groups"), group.group_id)
            stage(pipe, event)
            await pipe.execute()

    async def delete_group(self, enterprise_id: str, group_id: str, event: Event | None) -> bool:
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.delete(_k(enterprise_id, "group", group_id))
            pipe.srem(_k(enterprise_id, "groups"), group_id)
            stage(pipe, event)
            deleted, _, *_ = await pipe.execute()
        return bool(deleted)

    async def password_hash(self, enterprise_id: str, user_id: str) -> str | None:
        return await self._r.hget(_k(enterprise_id, "cred", user_id), "pwd")

    async def set_password_hash(self, enterprise_id: str, user_id: str, password_hash: str) -> None:
        await self._r.hset(_k(enterprise_id, "cred", user_id), "pwd", password_hash)

    async def totp(self, enterprise_id: str, user_id: str) -> tuple[bytes, int | None] | None:
        secret, step = await self._r.hmget(_k(enterprise_id, "cred", user_id), ["totp", "totp_step"])
        if not secret:
            return None
        return base64.b64decode(secret), int(step) if step is not None else None

    async def set_totp(self, enterprise_id: str, user_id: str, secret: bytes | None) -> None:
        key = _k(enterprise_id, "cred", user_id)
        if secret is None:
            await self._r.hdel(key, "totp", "totp_step")
        else:
            async with self._r.pipeline(transaction=True) as pipe:
                pipe.hset(key, "totp", base64.b64encode(secret).decode())
                pipe.hdel(key, "totp_step")
                await pipe.execute()

    async def consume_totp_step(self, enterprise_id: str, user_id: str, step: int) -> bool:
        return bool(await self._consume(keys=[_k(enterprise_id, "cred", user_id)], args=[step]))


class RedisLockouts:
    """Failure counters per account, as `FailureState` JSON that expires when it cannot matter."""

    def __init__(self, redis: Redis, policy: LockoutPolicy) -> None:
        self._r = redis
        self._policy = policy

    async def state(self, enterprise_id: str, subject: str) -> FailureState:
        raw = await self._r.get(_k(enterprise_id, "fail", subject))
        return FailureState(**json.loads(raw)) if raw else FailureState()

    async def record_failure(self, enterprise_id: str, subject: str, now: float) -> FailureState:
        key = _k(enterprise_id, "fail", subject)
        ttl = max(self._policy.window_s, self._policy.duration_s) + 1
        async with self._r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    current = FailureState(**json.loads(raw)) if raw else FailureState()
                    updated = current.after_failure(now, self._policy)
                    pipe.multi()
                    pipe.set(key, json.dumps(updated.__dict__), ex=ttl)
                    await pipe.execute()
                    return updated
                except WatchError:
                    continue

    async def clear(self, enterprise_id: str, subject: str) -> None:
        await self._r.delete(_k(enterprise_id, "fail", subject))
