"""IdP crash and restart: how long until it is ready again and serves device-session SSO.

On the whole stack (real processes, broker, Redis, gateway), with a device checked out and
granted: the IdP is killed with SIGKILL and started again, `--rounds` times. Each round
measures, from the new process's start:
- ready: its `/health/ready` answers 200 (polled every 10 ms on its own port);
- its CPU time until then (user + system, from /proc): start-up cost independent of the load
  other processes put on the machine, which the wall-clock figures are not;
- first SSO: the SSO extension's authorize request through the gateway returns a code
  (polled back to back);
and the SSO gap: from the kill to that first code.

Run:  uv run python -m bench.idp_restart [--rounds 5]
Writes bench/results/idp_restart.json. Aim (issue 11): under 3 s to the first SSO.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time

import httpx

from bench.common import cpu_seconds, infrastructure, percentiles, write
from lanyard.harness.admin import open_enterprise
from lanyard.harness.device import Device
from lanyard.harness.stack import local_stack


async def until(predicate, timeout_s: float, interval_s: float) -> float:
    """Seconds until `predicate()` is true (polled), or raise."""
    started = time.perf_counter()
    while True:
        try:
            if await predicate():
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        if time.perf_counter() - started > timeout_s:
            raise TimeoutError(f"not true after {timeout_s}s")
        await asyncio.sleep(interval_s)


async def restart_round(stack, http, device, app) -> dict[str, float]:
    ready_url = f"{stack.service_url('idp')}/health/ready"
    killed = time.perf_counter()
    stack.stop_service("idp", signal.SIGKILL)
    started = time.perf_counter()
    stack.start_service("idp")

    async def ready() -> bool:
        return (await http.get(ready_url)).status_code == 200

    async def sso() -> bool:
        return (await device.sso(app)).code is not None

    ready_task = asyncio.create_task(until(ready, 120, 0.01))
    await until(sso, 120, 0)
    first_sso = time.perf_counter() - started
    cpu_s = cpu_seconds(stack.processes["idp"].pid)
    ready_s = await ready_task
    return {
        "ready_s": ready_s,
        "first_sso_s": first_sso,
        "sso_gap_s": time.perf_counter() - killed,
        "cpu_to_first_sso_s": cpu_s,
        "load_average_1m": os.getloadavg()[0],
    }


async def main(args: argparse.Namespace) -> None:
    rounds: list[dict[str, float]] = []
    with infrastructure() as (kafka, redis, scratch), local_stack(kafka, redis, scratch / "stack") as stack:
        async with httpx.AsyncClient(timeout=10) as http:
            ent = await open_enterprise(stack.base_url, stack.env, http)
            nurse = await ent.add_user("nurse.restart")
            app = await ent.add_app(name="Rover", redirect_uri="com.epic.rover.oidc://callback")
            await ent.make_ready([nurse], [app])
            device = Device(stack.base_url, ent.enterprise_id, http)
            await ent.enrol_device(device.device_id, device.public_jwk)
            await device.check_out(nurse)
            await until(lambda: _sso_ok(device, app), 30, 0.05)
            for _ in range(args.rounds):
                rounds.append(await restart_round(stack, http, device, app))
                print({k: round(v, 2) for k, v in rounds[-1].items()})
                await asyncio.sleep(args.pause)
    result = {
        "how_to_run": f"uv run python -m bench.idp_restart --rounds {args.rounds}",
        "parameters": vars(args),
        "rounds": [{k: round(v, 3) for k, v in r.items()} for r in rounds],
        "ready_ms": percentiles([r["ready_s"] * 1000 for r in rounds]),
        "first_sso_ms": percentiles([r["first_sso_s"] * 1000 for r in rounds]),
        "sso_gap_ms": percentiles([r["sso_gap_s"] * 1000 for r in rounds]),
        "cpu_to_first_sso_ms": percentiles([r["cpu_to_first_sso_s"] * 1000 for r in rounds]),
        "target": {"first_sso_ms": 3000},
    }
    path = write("idp_restart", result)
    print(f"ready ms {result['ready_ms']}\nfirst SSO ms {result['first_sso_ms']}\n-> {path}")


async def _sso_ok(device, app) -> bool:
    return (await device.sso(app)).code is not None


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="kill -9 and restart this many times")
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between rounds")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
