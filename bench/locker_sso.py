"""Locker SSO on the whole stack (DESIGN §6): revocation latency, grant latency, SSO throughput,
and each service's memory, with real processes, the real broker, Redis and the gateway.

- revocation: checkin request sent → every effect holds (`revocation_latency`); with `--live`
  other sessions checked out and a background of SSO logins.
- grant: checkout answered → first SSO authorization that returns a code (the IdP waits briefly
  for a grant still in flight, so this is usually the first attempt).
- throughput: complete device-session code flows (authorize + token) per second, `--workers`
  concurrent flows over the live sessions for `--seconds`.
- memory: VmRSS of each service process after the run.

Run:  uv run python -m bench.locker_sso [--live 1000] [--samples 200] [--seconds 15] [--workers 16]
Writes bench/results/locker_sso.json. Targets (issue 18): revocation — checkin request sent →
introspection inactive, refresh refused and back-channel logout received — p50 ≤ 8 ms, p99 ≤
25 ms; grant p99 ≤ 100 ms; ≥ 300 flows/s; ≤ 200 MB RSS per service throughout (sampled every
0.5 s). The CPU each component (services, broker, Redis, gateway) spends per flow is recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx

from bench.common import (
    RssWatch,
    components,
    cpu_by_component,
    infrastructure,
    per_flow,
    percentiles,
    service_rss,
    write,
)
from bench.poller import Poller
from lanyard.harness.admin import App, Enterprise, Person, open_enterprise
from lanyard.harness.device import Device, redeem, refresh
from lanyard.harness.rp import LogoutReceiver, logout_receiver, unverified_claims
from lanyard.harness.stack import SERVICES, local_stack
from lanyard.runtime.proofs import PROOF_TYP


async def people_and_devices(
    ent: Enterprise, group: str, n: int, prefix: str, concurrency: int = 8
) -> list[tuple[Person, Device]]:
    """n users (each with TOTP) in `group`, and n enrolled devices."""
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> tuple[Person, Device]:
        async with sem:
            person = await ent.add_user(f"{prefix}{i:05d}", groups=(group,))
            device = Device(ent.base_url, ent.enterprise_id, ent.http)
            await ent.enrol_device(device.device_id, device.public_jwk)
            return person, device

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def check_out_all(pairs: list[tuple[Person, Device]], concurrency: int = 8) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def one(person: Person, device: Device) -> None:
        async with sem:
            await device.check_out(person)

    await asyncio.gather(*(one(p, d) for p, d in pairs))


async def sso_flow(
    http: httpx.AsyncClient, ent: Enterprise, device: Device, app: App, retry_s: float = 0
) -> dict | None:
    """authorize + token; with `retry_s`, retries a refused authorization as the extension does."""
    deadline = time.perf_counter() + retry_s
    while True:
        auth = await device.sso(app)
        if auth.code:
            return await redeem(http, ent.issuer, app, auth)
        if time.perf_counter() >= deadline:
            return None
        await asyncio.sleep(0.05)


async def grant_latency(http, ent, pair, app) -> float:
    person, device = pair
    await device.check_out(person)
    started = time.perf_counter()
    while True:
        if (await device.sso(app)).code:
            return (time.perf_counter() - started) * 1000
        if time.perf_counter() - started > 10:
            raise TimeoutError("no SSO within 10 s of checkout")


async def revocation_latency(
    http: httpx.AsyncClient,
    ent: Enterprise,
    pair: tuple[Person, Device],
    app: App,
    probe_app: App,
    receiver: LogoutReceiver,
    lean: bool = True,
    refresh_after_inactive: bool = True,
    poll_after_answer: bool = True,
    checkin_prepared: bool = True,
) -> dict[str, float]:
    """One revocation sample, in ms from the moment the checkin request is sent (not answered)
    until each effect holds for the session's tokens at `app` (confidential, back-channel logout
    at `receiver`): `introspection` inactive (asked as `probe_app`), `refresh` refused, `logout`
    received by the app; `all` is the last of the three, `checkin_answered` when Locker answered.

    Introspection and refresh are polled back to back (each round asks both at once), so their
    figures include up to one round trip of observation; the logout's is its arrival time at
    the receiver. A refresh that still succeeds rotates, and the rotated token is used next.
    Every answer is checked (status and body). The polls go over `bench.poller` connections
    (`lean`), which cost the observer a fraction of httpx's CPU; `lean=False` polls with httpx
    as the earlier runs did.

    `refresh_after_inactive`: refresh is first tried once introspection has said inactive, so
    its figure is an upper bound (never earlier than the truth) and the observer does not load
    the stack it measures with a rotation — an acknowledged `tokens_refreshed` event that the
    session service and audit then handle — every millisecond of the window. A refresh that
    still succeeds then is reported as late as it is; `False` polls both from the start.

    `poll_after_answer`: the first poll is sent once Locker has answered the checkin. The IdP
    acts on the checkin's event, which the broker acknowledges before Locker answers, so waiting
    for the answer skips nothing but the polls that cannot see an effect yet — which, sent back
    to back, took the IdP, nginx and this process's share of the two cores from the checkin's
    own path. An effect that held before the first poll is reported at that poll's answer (an
    upper bound, like the rest); `False` polls from the moment the checkin is sent.

    `checkin_prepared`: the checkin is signed (its device proof) and its connection opened before
    the clock starts, which starts as the request is written, as a device sends it; `False` starts
    the clock before the harness's httpx call that signs, encodes and sends it."""
    _, device = pair
    tokens = await sso_flow(http, ent, device, app, retry_s=15)
    if not tokens:
        raise RuntimeError(f"SSO refused before the revocation sample: {(await device.sso(app)).params}")
    sid = unverified_claims(tokens["id_token"]).get("sid")
    if not isinstance(sid, str):
        raise RuntimeError("the ID token carries no sid: no back-channel logout can be matched to it")
    refresh_token = tokens["refresh_token"]
    probe_auth, app_auth = (probe_app.client_id, secret(probe_app)), (app.client_id, secret(app))
    pollers = (Poller(ent.issuer), Poller(ent.issuer))
    checkin_poller = Poller(ent.issuer)
    for poller in (*pollers, checkin_poller):
        await poller.connect()  # before the clock starts
    checkin_url, checkin_headers = device.check_in_request()

    async def send_checkin() -> None:
        if not checkin_prepared:
            await device.check_in()
            return
        status, body = await checkin_poller.post(checkin_url, b"", checkin_headers)
        if status != 200 or json.loads(body).get("state") != "CLOSED":
            raise RuntimeError(f"the checkin answered {status}: {body[:300]!r}")

    async def introspection_answer() -> tuple[int, bytes]:
        if not lean:
            form = {"token": tokens["access_token"]}
            answer = await http.post(f"{ent.issuer}/introspect", data=form, auth=probe_auth)
            return answer.status_code, answer.content
        form = {"token": tokens["access_token"]}
        return await pollers[0].post_form(f"{ent.issuer}/introspect", form, probe_auth)

    async def refresh_answer() -> tuple[int, bytes]:
        if not lean:
            answer = await refresh(http, ent.issuer, app, refresh_token)
            return answer.status_code, answer.content
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return await pollers[1].post_form(f"{ent.issuer}/token", form, app_auth)

    seen: dict[str, float] = {}
    started_wall, started = time.time(), time.perf_counter()
    checkin = asyncio.create_task(send_checkin())
    checkin.add_done_callback(lambda _t: seen.setdefault("checkin_answered", (time.perf_counter() - started) * 1000))

    async def introspection() -> None:
        status, body = await introspection_answer()
        if status != 200:
            raise RuntimeError(f"introspection answered {status} during revocation")
        if not json.loads(body)["active"]:
            seen["introspection"] = (time.perf_counter() - started) * 1000

    async def refresh_refused() -> None:
        nonlocal refresh_token
        status, body = await refresh_answer()
        answer = json.loads(body)
        if status == 200 and answer.get("access_token"):
            refresh_token = answer["refresh_token"]
        elif status == 400 and answer.get("error") == "invalid_grant":
            seen["refresh"] = (time.perf_counter() - started) * 1000
        else:
            raise RuntimeError(f"refresh answered {status} during revocation, not a refusal")

    if poll_after_answer:
        await checkin
    while not {"introspection", "refresh", "logout"} <= seen.keys():
        if time.perf_counter() - started > 10:
            raise TimeoutError(f"10 s after checkin only these effects held: {sorted(seen)}")
        refresh_due = "refresh" not in seen and ("introspection" in seen or not refresh_after_inactive)
        await asyncio.gather(
            *([] if "introspection" in seen else [introspection()]),
            *([refresh_refused()] if refresh_due else []),
        )
        if "logout" not in seen and (arrived := receiver.sids().get(sid)) is not None:
            seen["logout"] = (arrived - started_wall) * 1000
        if {"introspection", "refresh"} <= seen.keys() and "logout" not in seen:
            await asyncio.sleep(0.001)  # only the logout is left: it comes to the receiver
    await checkin
    for poller in (*pollers, checkin_poller):
        await poller.close()
    seen["all"] = max(seen["introspection"], seen["refresh"], seen["logout"])
    return seen


def secret(app: App) -> str:
    """A confidential app's client secret."""
    if app.client_secret is None:
        raise ValueError(f"{app.client_id} is a public client")
    return app.client_secret


def effect_percentiles(samples: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Percentiles of each effect over the samples; `all` (every effect holds) is the target's."""
    keys = ("all", "introspection", "refresh", "logout", "checkin_answered")
    return {k: percentiles([s[k] for s in samples if k in s]) for k in keys}


async def background_sso(
    http, ent, devices: list[Device], app: App, rate: float, stop: asyncio.Event
) -> dict[str, int]:
    """SSO logins at about `rate` per second on the live sessions, until `stop`; each one that
    does not end with tokens is counted as failed (the live sessions must all keep working)."""
    counts, i = {"ok": 0, "failed": 0}, 0
    while not stop.is_set():
        device = devices[i % len(devices)]
        i += 1
        try:
            counts["ok" if await sso_flow(http, ent, device, app) else "failed"] += 1
        except Exception:
            counts["failed"] += 1
        # The pause ends early on `stop`, so a low rate does not hold the benchmark's end.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1 / rate)
    return counts


async def throughput(http, ent, devices: list[Device], app: App, workers: int, seconds: float) -> dict:
    deadline = time.perf_counter() + seconds
    counts = {"ok": 0, "failed": 0}

    async def worker(offset: int) -> None:
        i = offset
        while time.perf_counter() < deadline:
            device = devices[i % len(devices)]
            i += workers
            try:
                counts["ok" if await sso_flow(http, ent, device, app) else "failed"] += 1
            except Exception:
                counts["failed"] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    elapsed = time.perf_counter() - started
    return {
        "flows": counts["ok"],
        "failed": counts["failed"],
        "seconds": round(elapsed, 2),
        # A run with failed flows reports no throughput (its errors are the result).
        "flows_per_second": round(counts["ok"] / elapsed, 1) if counts["failed"] == 0 else None,
        "workers": workers,
    }


def node_throughput(ent: Enterprise, devices: list[Device], app: App, workers: int, seconds: float, scratch) -> dict:
    """The same flows driven by bench/flows/sso_flows.mjs (Node's standard library only): the
    load generator shares the two cores with the stack, and this one costs a fraction of the
    Python simulator's CPU per flow."""
    config = {
        "base_url": ent.base_url,
        "enterprise_id": ent.enterprise_id,
        "client_id": app.client_id,
        "redirect_uri": app.redirect_uri,
        "scope": "openid profile email offline_access",
        "proof_typ": PROOF_TYP,
        "seconds": seconds,
        "workers": workers,
        "devices": [{"handle": d.handle, "jwk": d.key.as_dict(private=True)} for d in devices],
    }
    path = scratch / "sso_flows.json"
    path.write_text(json.dumps(config))
    out = subprocess.run(
        ["node", str(Path(__file__).parent / "flows" / "sso_flows.mjs"), str(path)],
        check=True, capture_output=True, text=True, timeout=seconds + 60,
    )  # fmt: skip
    return {**json.loads(out.stdout), "client": "node (bench/flows/sso_flows.mjs)"}


async def main(args: argparse.Namespace) -> None:
    with (
        infrastructure() as (kafka, redis, scratch),
        local_stack(kafka, redis, scratch / "stack") as stack,
        logout_receiver() as receiver,
        RssWatch({s: stack.processes[s].pid for s in SERVICES}) as rss,
    ):
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            ent = await open_enterprise(stack.base_url, stack.env, http)
            group = await ent.add_group("Clinicians")
            app = await ent.add_app(
                name="Rover", client_type="public", redirect_uri="com.epic.rover.oidc://callback",
                id_token_alg=args.id_token_alg,
            )  # fmt: skip
            probe_app = await ent.add_app(
                name="Resource server", client_type="confidential", redirect_uri="https://rs.example/cb"
            )
            charts = await ent.add_app(
                name="Charts", client_type="confidential", redirect_uri="https://charts.example/cb",
                backchannel_logout_uri=receiver.url,
            )  # fmt: skip
            await ent.make_ready([], [app, probe_app, charts], groups=(group,))
            pids = components(stack, kafka, redis, scratch)
            t0 = time.perf_counter()
            live = await people_and_devices(ent, group, args.live, "live")
            grant_pairs = await people_and_devices(ent, group, args.samples, "grant")
            revoke_pairs = await people_and_devices(ent, group, args.samples, "revoke")
            setup_users_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            await check_out_all(live)
            await check_out_all(revoke_pairs)
            setup_checkouts_s = time.perf_counter() - t0
            live_devices = [d for _, d in live]
            for device in live_devices[:20]:  # warm-up: first flows pay connection and cache set-up
                await sso_flow(http, ent, device, app)

            grants = [await grant_latency(http, ent, pair, app) for pair in grant_pairs]

            stop = asyncio.Event()
            background = asyncio.create_task(background_sso(http, ent, live_devices, app, args.background_rate, stop))
            revocations = [
                await revocation_latency(http, ent, pair, charts, probe_app, receiver) for pair in revoke_pairs
            ]
            stop.set()
            background_done = await background

            before = cpu_by_component(pids)
            flows = await throughput(http, ent, live_devices, app, args.workers, args.seconds)
            flows["client"] = "python (lanyard.harness.device + httpx)"
            flows["cpu_ms_per_flow"] = per_flow(before, cpu_by_component(pids), flows["flows"])
            node_flows = None
            if shutil.which("node"):
                before = cpu_by_component(pids)
                node_flows = await asyncio.to_thread(
                    node_throughput, ent, live_devices, app, args.workers, args.seconds, scratch
                )
                node_flows["cpu_ms_per_flow"] = per_flow(before, cpu_by_component(pids), node_flows.get("flows", 0))
            memory = {s: service_rss(stack.processes[s].pid) for s in SERVICES}
        peak_rss = rss.peaks()

    result = {
        "how_to_run": "uv run python -m bench.locker_sso "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "parameters": vars(args),
        "setup": {"users_and_devices_s": round(setup_users_s, 1), "checkouts_s": round(setup_checkouts_s, 1)},
        "revocation_ms": {
            **effect_percentiles(revocations),
            "measured": "checkin request sent -> introspection inactive, refresh refused, back-channel logout received",
            "live_sessions": args.live,
            "background_sso_flows": background_done["ok"],
            "background_sso_failed": background_done["failed"],
            "target_all": {"p50": 8, "p99": 25},
        },
        "grant_ms": {**percentiles(grants), "target": {"p99": 100}},
        "sso_throughput": {**flows, "target_flows_per_second": 300},
        "sso_throughput_light_client": node_flows,
        "rss_mb": {**memory, "target_each_process": 200},
        "peak_rss_mb_throughout": peak_rss,
    }
    if node_flows and node_flows.get("failed"):
        node_flows["flows_per_second"] = None
    errors = background_done["failed"] + flows["failed"] + (node_flows or {}).get("failed", 0)
    result["errors"] = errors
    path = write("locker_sso", result)
    print(
        f"revocation ms {result['revocation_ms']}\ngrant ms {result['grant_ms']}\n"
        f"throughput {flows}\nthroughput, light client {node_flows}\nrss MB {memory}\n-> {path}"
    )
    if errors:
        raise SystemExit(f"FAILED: {errors} SSO flows did not end with tokens; no throughput is reported")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--live", type=int, default=1000, help="sessions checked out during the measurements")
    parser.add_argument("--samples", type=int, default=200, help="revocation and grant samples each")
    parser.add_argument("--seconds", type=float, default=15, help="length of the throughput run")
    parser.add_argument("--workers", type=int, default=16, help="concurrent flows in the throughput run")
    parser.add_argument("--background-rate", type=float, default=20, help="SSO flows/s during revocation samples")
    parser.add_argument(
        "--id-token-alg", choices=["RS256", "ES256"], default="RS256",
        help="the ID token algorithm the measured app registers (RS256: what an app that registers none gets)",
    )  # fmt: skip
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
