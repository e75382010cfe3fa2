"""Locker churn with repeated Redis crashes (issue 11): is every checked-in session revoked and
every app told, and how late is the revocation around a crash?

The whole stack as real processes (broker, the services, the gateway) on a Redis this script
owns, with AOF on. `--workers` clinicians loop for `--seconds`: check a device out, SSO into a
confidential app with a back-channel logout URI, redeem the code, check the device in (the
Locker app retries until it gets its 200), then poll introspection of the access token until it
is inactive. Meanwhile Redis is killed with SIGKILL `--crashes` times, evenly spread, and kept
down `--down-s` (taken in turn) before it is started again on the same data.

Per checkin: answered (the 200) → introspection inactive, and sent → inactive (includes the time
the checkin itself waited for Redis). A checkin is *around a crash* when it was sent within
`--window-s` before a crash or while Redis was down, or answered within `--window-s` after it
came back. At the end (bounded wait): every checked-in session's access token is inactive, its
refresh token refused, its app got a back-channel logout (by sid), and no record of the run's
enterprise is in a dead-letter topic.

Run:  uv run python -m bench.redis_churn [--seconds 90] [--crashes 4] [--workers 6] [--down-s 0.5 3]
Writes bench/results/redis_churn.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.common import percentiles, write
from lanyard.contracts import ALL_TOPICS
from lanyard.harness.admin import ApiError, App, Enterprise, open_enterprise
from lanyard.harness.device import Device, introspect, redeem, refresh
from lanyard.harness.rp import LogoutReceiver, logout_receiver, unverified_claims
from lanyard.harness.soak.churn import People, retrying
from lanyard.harness.stack import local_stack
from lanyard.runtime.testing import TopicProbe, eventually, kill_redis, local_kafka, local_redis, restart_redis


@dataclass
class Sample:
    """One checkout → SSO → checkin → revoked cycle."""

    sid: str
    access_token: str
    refresh_token: str
    sent: float
    answered: float = 0.0
    attempts: int = 0
    inactive: float | None = None


@dataclass
class Crash:
    killed: float
    restarted: float = 0.0


@dataclass
class Run:
    samples: list[Sample] = field(default_factory=list)
    crashes: list[Crash] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


async def cycle(http, ent: Enterprise, people: People, device: Device, app: App, run: Run, bound_s: float) -> None:
    deadline = time.time() + bound_s

    async def check_out():
        try:
            await device.check_out(await people.take())
        except ApiError as refused:
            if refused.response.status_code == 409:  # an earlier attempt went through, its answer lost
                await end_live_session(ent, device)
            raise
        return True

    await retrying("checkout", run, check_out, deadline, pause_s=0.05)

    async def sso():
        auth = await device.sso(app)
        return await redeem(http, ent.issuer, app, auth) if auth.code else None

    tokens = await retrying("sso", run, sso, deadline, pause_s=0.05)
    sample = Sample(unverified_claims(tokens["id_token"])["sid"], tokens["access_token"], tokens["refresh_token"], 0)
    sample.sent = time.time()

    async def check_in():
        sample.attempts += 1
        await device.check_in()
        return True

    await retrying("checkin", run, check_in, deadline, pause_s=0.2)
    sample.answered = time.time()
    run.samples.append(sample)

    async def inactive():
        return not (await introspect(http, ent.issuer, app, sample.access_token))["active"]

    await retrying("introspect", run, inactive, deadline, pause_s=0.01)
    sample.inactive = time.time()


async def end_live_session(ent: Enterprise, device: Device) -> None:
    """An admin force-checks-in the device's live session (the Locker app lost its handle)."""
    live = await ent._call("GET", f"/session/e/{ent.enterprise_id}/device-sessions")
    for s in live["device_sessions"]:
        if s["device_id"] == device.device_id:
            path = f"/session/e/{ent.enterprise_id}/device-sessions/{s['device_session_id']}/force-checkin"
            await ent._call("POST", path)


async def worker(http, ent, people: People, device: Device, app, run: Run, until: float, bound_s: float) -> None:
    while time.time() < until:
        try:
            await cycle(http, ent, people, device, app, run, bound_s)
        except TimeoutError as exc:
            run.error(str(exc))


async def crasher(data_dir, url: str, run: Run, start: float, seconds: float, crashes: int, downs: list[float]) -> None:
    for n in range(crashes):
        down_s = downs[n % len(downs)]
        at = start + seconds * (n + 0.5) / crashes + random.uniform(-1, 1)
        await asyncio.sleep(max(0.0, at - time.time()))
        crash = Crash(killed=time.time())
        await asyncio.to_thread(kill_redis, data_dir)
        await asyncio.sleep(down_s)
        await asyncio.to_thread(restart_redis, data_dir, url)
        crash.restarted = time.time()
        run.crashes.append(crash)
        print(f"crash {n + 1}: Redis down {crash.restarted - crash.killed:.2f} s", flush=True)


def around(sample: Sample, crash: Crash, window_s: float) -> bool:
    return crash.killed - window_s <= sample.sent <= crash.restarted or (
        crash.restarted <= sample.answered <= crash.restarted + window_s
    )


async def verify(http, ent, app, run: Run, receiver: LogoutReceiver, dlq: TopicProbe, bound_s: float) -> dict:
    """Every checked-in session revoked and its app told; nothing of this run dead-lettered."""
    wanted = {s.sid for s in run.samples}
    with contextlib.suppress(AssertionError):  # what is missing after the bound is reported below
        await eventually(lambda: wanted <= set(receiver.sids()), bound_s, 0.2, "every logout delivered")
    logouts = receiver.sids()
    active, refreshed = 0, 0
    for s in run.samples:
        if (await introspect(http, ent.issuer, app, s.access_token))["active"]:
            active += 1
        if (await refresh(http, ent.issuer, app, s.refresh_token)).status_code == 200:
            refreshed += 1
    dead = [r for r in dlq.raw if ent.enterprise_id.encode() in (r.value or b"")]
    return {
        "checked_in": len(run.samples),
        "revoked": len(run.samples) - active,
        "still_active": active,
        "refresh_accepted_after_checkin": refreshed,
        "logouts_delivered": len(wanted & set(logouts)),
        "logouts_missing": len(wanted - set(logouts)),
        "logout_tokens_received": len(receiver.tokens),
        "dead_lettered_records_of_this_run": len(dead),
        "logout_delay_after_checkin_answer_ms": percentiles(
            [(logouts[s.sid] - s.answered) * 1000 for s in run.samples if s.sid in logouts]
        ),
    }


async def main(args: argparse.Namespace) -> None:
    run = Run()
    started = time.time()
    with contextlib.ExitStack() as stack_of, logout_receiver() as receiver:
        scratch = Path(stack_of.enter_context(tempfile.TemporaryDirectory(prefix="lanyard-churn-")))
        kafka = stack_of.enter_context(local_kafka(scratch / "kafka"))
        redis_dir = scratch / "redis"
        redis = stack_of.enter_context(local_redis(redis_dir))  # ours: this script kills it
        stack = stack_of.enter_context(local_stack(kafka, redis, scratch / "stack"))
        dlq = await TopicProbe(kafka, *(t.dlq for t in ALL_TOPICS)).start()
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                ent = await open_enterprise(stack.base_url, stack.env, http)
                app = await ent.add_app(
                    name="Charts",
                    client_type="confidential",
                    redirect_uri="https://charts.example/callback",
                    backchannel_logout_uri=receiver.url,
                )
                group = await ent.add_group("Clinicians")
                await ent.make_ready([], [app], groups=(group,))
                people = People([await ent.add_user(f"churn{i:03d}", groups=(group,)) for i in range(args.people)])
                devices = []
                for _ in range(args.workers):
                    device = Device(stack.base_url, ent.enterprise_id, http)
                    await ent.enrol_device(device.device_id, device.public_jwk)
                    devices.append(device)
                t0 = time.time()
                until = t0 + args.seconds
                crashes = asyncio.create_task(
                    crasher(redis_dir, redis, run, t0, args.seconds, args.crashes, args.down_s)
                )
                await asyncio.gather(*(worker(http, ent, people, d, app, run, until, args.bound_s) for d in devices))
                await crashes
                outcome = await verify(http, ent, app, run, receiver, dlq, args.bound_s)
        finally:
            await dlq.stop()

    done = [s for s in run.samples if s.inactive is not None]
    per_crash = []
    for n, crash in enumerate(run.crashes, 1):
        near = [s for s in done if around(s, crash, args.window_s)]
        per_crash.append(
            {
                "crash": n,
                "redis_down_s": round(crash.restarted - crash.killed, 2),
                "checkins": len(near),
                "answered_to_inactive_ms": percentiles([(s.inactive - s.answered) * 1000 for s in near]),
                "sent_to_inactive_ms": percentiles([(s.inactive - s.sent) * 1000 for s in near]),
                "checkin_attempts_max": max((s.attempts for s in near), default=0),
            }
        )
    steady = [s for s in done if not any(around(s, c, args.window_s) for c in run.crashes)]
    result = {
        "how_to_run": "uv run python -m bench.redis_churn "
        + " ".join(
            f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in vars(args).items()
        ),
        "parameters": vars(args),
        "wall_s": round(time.time() - started, 1),
        "outcome": outcome,
        "around_each_crash": per_crash,
        "around_any_crash_answered_to_inactive_ms": percentiles(
            [(s.inactive - s.answered) * 1000 for s in done if s not in steady]
        ),
        "steady_answered_to_inactive_ms": percentiles([(s.inactive - s.answered) * 1000 for s in steady]),
        "client_errors_retried": run.errors,
    }
    path = write("redis_churn", result)
    print(f"outcome {outcome}\naround each crash {per_crash}\nsteady {result['steady_answered_to_inactive_ms']}")
    print(f"-> {path}")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=90, help="length of the churn")
    parser.add_argument("--crashes", type=int, default=4, help="Redis crashes, spread over the run")
    parser.add_argument(
        "--down-s", type=float, nargs="+", default=[0.5, 3.0], help="how long Redis stays down, crash after crash"
    )
    parser.add_argument("--workers", type=int, default=6, help="devices cycling concurrently")
    parser.add_argument("--people", type=int, default=90, help="clinicians (each signs in once per TOTP step)")
    parser.add_argument("--window-s", type=float, default=2.0, help="what counts as around a crash")
    parser.add_argument("--bound-s", type=float, default=120, help="bound on any one cycle and the final check")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
