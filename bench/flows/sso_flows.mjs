// A light load generator for complete device-session SSO flows (authorize + token), written for
// Node's standard library so the client spends ~1 ms of CPU per flow instead of the Python
// simulator's ~9 ms on the same two cores. It does exactly what lanyard.harness.device does:
// PKCE S256, nonce and state, a fresh ES256 device proof (typ, alg, jwk header; jti, htm, htu,
// iat, dsh claims) over the exact request, the redirect read for its code and its echoed state,
// then the public client's code exchange with the verifier; a flow counts only when the token
// response is 200 and carries an ID token.
//
// Input: a JSON file (argv[2]) {base_url, enterprise_id, client_id, redirect_uri, scope,
// proof_typ, seconds, workers, devices: [{handle, jwk (private)}]}. Output: one JSON line on stdout.

import crypto from "node:crypto";
import http from "node:http";
import { readFileSync } from "node:fs";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const base = new URL(config.base_url);
const agent = new http.Agent({ keepAlive: true, maxSockets: config.workers });

const b64url = (buf) => Buffer.from(buf).toString("base64url");

const devices = config.devices.map((d) => {
  const { d: _private, ...pub } = d.jwk;
  const header = b64url(JSON.stringify({ typ: config.proof_typ, alg: "ES256", jwk: pub }));
  return { handle: d.handle, key: crypto.createPrivateKey({ key: d.jwk, format: "jwk" }), header };
});

function proof(device, method, target) {
  const claims = {
    jti: crypto.randomBytes(16).toString("hex"),
    htm: method,
    htu: target,
    iat: Math.floor(Date.now() / 1000),
    dsh: device.handle,
  };
  const input = `${device.header}.${b64url(JSON.stringify(claims))}`;
  const signature = crypto.sign("sha256", Buffer.from(input), { key: device.key, dsaEncoding: "ieee-p1363" });
  return `${input}.${b64url(signature)}`;
}

function request(method, path, headers, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: base.hostname, port: base.port, method, path, headers, agent },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      },
    );
    req.on("error", reject);
    if (body) req.write(body);
    req.end();
  });
}

const issuerPath = `${base.pathname.replace(/\/$/, "")}/e/${config.enterprise_id}`;
const target = `${base.protocol}//${base.host.toLowerCase()}${issuerPath}/authorize`;

async function flow(device) {
  const verifier = b64url(crypto.randomBytes(32));
  const challenge = b64url(crypto.createHash("sha256").update(verifier).digest());
  const state = b64url(crypto.randomBytes(16));
  const query = new URLSearchParams({
    response_type: "code",
    client_id: config.client_id,
    redirect_uri: config.redirect_uri,
    scope: config.scope,
    state,
    nonce: b64url(crypto.randomBytes(16)),
    code_challenge: challenge,
    code_challenge_method: "S256",
  });
  const authz = await request("GET", `${issuerPath}/authorize?${query}`, {
    "Lanyard-Device-Session": device.handle,
    "Lanyard-Device-Proof": proof(device, "GET", target),
  });
  const location = authz.headers.location;
  if (!location) return false;
  const params = new URL(location).searchParams;
  const code = params.get("code");
  if (!code || params.get("state") !== state) return false;
  const form = new URLSearchParams({
    grant_type: "authorization_code",
    code,
    redirect_uri: config.redirect_uri,
    client_id: config.client_id,
    code_verifier: verifier,
  }).toString();
  const token = await request("POST", `${issuerPath}/token`, {
    "Content-Type": "application/x-www-form-urlencoded",
    "Content-Length": Buffer.byteLength(form),
  }, form);
  return token.status === 200 && Boolean(JSON.parse(token.body).id_token);
}

const latencies = [];
let ok = 0;
let failed = 0;
const started = performance.now();
const deadline = started + config.seconds * 1000;
const cpuBefore = process.cpuUsage();

async function worker(offset) {
  for (let i = offset; performance.now() < deadline; i += config.workers) {
    const t0 = performance.now();
    try {
      if (await flow(devices[i % devices.length])) {
        ok += 1;
        latencies.push(performance.now() - t0);
      } else failed += 1;
    } catch {
      failed += 1;
    }
  }
}

await Promise.all(Array.from({ length: config.workers }, (_, w) => worker(w)));
const elapsed = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpuBefore);
latencies.sort((a, b) => a - b);
const pct = (p) => (latencies.length ? Math.round(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] * 10) / 10 : null);
process.stdout.write(
  JSON.stringify({
    flows: ok,
    failed,
    seconds: Math.round(elapsed * 100) / 100,
    flows_per_second: Math.round((ok / elapsed) * 10) / 10,
    workers: config.workers,
    latency_ms: { p50: pct(0.5), p90: pct(0.9), p99: pct(0.99) },
    client_cpu_ms_per_flow: ok ? Math.round(((cpu.user + cpu.system) / 1000 / ok) * 100) / 100 : null,
  }) + "\n",
);
agent.destroy();
