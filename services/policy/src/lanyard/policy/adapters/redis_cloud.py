"""Cloud-connection secrets in Redis: the provisioning code and the enterprise credentials.

These are written directly (never through Kafka: secrets do not travel on topics), and only as
SHA-256 hashes — both are high-entropy random values, so a slow password hash adds nothing.
Redeeming a code is one Lua script, so two concurrent attempts with the right code cannot both
succeed.

    policy:{e}:cloud:code         hash  hash, expires_at (epoch s), status issued|used|void, failures
    policy:{e}:cloud:failures     counter of failed establish-trust attempts
    policy:{e}:cloud:credentials  hash  client_id, secret_hash, established_at
"""

from __future__ import annotations

from datetime import UTC, datetime

from redis.asyncio import Redis

from lanyard.policy.adapters.redis_store import k
from lanyard.policy.ports import CodeCheck

MAX_WRONG_PER_CODE = 5

# KEYS[1] code hash; ARGV: presented hash, now (epoch s), max wrong guesses per code.
_REDEEM = """
local code = redis.call('hgetall', KEYS[1])
if #code == 0 then return 'none' end
local h = {}
for i = 1, #code, 2 do h[code[i]] = code[i + 1] end
if h['hash'] ~= ARGV[1] then
  local n = redis.call('hincrby', KEYS[1], 'failures', 1)
  if n >= tonumber(ARGV[3]) and h['status'] == 'issued' then redis.call('hset', KEYS[1], 'status', 'void') end
  return 'wrong'
end
if h['status'] ~= 'issued' then return 'used' end
if tonumber(ARGV[2]) >= tonumber(h['expires_at']) then
  redis.call('hset', KEYS[1], 'status', 'void')
  return 'expired'
end
redis.call('hset', KEYS[1], 'status', 'used')
return 'ok'
"""


class RedisCloudSecrets:
    """Implements `ports.CloudSecrets`."""

    def __init__(self, redis: Redis) -> None:
        self._r = redis

    async def issue_code(self, enterprise_id: str, code_hash: str, expires_at: datetime) -> None:
        """Store a new code, replacing (and so invalidating) any previous one."""
        key = k(enterprise_id, "cloud", "code")
        pipe = self._r.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(
            key, mapping={"hash": code_hash, "expires_at": expires_at.timestamp(), "status": "issued", "failures": 0}
        )
        await pipe.execute()

    async def redeem_code(self, enterprise_id: str, code_hash: str, now: datetime) -> CodeCheck:
        """Use the code once: ok, or why not (the code is void after a use, expiry or 5 wrong tries)."""
        result = await self._r.eval(
            _REDEEM, 1, k(enterprise_id, "cloud", "code"), code_hash, now.timestamp(), MAX_WRONG_PER_CODE
        )
        return result  # type: ignore[return-value]

    async def count_failure(self, enterprise_id: str) -> int:
        """Count one failed attempt; returns the total."""
        return int(await self._r.incr(k(enterprise_id, "cloud", "failures")))

    async def failures(self, enterprise_id: str) -> int:
        """Failed attempts so far."""
        return int(await self._r.get(k(enterprise_id, "cloud", "failures")) or 0)

    async def code_expires_at(self, enterprise_id: str) -> datetime | None:
        """When the current unused code expires (None when there is none)."""
        raw = await self._r.hmget(k(enterprise_id, "cloud", "code"), ["status", "expires_at"])
        if raw[0] != "issued":
            return None
        return datetime.fromtimestamp(float(raw[1]), UTC)

    async def store_credentials(self, enterprise_id: str, client_id: str, secret_hash: str, at: datetime) -> None:
        """Keep the enterprise's credentials (secret hashed), replacing earlier ones."""
        await self._r.hset(
            k(enterprise_id, "cloud", "credentials"),
            mapping={"client_id": client_id, "secret_hash": secret_hash, "established_at": at.isoformat()},
        )
