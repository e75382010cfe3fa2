"""Token endpoints side by side (DESIGN §6): refresh grants/s and introspections/s of Lanyard's
IdP and of node-oidc-provider 9 (npm, quick-start configuration), each driven by the same wrk
load on this machine. Both servers are hit directly on their own ports (no gateway), with a
confidential client and HTTP Basic client authentication.

- Lanyard: the whole stack runs (the IdP needs its read models and the broker); refresh
  tokens come from real device-session SSO flows (scope offline_access), one per device
  session; access tokens are the JWTs of those flows. Every refresh rotates the token, is
  checked against the device session, and publishes oidc.tokens_refreshed.v1 with acks=all.
- Peer: bench/peer/server.js mints grants through node-oidc-provider's own models and prints
  the tokens. It runs twice, with each fair store of bench/peer/adapters.js: Maps without
  eviction, and Redis (the same server as Lanyard's). It publishes nothing.

wrk runs one connection per thread so each thread's refresh token chain stays consistent
(bench/wrk/refresh.lua swaps in the rotated token from each response). Every answer is judged
by its body (bench/wrk/common.lua): a refresh is good only with a new access token and a rotated
refresh token, an introspection only when it says `"active": true`. A run with any bad answer
(status or body) is reported as failed, and the benchmark exits non-zero: a throughput that
counts failures is not a throughput.

Run:  uv run python -m bench.token_endpoints [--connections 16] [--seconds 10] [--no-peer]
Needs: wrk (Debian), node + npm (bench/peer: `npm install` is run for you).
Writes bench/results/token_endpoints.json with the ratios Lanyard/peer from the same run.
Targets (DESIGN §6): refresh ≥ 1.2× the peer, introspection ≥ 1.5×, server CPU per request at or
below the peer's.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import cpu_seconds, infrastructure, write
from lanyard.harness.admin import open_enterprise
from lanyard.harness.device import Device, redeem
from lanyard.harness.stack import local_stack
from lanyard.runtime.testing import free_port

HERE = Path(__file__).resolve().parent


def run_wrk(script: str, url: str, connections: int, seconds: int, env: dict[str, str]) -> dict:
    """One wrk run; requests/s, latency, and the answers judged good or bad by their bodies."""
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(connections),
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--latency",
            "-s",
            str(HERE / "wrk" / script),
            url,
        ],
        env={**env, "THREADS": str(connections), "WRK_COMMON": str(HERE / "wrk" / "common.lua")},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)

    def ms(m):
        if not m:
            return None
        return round(float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)], 2)

    checks = re.search(r"LANYARD_CHECKS (\{.*\})", out)
    if not checks:
        raise RuntimeError(f"wrk printed no body checks for {script}:\n{out}")
    judged = json.loads(checks.group(1))
    # Connect/read/write errors and timeouts get no response() call, so the body checks never
    # see them: they are failures too.
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    socket_errors = sum(int(g) for g in sockets.groups()) if sockets else 0
    errors = judged["bad_status"] + judged["bad_body"] + socket_errors
    return {
        "requests_per_second": round(rps) if errors == 0 else None,
        "measured_requests_per_second": round(rps),
        "answers_checked": judged["ok"] + judged["bad_status"] + judged["bad_body"],
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "bad_bodies": judged["bad_body"],
        "socket_errors": socket_errors,
        "errors": errors,
        "latency_p50_ms": ms(p50),
        "latency_p99_ms": ms(p99),
    }


def with_cpu(pid: int, seconds: int, run) -> dict:
    """A wrk run plus the server's own CPU time per request: a figure the load generator and
    the rest of the machine cannot distort (both share these two cores)."""
    before = cpu_seconds(pid)
    result = run()
    used = cpu_seconds(pid) - before
    done = result["measured_requests_per_second"] * seconds
    result["server_cpu_ms_per_request"] = round(1000 * used / done, 3) if done else None
    return result


def measure(
    name: str,
    token_url: str,
    introspect_url: str,
    client: tuple[str, str],
    refresh: list[str],
    access: list[str],
    args: argparse.Namespace,
    scratch: Path,
    pid: int,
) -> dict:
    def files(tag: str, refresh_tokens: list[str], access_tokens: list[str]) -> dict[str, str]:
        (scratch / f"{tag}.refresh").write_text("\n".join(refresh_tokens) + "\n")
        (scratch / f"{tag}.access").write_text("\n".join(access_tokens) + "\n")
        return {"TOKENS_FILE": str(scratch / f"{tag}.refresh"), "ACCESS_FILE": str(scratch / f"{tag}.access")}

    auth = base64.b64encode(f"{client[0]}:{client[1]}".encode()).decode()
    common = {
        "CLIENT_AUTH": auth,
        "TOKEN_PATH": httpx.URL(token_url).path,
        "INTROSPECT_PATH": httpx.URL(introspect_url).path,
    }
    n = args.connections
    base = str(httpx.URL(token_url).copy_with(path="/"))
    if args.warmup:
        # The same load on tokens of their own, discarded: both servers (and the broker's JVM)
        # JIT-compile their hot paths first, as servers that have been up a while have.
        warm = {**common, **files(f"{name}-warmup", refresh[n:], access[n:])}
        run_wrk("introspect.lua", base, n, args.warmup, warm)
        run_wrk("refresh.lua", base, n, args.warmup, warm)
    env = {**common, **files(name, refresh[:n], access[:n])}
    introspection = with_cpu(
        pid, args.seconds, lambda: run_wrk("introspect.lua", base, args.connections, args.seconds, env)
    )
    refresh_run = with_cpu(pid, args.seconds, lambda: run_wrk("refresh.lua", base, args.connections, args.seconds, env))
    return {"refresh": refresh_run, "introspection": introspection}


async def lanyard_tokens(stack, n: int) -> tuple[str, tuple[str, str], list[str], list[str]]:
    async with httpx.AsyncClient(timeout=30) as http:
        ent = await open_enterprise(stack.base_url, stack.env, http)
        group = await ent.add_group("Clinicians")
        app = await ent.add_app(name="Charts", client_type="confidential", redirect_uri="https://charts.example/cb")
        await ent.make_ready([], [app], groups=(group,), inactivity_timeout_s=3600)
        refresh, access = [], []
        for i in range(n):
            person = await ent.add_user(f"bench{i:04d}", groups=(group,))
            device = Device(ent.base_url, ent.enterprise_id, http)
            await ent.enrol_device(device.device_id, device.public_jwk)
            await device.check_out(person)
            for _ in range(50):
                auth = await device.sso(app)
                if auth.code:
                    break
                await asyncio.sleep(0.1)
            tokens = await redeem(http, ent.issuer, app, auth)
            refresh.append(tokens["refresh_token"])
            access.append(tokens["access_token"])
        direct = f"{stack.service_url('idp')}/e/{ent.enterprise_id}"
        return direct, (app.client_id, app.client_secret), refresh, access


def peer_tokens(
    n: int, scratch: Path, store: str, redis_url: str
) -> tuple[subprocess.Popen, str, tuple[str, str], list[str], list[str]]:
    """Start node-oidc-provider with `store` ("memory" or "redis") and mint n token pairs."""
    peer = HERE / "peer"
    if not (peer / "node_modules" / "ioredis").exists():
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=peer, check=True)
    port = free_port()
    log = (scratch / f"peer-{store}.err").open("w")
    proc = subprocess.Popen(
        ["node", "server.js"],
        cwd=peer,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env={
            "PORT": str(port),
            "GRANTS": str(n),
            "ADAPTER": store,
            "REDIS_URL": redis_url.rsplit("/", 1)[0] + "/1",  # same server, its own database
            "PATH": "/usr/bin:/usr/local/bin:/bin",
        },
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("{"):
            info = json.loads(line)
            return proc, info["issuer"], (info["client_id"], info["client_secret"]), info["refresh"], info["access"]
    proc.kill()
    raise RuntimeError(f"node-oidc-provider ({store}) did not start; see peer-{store}.err")


def ratios(lanyard: dict, peer: dict) -> dict:
    """Lanyard / peer from the same run: throughput (higher is better) and CPU per request
    (lower is better). None where either side failed, so a failed run shows no ratio."""
    out = {}
    for endpoint in ("refresh", "introspection"):
        ours, theirs = lanyard[endpoint], peer[endpoint]
        rps = (
            round(ours["requests_per_second"] / theirs["requests_per_second"], 2)
            if ours["requests_per_second"] and theirs["requests_per_second"]
            else None
        )
        cpu = (
            round(ours["server_cpu_ms_per_request"] / theirs["server_cpu_ms_per_request"], 2)
            if ours["errors"] == 0 and theirs["errors"] == 0 and theirs["server_cpu_ms_per_request"]
            else None
        )
        out[endpoint] = {"throughput_ratio": rps, "cpu_per_request_ratio": cpu}
    return out


PEER_STORES = ("memory", "redis")


def variants(specs: list[str]) -> list[tuple[str, dict[str, str]]]:
    """`--variant granian:LANYARD_IDP_HTTP_SERVER=granian` → ("lanyard_idp_granian", {...}): the
    same Lanyard measurement again, in the same run, with the stack started with that environment
    (an A/B on the same machine at the same load)."""
    out = []
    for spec in specs:
        name, _, assignments = spec.partition(":")
        env = dict(a.split("=", 1) for a in assignments.split(",") if a)
        out.append((f"lanyard_idp_{name}", env))
    return out


def main(args: argparse.Namespace) -> int:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install wrk")
    results: dict = {
        "how_to_run": f"uv run python -m bench.token_endpoints --connections {args.connections} "
        f"--seconds {args.seconds} --warmup {args.warmup}",
        "parameters": vars(args),
    }
    minted = args.connections * (2 if args.warmup else 1)
    with tempfile.TemporaryDirectory() as tmp, infrastructure() as (kafka, redis, infra):
        scratch = Path(tmp)
        for store in () if args.no_peer else PEER_STORES:
            proc, issuer, client, refresh, access = peer_tokens(minted, scratch, store, redis)
            try:
                results[f"node_oidc_provider_9_{store}"] = measure(
                    f"peer-{store}",
                    f"{issuer}/token",
                    f"{issuer}/token/introspection",
                    client,
                    refresh,
                    access,
                    args,
                    scratch,
                    proc.pid,
                )
            finally:
                proc.terminate()
                proc.wait(10)
        for name, env in [("lanyard_idp", {}), *variants(args.variant)]:
            with local_stack(kafka, redis, infra / f"stack-{name}", **env) as stack:
                issuer, client, refresh, access = asyncio.run(lanyard_tokens(stack, minted))
                results[name] = measure(
                    name,
                    f"{issuer}/token",
                    f"{issuer}/introspect",
                    client,
                    refresh,
                    access,
                    args,
                    scratch,
                    stack.processes["idp"].pid,
                )
                results[name]["environment"] = env
    for store in () if args.no_peer else PEER_STORES:
        results[f"lanyard_over_peer_{store}"] = ratios(results["lanyard_idp"], results[f"node_oidc_provider_9_{store}"])
    results["targets"] = {"refresh_throughput_ratio": 1.2, "introspection_throughput_ratio": 1.5,
                          "cpu_per_request_ratio_at_most": 1.0}  # fmt: skip
    for name, _env in variants(args.variant):
        results[f"{name}_over_lanyard_idp"] = ratios(results[name], results["lanyard_idp"])
    runs = {k: v for k, v in results.items() if k.startswith(("lanyard_idp", "node_oidc_provider_9_"))}
    runs = {k: v for k, v in runs.items() if "_over_" not in k}
    errors = sum(run[endpoint]["errors"] for run in runs.values() for endpoint in ("refresh", "introspection"))
    results["errors"] = errors
    path = write("token_endpoints", results)
    print(json.dumps({k: v for k, v in results.items() if k not in ("how_to_run", "parameters")}, indent=1))
    print(f"-> {path}")
    if errors:
        print(f"FAILED: {errors} bad answers (status or body); no throughput is reported for those runs")
        return 1
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=16, help="wrk threads = connections = token chains")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=10, help="seconds of the same load before measuring, discarded")
    parser.add_argument("--no-peer", action="store_true", help="measure only Lanyard")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:KEY=VAL[,KEY=VAL]",
        help="measure Lanyard again with this environment for the stack (A/B in one run)",
    )
    raise SystemExit(main(parser.parse_args()))
