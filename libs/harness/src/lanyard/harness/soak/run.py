"""One soak: a private broker and Redis (the faults kill them), every service and the gateway, an
enterprise with two confidential apps that register a back-channel logout URI, `workers`
devices churning for `minutes` (and on until the last fault recovered) while the faults run one
after the other, then the checker.

Per fault: `restored_s` (fault → the broken part back), `first_sso_s` (fault → the first
checkout + SSO that succeeded after it), `ready_s` (fault → every service ready again).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from lanyard.harness.admin import ApiError, Enterprise, bootstrap, known_everywhere, sign_in
from lanyard.harness.device import Device
from lanyard.harness.rp import logout_receiver
from lanyard.harness.soak.checker import Verdict, check
from lanyard.harness.soak.churn import Churn, People
from lanyard.harness.soak.faults import Injected, Target, injector
from lanyard.harness.soak.ledger import Ledger
from lanyard.harness.stack import local_stack
from lanyard.runtime.testing import TopicProbe, local_kafka, local_redis

MAX_STALENESS_S = 5.0
"""The IdP's `max_staleness_s` (its default; the stack runs with it)."""


@dataclass
class Plan:
    """What one soak does."""

    minutes: float = 10.0
    workers: int = 8
    people: int = 60
    faults: list[str] = field(default_factory=list)
    rp_down_s: float = 60.0
    cut_s: float = 30.0
    warmup_s: float = 5.0
    settle_s: float = 5.0
    """Churn between one fault's recovery and the next fault."""
    bound_s: float = 240.0
    seed: int = 17


async def recover(churn: Churn, device: Device, injected: Injected, target: Target) -> None:
    """After a fault: the first checkout + SSO that succeeds (then checked in like any session),
    and every service ready."""
    ready = asyncio.create_task(asyncio.to_thread(target.stack.wait_ready, timeout_s=churn.bound_s))
    trace = await churn.cycle(device, random.Random(injected.at))  # noqa: S311 - the churn's choices, not secrets
    injected.details["first_sso_s"] = round(trace.grants[0].issued_at - injected.at, 2)
    await ready
    injected.details["ready_s"] = round(time.time() - injected.at, 2)


async def faults_in_turn(plan: Plan, churn: Churn, device: Device, target: Target, out: list[Injected]) -> None:
    await asyncio.sleep(plan.warmup_s)
    for name in plan.faults:
        injected = Injected(name, time.time())
        churn.ledger.note("fault", name)
        print(f"fault {name}", flush=True)
        await injector(name)(target)
        injected.restored = time.time()
        injected.details["restored_s"] = round(injected.restored - injected.at, 2)
        out.append(injected)
        try:
            await recover(churn, device, injected, target)
        except (TimeoutError, RuntimeError, ApiError, httpx.HTTPError) as exc:
            injected.details["not_recovered"] = str(exc)
            churn.ledger.note("not recovered", f"{name}: {exc}")
        print(f"  {injected.details}", flush=True)
        await asyncio.sleep(plan.settle_s)


async def open_soak_enterprise(base_url: str, env: dict[str, str], http: httpx.AsyncClient) -> tuple[Enterprise, str]:
    """A fresh enterprise and its superadmin signed in; (enterprise, the superadmin's password)."""
    enterprise_id = f"soak-{uuid.uuid4().hex[:8]}"
    password = f"pw-{uuid.uuid4().hex}"
    bootstrap(env, enterprise_id, "superadmin", password)
    ent = await sign_in(base_url, enterprise_id, "superadmin", password, http)
    ent.env = env
    await known_everywhere(base_url, http, enterprise_id, ent.admin_token)
    return ent, password


async def soak(plan: Plan, scratch: Path) -> dict[str, Any]:
    """Run the plan; the result (faults, measures, violations) as a dict."""
    started = time.time()
    ledger = Ledger()
    injected: list[Injected] = []
    with contextlib.ExitStack() as on_exit, logout_receiver() as receiver:
        kafka_dir, redis_dir = scratch / "kafka", scratch / "redis"
        kafka = on_exit.enter_context(local_kafka(kafka_dir))
        redis = on_exit.enter_context(local_redis(redis_dir))
        from lanyard.runtime.kafka import ensure_topics

        await ensure_topics(kafka)
        stack = on_exit.enter_context(local_stack(kafka, redis, scratch / "stack"))
        from lanyard.contracts import ALL_TOPICS

        probe = await TopicProbe(kafka, *ALL_TOPICS).start()  # the six and their dead-letter topics
        try:
            async with httpx.AsyncClient(timeout=15) as http:
                ent, password = await open_soak_enterprise(stack.base_url, stack.env, http)
                apps = [
                    await ent.add_app(
                        name=name,
                        client_type="confidential",
                        redirect_uri=f"https://{name.lower()}.example/callback",
                        backchannel_logout_uri=receiver.url,
                    )
                    for name in ("Charts", "Meds")
                ]
                group = await ent.add_group("Clinicians")
                await ent.make_ready([], apps, groups=(group,))
                people = [await ent.add_user(f"soak{i:03d}", groups=(group,)) for i in range(plan.people)]
                churn = Churn(http, ent, apps, People(people), ledger, bound_s=plan.bound_s)
                devices: dict[str, Device] = {}
                for _ in range(plan.workers + 1):
                    device = Device(stack.base_url, ent.enterprise_id, http)
                    await ent.enrol_device(device.device_id, device.public_jwk)
                    devices[device.device_id] = device
                *churners, recovery = devices.values()
                target = Target(stack, kafka, kafka_dir, redis, redis_dir, receiver, ledger, plan.rp_down_s, plan.cut_s)
                until = time.time() + plan.minutes * 60
                rng = random.Random(plan.seed)  # noqa: S311 - the churn's choices, not secrets
                faults = asyncio.create_task(faults_in_turn(plan, churn, recovery, target, injected))

                def busy() -> bool:
                    # Churn for the plan's minutes and on until the last fault recovered, so every
                    # fault hits a stack under load (the faults' recovery can outlast the minutes).
                    return time.time() < until or not faults.done()

                workers = [asyncio.create_task(churn.worker(d, busy, random.Random(rng.random()))) for d in churners]  # noqa: S311
                await faults
                await asyncio.gather(*workers)
                await churn.finish(devices)
                print(f"churn done: {len(ledger.traces)} sessions; checking", flush=True)
                # The superadmin's token (15 min) may have expired over a long soak.
                again = await sign_in(stack.base_url, ent.enterprise_id, "superadmin", password, http)
                ent.admin_token = again.admin_token
                verdict = await check(
                    churn, devices, receiver, probe, injected, MAX_STALENESS_S, plan.bound_s,
                    stack.env["LANYARD_POLICY_REDIS_URL"],
                )  # fmt: skip
        finally:
            await probe.stop()
    return result(plan, verdict, injected, ledger, started)


def result(plan: Plan, verdict: Verdict, injected: list[Injected], ledger: Ledger, started: float) -> dict[str, Any]:
    return {
        "parameters": asdict(plan),
        "wall_s": round(time.time() - started, 1),
        "load_average": os.getloadavg(),
        "verdict": verdict.summary(),
        "faults": [{"fault": f.name, **f.details} for f in injected],
        "client_refusals_retried": ledger.errors,
    }
