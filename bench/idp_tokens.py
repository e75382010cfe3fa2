"""Refresh grants/s and introspections/s of the IdP alone (DESIGN §6 floor: ≥ 1,300 refresh/s,
≥ 3,000 introspections/s on this 2-core machine).

The IdP runs as its own process (`python -m lanyard.idp`, one uvicorn worker) on the real
Kafka and Redis; wrk (C, low overhead) is the load generator beside it, reusing
bench/wrk/refresh.lua (each connection swaps in its rotated token) and introspect.lua. Grants
are seeded straight into the IdP's stores (an enterprise, a confidential client and N
browser-login grants, each redeemed through the OIDC storage exactly as the code grant does),
so this measures the token endpoint, not the login page. Device-session grants add one
`DeviceSessions.may_refresh` read per refresh; bench/token_endpoints.py measures those through
the whole stack. Every refresh rotates the token in one Lua script and publishes
oidc.tokens_refreshed.v1 with acks=all before answering.

Run:  uv run python -m bench.idp_tokens [--connections 16] [--seconds 10] [--grants 64]
Writes bench/results/idp_tokens.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from bench.common import infrastructure, rss_mb, write
from bench.token_endpoints import run_wrk
from lanyard.runtime.testing import free_port

FLOOR = {"refresh_per_second": 1300, "introspections_per_second": 3000}


async def seed(kafka: str, redis_url: str, public_base: str, n: int) -> tuple[str, tuple[str, str], list[str]]:
    """An enterprise, a confidential client and `n` active grants; returns their refresh tokens."""
    from lanyard.idp.adapters.outbox import OutboxPublisher
    from lanyard.idp.adapters.redis_clients import RedisClients
    from lanyard.idp.adapters.redis_directory import RedisDirectory, RedisEnterprises
    from lanyard.idp.adapters.redis_keys import RedisKeys
    from lanyard.idp.domain import AppProfile, Client
    from lanyard.idp.oidc.storage import Grant, OidcStore
    from lanyard.idp.service import Passwords, ProfileService, bootstrap
    from lanyard.runtime.kafka import EventPublisher, create_broker
    from lanyard.runtime.redis import create_redis

    r = create_redis(redis_url)
    broker = create_broker(kafka, client_id="bench-idp-tokens")
    await broker.start()
    try:
        eid = "bench" + uuid.uuid4().hex[:6]
        outbox = OutboxPublisher(r, EventPublisher(broker))
        user = await bootstrap(
            RedisEnterprises(r),
            RedisKeys(r, 3600),
            RedisDirectory(r),
            Passwords(),
            outbox,
            eid,
            "Bench",
            "nurse",
            "p" * 16,
        )
        clients = RedisClients(r)
        profiles = ProfileService(clients, outbox)
        client = Client(eid, "bench-rp", "Bench RP", "Bench RP", "confidential", ("https://rp.example/cb",))
        await profiles.save(AppProfile(client), "bench")
        creds = await profiles.issue_credentials(eid, client.client_id, "bench", rotate=False)
        store = OidcStore(r)
        refresh: list[str] = []
        for _ in range(n):
            gid, code, rt, sid = (
                uuid.uuid4().hex,
                secrets.token_urlsafe(32),
                secrets.token_urlsafe(32),
                uuid.uuid4().hex,
            )
            fields = {
                "client_id": client.client_id, "user_id": user.user_id, "sid": sid, "dsid": "",
                "scope": "openid profile offline_access", "auth_time": str(int(time.time())),
                "amr": "pwd otp", "acr": "urn:lanyard:acr:mfa", "nonce": "", "claims": "{}",
            }  # fmt: skip
            record = {"gid": gid, "client_id": client.client_id, "redirect_uri": client.redirect_uris[0], "sid": sid}
            assert await store.create_code(eid, code, record, fields, 60, 600)
            won, _, _ = await store.consume_code(eid, code)
            assert won
            assert await store.activate_grant(eid, Grant.from_fields(gid, {**fields, "state": "issued"}), rt, 12 * 3600)
            refresh.append(rt)
        return eid, (client.client_id, creds.client_secret or ""), refresh
    finally:
        await broker.stop()
        await r.aclose()


def cpu_s(pid: int) -> float:
    """User+system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(idp_pid: int, script: str, base: str, args: argparse.Namespace, env: dict[str, str]) -> dict:
    """One wrk run plus the IdP's own CPU per request: a load-independent cost figure (other
    processes on a shared machine lower requests/s, not CPU per request)."""
    before = cpu_s(idp_pid)
    out = run_wrk(script, base, args.connections, args.seconds, env)
    used = cpu_s(idp_pid) - before
    n = out["requests_per_second"] * args.seconds
    out["idp_cpu_ms_per_request"] = round(1000 * used / n, 3) if n else None
    out["one_core_capacity_per_second"] = round(n / used) if used else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--grants", type=int, default=64)
    args = ap.parse_args()
    with infrastructure() as (kafka, redis_url, scratch):
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
            "REDIS_URL": redis_url,
            "LANYARD_PUBLIC_BASE_URL": base,
            "LANYARD_IDP_HTTP_PORT": str(port),
            "LANYARD_IDP_LOG_LEVEL": "WARNING",
            "LANYARD_IDP_CONSUMER_GROUP": f"bench-idp-{uuid.uuid4().hex[:6]}",
        }
        log = open(scratch / "idp.log", "w")  # closed in the finally below
        idp = subprocess.Popen([sys.executable, "-m", "lanyard.idp"], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or idp.poll() is not None:
                    raise SystemExit(f"idp did not become ready; see {scratch / 'idp.log'}")
                time.sleep(0.2)
            eid, client, refresh = asyncio.run(seed(kafka, redis_url, base, args.grants))
            issuer = f"{base}/e/{eid}"
            access: list[str] = []
            rotated: list[str] = []
            with httpx.Client(timeout=30) as http:
                for rt in refresh:  # one real refresh each: an access token per grant, and warm-up
                    body = http.post(
                        f"{issuer}/token", data={"grant_type": "refresh_token", "refresh_token": rt}, auth=client
                    ).json()
                    access.append(body["access_token"])
                    rotated.append(body["refresh_token"])
                assert http.post(f"{issuer}/introspect", data={"token": access[0]}, auth=client).json()["active"]
            (scratch / "refresh").write_text("\n".join(rotated) + "\n")
            (scratch / "access").write_text("\n".join(access) + "\n")
            wrk_env = {
                **os.environ,
                "CLIENT_AUTH": base64.b64encode(f"{client[0]}:{client[1]}".encode()).decode(),
                "TOKENS_FILE": str(scratch / "refresh"),
                "ACCESS_FILE": str(scratch / "access"),
                "TOKEN_PATH": f"/e/{eid}/token",
                "INTROSPECT_PATH": f"/e/{eid}/introspect",
            }
            with open("/proc/loadavg") as f:
                load_before = f.read().split()[:3]
            introspection = timed(idp.pid, "introspect.lua", base + "/", args, wrk_env)
            refresh_run = timed(idp.pid, "refresh.lua", base + "/", args, wrk_env)
            rss = rss_mb(idp.pid)
        finally:
            idp.terminate()
            idp.wait(30)
            log.close()
    result = {
        "how_to_run": f"uv run python -m bench.idp_tokens --connections {args.connections} --seconds {args.seconds}",
        "parameters": vars(args),
        "setup": "IdP alone (one uvicorn worker) on real Kafka+Redis; wrk beside it on the same 2 cores; "
        "browser-login grants, confidential client, client_secret_basic; acked publish per refresh",
        "refresh": refresh_run,
        "introspection": introspection,
        "idp_rss_mb": rss,
        "load_average_before": load_before,
        "floor": FLOOR,
        "meets_floor": {
            "refresh": refresh_run["requests_per_second"] >= FLOOR["refresh_per_second"],
            "introspection": introspection["requests_per_second"] >= FLOOR["introspections_per_second"],
        },
    }
    path = write("idp_tokens", result)
    print(json.dumps(result, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
