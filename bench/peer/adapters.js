// Storage adapters for the node-oidc-provider peer, written against the provider's documented
// adapter interface (upsert, find, findByUid, findByUserCode, consume, destroy,
// revokeByGrantId), so that the peer is measured with a fair store:
// - MemoryAdapter: plain Maps, no eviction (the quick start's LRU of 1,000 entries evicted the
//   measured grants during warm-up, and every measured refresh then failed);
// - RedisAdapter: the same Redis server as Lanyard, one JSON value per model instance with its
//   expiry, plus the grant, uid and user-code indexes the interface needs.
import Redis from 'ioredis';

const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest']);

const memory = { items: new Map(), grants: new Map(), uids: new Map(), userCodes: new Map() };

function expired(entry) {
  return entry.expiresAt !== undefined && entry.expiresAt <= Date.now();
}

export class MemoryAdapter {
  constructor(name) { this.name = name; }

  key(id) { return `${this.name}:${id}`; }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const expiresAt = expiresIn ? Date.now() + expiresIn * 1000 : undefined;
    memory.items.set(key, { payload: { ...payload }, expiresAt });
    if (GRANTABLE.has(this.name) && payload.grantId) {
      if (!memory.grants.has(payload.grantId)) memory.grants.set(payload.grantId, new Set());
      memory.grants.get(payload.grantId).add(key);
    }
    if (payload.uid) memory.uids.set(payload.uid, id);
    if (payload.userCode) memory.userCodes.set(payload.userCode, id);
  }

  async find(id) {
    const entry = memory.items.get(this.key(id));
    if (!entry) return undefined;
    if (expired(entry)) { memory.items.delete(this.key(id)); return undefined; }
    return entry.payload;
  }

  async findByUid(uid) { const id = memory.uids.get(uid); return id ? this.find(id) : undefined; }

  async findByUserCode(userCode) {
    const id = memory.userCodes.get(userCode);
    return id ? this.find(id) : undefined;
  }

  async consume(id) {
    const entry = memory.items.get(this.key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) { memory.items.delete(this.key(id)); }

  async revokeByGrantId(grantId) {
    for (const key of memory.grants.get(grantId) || []) memory.items.delete(key);
    memory.grants.delete(grantId);
  }
}

let client;

export class RedisAdapter {
  static connect(url) { client = new Redis(url, { enableAutoPipelining: true }); return client; }

  constructor(name) { this.name = name; }

  key(id) { return `peer:${this.name}:${id}`; }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const multi = client.multi();
    if (expiresIn) multi.set(key, JSON.stringify(payload), 'EX', expiresIn);
    else multi.set(key, JSON.stringify(payload));
    if (GRANTABLE.has(this.name) && payload.grantId) {
      const grantKey = `peer:grant:${payload.grantId}`;
      multi.rpush(grantKey, key);
      if (expiresIn) multi.expire(grantKey, expiresIn, 'GT');
    }
    if (payload.uid) multi.set(`peer:uid:${payload.uid}`, id, ...(expiresIn ? ['EX', expiresIn] : []));
    if (payload.userCode) {
      multi.set(`peer:usercode:${payload.userCode}`, id, ...(expiresIn ? ['EX', expiresIn] : []));
    }
    await multi.exec();
  }

  async find(id) {
    const value = await client.get(this.key(id));
    return value ? JSON.parse(value) : undefined;
  }

  async findByUid(uid) { const id = await client.get(`peer:uid:${uid}`); return id ? this.find(id) : undefined; }

  async findByUserCode(userCode) {
    const id = await client.get(`peer:usercode:${userCode}`);
    return id ? this.find(id) : undefined;
  }

  async consume(id) {
    // Read-modify-write of one JSON value, keeping its expiry (Redis 6.0+: KEEPTTL).
    const key = this.key(id);
    const value = await client.get(key);
    if (!value) return;
    const payload = JSON.parse(value);
    payload.consumed = Math.floor(Date.now() / 1000);
    await client.set(key, JSON.stringify(payload), 'KEEPTTL');
  }

  async destroy(id) { await client.del(this.key(id)); }

  async revokeByGrantId(grantId) {
    const grantKey = `peer:grant:${grantId}`;
    const keys = await client.lrange(grantKey, 0, -1);
    await client.del(...keys, grantKey);
  }
}
