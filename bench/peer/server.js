// node-oidc-provider 9 as the peer that bench/token_endpoints.py drives with the same load as
// Lanyard's IdP. ADAPTER chooses a fair store (bench/peer/adapters.js): `memory` (Maps without
// eviction) or `redis` (REDIS_URL, the same Redis server as Lanyard). A set-up step mints N
// refresh tokens and N access tokens through the provider's own models and prints them as one
// JSON line, so the benchmark measures refresh and introspection only.
import Provider from 'oidc-provider';
import { MemoryAdapter, RedisAdapter } from './adapters.js';

const port = Number(process.env.PORT || 8600);
const n = Number(process.env.GRANTS || 200);
const issuer = `http://127.0.0.1:${port}`;
const client = { client_id: 'bench', client_secret: 'bench-secret-bench-secret-bench-secret',
  redirect_uris: ['https://rp.example/cb'], grant_types: ['authorization_code', 'refresh_token'] };

const store = process.env.ADAPTER || 'memory';
if (store === 'redis') RedisAdapter.connect(process.env.REDIS_URL);
const provider = new Provider(issuer, {
  adapter: store === 'redis' ? RedisAdapter : MemoryAdapter,
  clients: [client],
  features: { introspection: { enabled: true }, revocation: { enabled: true } },
  issueRefreshToken: () => true,
  // Lanyard rotates every refresh token (RFC 9700 §4.14.2); the peer must do the same work.
  rotateRefreshToken: true,
  findAccount: (ctx, id) => ({ accountId: id, claims: () => ({ sub: id }) }),
});
provider.proxy = false;

const c = await provider.Client.find('bench');
const refresh = [];
const access = [];
for (let i = 0; i < n; i += 1) {
  const grant = new provider.Grant({ accountId: `user-${i}`, clientId: 'bench' });
  grant.addOIDCScope('openid offline_access');
  const grantId = await grant.save();
  const common = { accountId: `user-${i}`, client: c, grantId, scope: 'openid offline_access', gty: 'authorization_code' };
  refresh.push(await new provider.RefreshToken({ ...common, authTime: Math.floor(Date.now() / 1000) }).save());
  access.push(await new provider.AccessToken({ ...common }).save());
}
provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ issuer, store, client_id: client.client_id, client_secret: client.client_secret, refresh, access })}\n`);
});
