"""The verdict of a soak, from the churn's ledger and the services' own records.

Violations (each a list; the soak passes only when all are empty):
- `not_revoked`: a checked-in session some check still accepted at the end of its bound;
- `resurrected`: a token or session that worked again after a check had seen it refused —
  during the churn, or at the final re-check after every fault (restarts, rebuilds);
- `not_refused_at_end`: the final re-check found a refresh answered other than 400 (a 503 is
  failing closed, not revoked) or any other check accepting;
- `refused_while_live`: a refresh, SSO (or its code redemption) or introspection of a live session
  (checked out, checkin not yet sent; the churn never locks a session itself) refused with a 4xx
  or, for introspection, answered inactive outside a fault (where failing closed is the design).
  An app told `invalid_grant` discards its tokens: a sign-out mid-shift. Only "retry" answers
  pass: a 5xx or `temporarily_unavailable` / `server_error`;
- `open_while_cut`: an SSO or refresh granted while the broker was cut, later than the IdP's
  staleness bound after the cut began (it must fail closed);
- `logouts_missing`: a checked-in session whose apps were never told (back-channel logout);
- `events_missing` / `events_duplicated`: an event the broker acknowledged for the enterprise
  that the audit log does not hold, or holds more than once; `audit_verify`: the chain check;
- `seats_in_use`: the policy projection still counting a seat once every session is checked in;
- `dead_lettered`: a record of the run's enterprise in a dead-letter topic (nothing in the churn
  is poison).

Measures: checkin answered → each check refused (and → all refused), as p50/p90/p99/max.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from lanyard.harness.device import Device, introspect, refresh
from lanyard.harness.rp import LogoutReceiver
from lanyard.harness.soak.churn import UNAVAILABLE, Churn
from lanyard.harness.soak.faults import Injected
from lanyard.harness.soak.ledger import CHECKS, Ledger
from lanyard.runtime.redis import create_redis
from lanyard.runtime.testing import TopicProbe, eventually

STALENESS_MARGIN_S = 3.0
"""Beyond the IdP's `max_staleness_s`: its freshness tick, a request already past the check."""


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    """n, p50/p90/p99/max/mean of latencies in milliseconds (rounded to 1 ms)."""
    if not samples_ms:
        return {"n": 0}
    ordered = sorted(samples_ms)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))])

    return {
        "n": len(ordered), "p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99),
        "max": round(ordered[-1]), "mean": round(sum(ordered) / len(ordered)),
    }  # fmt: skip


@dataclass
class Verdict:
    """What the checker found."""

    violations: dict[str, list[Any]] = field(default_factory=dict)
    measures: dict[str, Any] = field(default_factory=dict)

    def add(self, kind: str, item: Any) -> None:
        self.violations.setdefault(kind, []).append(item)

    @property
    def ok(self) -> bool:
        return not any(self.violations.values())

    def summary(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "violations": {k: len(v) for k, v in self.violations.items()},
            "examples": {k: v[:5] for k, v in self.violations.items() if v},
            **self.measures,
        }


async def check(
    churn: Churn,
    devices: dict[str, Device],
    receiver: LogoutReceiver,
    probe: TopicProbe,
    faults: list[Injected],
    max_staleness_s: float,
    bound_s: float,
    policy_redis_url: str | None = None,
) -> Verdict:
    """Every check of the module docstring, after the churn stopped. With `policy_redis_url`, a
    seat left in use is reported with what the policy holds and the events of its holder."""
    verdict, ledger = Verdict(), churn.ledger
    checked_in = [t for t in ledger.traces if t.checkin_answered]
    for t in checked_in:
        if t.revoked_at() is None:
            verdict.add("not_revoked", {"trace": t.n, "refused": sorted(t.refused_at)})
    for r in ledger.resurrections:
        verdict.add("resurrected", r)
    _revocation_bounds(checked_in, verdict)
    _fail_closed(ledger, faults, max_staleness_s, verdict)
    _live_refusals(ledger, faults, max_staleness_s, verdict)

    wanted = {sid for t in checked_in for sid in t.sids}
    with contextlib.suppress(AssertionError):  # what is still missing after the bound is reported
        await eventually(lambda: wanted <= set(receiver.sids()), bound_s, 0.5, "every logout delivered")
    told = receiver.sids()
    for t in checked_in:
        for sid in t.sids - set(told):
            verdict.add("logouts_missing", {"trace": t.n, "sid": sid})
    verdict.measures["logout_after_checkin_ms"] = percentiles(
        [(told[sid] - t.checkin_answered) * 1000 for t in checked_in for sid in t.sids if sid in told]
    )
    verdict.measures["logout_tokens_received"] = len(receiver.tokens)
    verdict.measures["logout_posts_refused_while_rp_down"] = receiver.refused

    await _final_recheck(churn, devices, checked_in, verdict)
    await _records(churn, probe, checked_in, verdict, policy_redis_url)
    verdict.measures["sessions"] = {
        "checked_out": len(ledger.traces),
        "checked_in": len(checked_in),
        "sso_grants": sum(len(t.grants) for t in ledger.traces),
        "refreshes": sum(t.refreshes for t in ledger.traces),
        "face_unlocks": sum(t.face_unlocks for t in ledger.traces),
        "accepted_after_checkin_within_bound": sum(len(t.accepted_after_checkin) for t in checked_in),
    }
    return verdict


def _revocation_bounds(checked_in: list, verdict: Verdict) -> None:
    per_check = {c: [] for c in CHECKS}
    everything = []
    for t in checked_in:
        for c in CHECKS:
            if c in t.refused_at:
                per_check[c].append((t.refused_at[c] - t.checkin_answered) * 1000)
        if (done := t.revoked_at()) is not None:
            everything.append((done - t.checkin_answered) * 1000)
    verdict.measures["checkin_answered_to_refused_ms"] = {
        "all_checks": percentiles(everything),
        **{c: percentiles(v) for c, v in per_check.items()},
    }


def _fail_closed(ledger: Ledger, faults: list[Injected], max_staleness_s: float, verdict: Verdict) -> None:
    for f in faults:
        if f.name != "broker-cut":
            continue
        closed_from = f.at + max_staleness_s + STALENESS_MARGIN_S
        for at, what, n in ledger.successes:
            if closed_from < at < f.restored:
                verdict.add("open_while_cut", {"what": what, "trace": n, "s_after_cut": round(at - f.at, 2)})


def _live_refusals(ledger: Ledger, faults: list[Injected], max_staleness_s: float, verdict: Verdict) -> None:
    windows = [(f.at, f.at + float(f.details.get("ready_s", f.restored - f.at)) + max_staleness_s) for f in faults]
    for r in ledger.refusals:
        if not r.live or r.status >= 500 or r.error in UNAVAILABLE:
            continue
        in_fault = any(a <= r.at <= b for a, b in windows)
        if r.what == "introspect" and r.status == 200 and in_fault:
            continue  # inactive while the IdP cannot show it is caught up: failing closed
        verdict.add(
            "refused_while_live",
            {"what": r.what, "trace": r.trace, "status": r.status, "error": r.error, "description": r.description},
        )
    verdict.measures["refusals_of_live_sessions"] = dict(
        Counter(f"{r.what}: {r.status} {r.error}" for r in ledger.refusals if r.live)
    )


async def _final_recheck(churn: Churn, devices: dict[str, Device], checked_in: list, verdict: Verdict) -> None:
    """After every fault: each token of each checked-in session still refused, refresh with 400."""
    http, ent = churn.http, churn.ent
    for t in checked_in:
        for grant in t.grants:
            app = churn.app(grant.app)
            for token in grant.access_tokens:
                if (await introspect(http, ent.issuer, app, token))["active"]:
                    verdict.add("not_refused_at_end", {"trace": t.n, "check": "introspect"})
            for token in grant.refresh_tokens:
                status = (await refresh(http, ent.issuer, app, token)).status_code
                if status != 400:
                    verdict.add("not_refused_at_end", {"trace": t.n, "check": "refresh", "status": status})
                    if status == 200:
                        verdict.add("resurrected", {"trace": t.n, "check": "refresh", "at": "final"})
            r = await http.get(f"{ent.issuer}/userinfo", headers={"Authorization": f"Bearer {grant.access_tokens[-1]}"})
            if r.status_code == 200:
                verdict.add("not_refused_at_end", {"trace": t.n, "check": "userinfo"})
        device = devices[t.device_id]
        old = Device(device.base_url, device.enterprise_id, http, device.device_id, device.key, t.handle)
        if (await old.sso(churn.apps[0])).code:
            verdict.add("not_refused_at_end", {"trace": t.n, "check": "sso"})


async def _records(
    churn: Churn, probe: TopicProbe, checked_in: list, verdict: Verdict, policy_redis_url: str | None
) -> None:
    """The audit log (exactly once, verify passes), the policy projection (no seat left), the DLQs."""
    ent = churn.ent
    e = ent.enterprise_id
    acknowledged = {ev.event_id: ev.type for ev in probe.events if getattr(ev, "enterprise_id", None) == e}
    deadline = time.monotonic() + 60
    while True:
        exported = await ent.raw("GET", f"/audit/e/{e}/export", params={"format": "jsonl"}, timeout=120)
        rows = [json.loads(line) for line in exported.text.splitlines() if line.strip()]
        counts = Counter(r["event_id"] for r in rows)
        missing = [i for i in acknowledged if i not in counts]
        if not missing or time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)  # the audit consumer may still be catching up after a fault
    for event_id in missing:
        verdict.add("events_missing", {"event_id": event_id, "type": acknowledged[event_id]})
    for event_id, n in counts.items():
        if n > 1:
            verdict.add("events_duplicated", {"event_id": event_id, "times": n})
    checkins = sum(1 for r in rows if r["type"] == "session.device_checked_in.v1")
    if checkins < len(checked_in):
        verdict.add("events_missing", {"type": "session.device_checked_in.v1", "audited": checkins})
    verification = await ent.call("GET", f"/audit/e/{e}/verification")
    if not verification.get("ok"):
        verdict.add("audit_verify", verification)
    seats = await _seats_settled(ent, e)
    if seats["sso"]["in_use"] or seats["apa"]["in_use"]:
        verdict.add("seats_in_use", {**seats, "held": await _seat_history(policy_redis_url, e, probe)})
    dead = [r for r in probe.raw if r.topic.endswith(".dlq") and e.encode() in (r.value or b"")]
    for r in dead:
        verdict.add("dead_lettered", {"topic": r.topic, "headers": {k: v.decode() for k, v in r.headers}})
    verdict.measures["events"] = {
        "acknowledged_for_enterprise": len(acknowledged),
        "audited_for_enterprise": len(rows),
        "by_type": dict(Counter(acknowledged.values())),
        "audit_verification": verification,
    }


SEATS_SETTLE_S = 30.0
"""How long the policy may take to count the last checkins' seats back: its consumer can be
behind the audit log's (a fault near the end restarts or rebuilds it)."""


async def _seats_settled(ent: Any, e: str) -> dict[str, Any]:
    """The policy's seat counts, read until none is in use or SEATS_SETTLE_S passed."""
    deadline = time.monotonic() + SEATS_SETTLE_S
    while True:
        seats = await ent.call("GET", f"/policy/e/{e}/seats")
        if not (seats["sso"]["in_use"] or seats["apa"]["in_use"]) or time.monotonic() > deadline:
            return seats
        await asyncio.sleep(0.5)


async def _seat_history(policy_redis_url: str | None, e: str, probe: TopicProbe) -> list[dict[str, Any]]:
    """For each user the policy still counts a seat for: the count, the sessions it tracks for
    them, and the events of their sessions on the broker in order (to find the path that kept it)."""
    if policy_redis_url is None:
        return []
    client = create_redis(policy_redis_url)
    try:
        held: list[dict[str, Any]] = []
        for kind in ("seats", "apa-seats"):
            for user, count in (await client.hgetall(f"policy:{{{e}}}:{kind}")).items():
                tracked = sorted(await client.smembers(f"policy:{{{e}}}:user-sessions:{user}"))
                records = await client.hmget(f"policy:{{{e}}}:sessions", tracked) if tracked else []
                closed = [bool(await client.exists(f"policy:{{{e}}}:closed:{d}")) for d in tracked]
                held.append({
                    "kind": kind, "user_id": user, "count": count,
                    "tracked": [{"device_session_id": d, "record": r, "closed": c}
                                for d, r, c in zip(tracked, records, closed, strict=True)],
                    "events": _events_of(probe, e, user),
                })  # fmt: skip
        return held
    finally:
        await client.aclose()


def _events_of(probe: TopicProbe, e: str, user_id: str) -> list[dict[str, Any]]:
    """The device-session and entitlement events of one user's sessions, as the probe saw them."""
    sessions = {
        ev.payload.device_session_id
        for ev in probe.events
        if ev.enterprise_id == e and getattr(ev.payload, "user_id", None) == user_id
        and getattr(ev.payload, "device_session_id", None)
    }  # fmt: skip
    return [
        {"type": ev.type, "device_session_id": ev.payload.device_session_id, "event_id": ev.event_id,
         "occurred_at": ev.occurred_at.isoformat(), "version": getattr(ev.payload, "version", None)}
        for ev in probe.events
        if ev.enterprise_id == e and getattr(ev.payload, "device_session_id", None) in sessions
    ]  # fmt: skip
