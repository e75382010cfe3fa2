"""The fast subset of the soak (issue 17) in `make test`: 24 devices and 200 clinicians churning
through the gateway (≈ 130–210 sessions in 3.5–6 min on two cores) while one fault of each
kind hits the stack — kill -9 of the IdP right after a checkin
is answered, the broker killed and restarted, Redis killed (AOF replay),
the session and the policy services' Redis flushed (each rebuilds from Kafka), the relying party
down, the broker cut off — then the checker: every checked-in session refused by every check, nothing resurrected,
fail closed during the cut, every event audited exactly once, every app told, no seat left.

The stack runs on a broker and a Redis of its own (the faults kill them). `make soak` is the long
run with every fault (`python -m lanyard.harness.soak`)."""

from __future__ import annotations

import json

import pytest

from lanyard.harness.soak.run import Plan, soak

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

FAST = Plan(
    minutes=0.5,
    workers=24,
    people=200,
    faults=[
        "kill:idp-after-checkin",
        "kafka-kill",
        "redis-kill",
        "redis-flush:session",
        "redis-flush:policy",
        "rp-down",
        "broker-cut",
    ],
    rp_down_s=8.0,
    cut_s=10.0,
    warmup_s=3.0,
    settle_s=1.0,
    bound_s=150.0,
)


@pytest.mark.timeout(900)
async def test_churn_under_one_fault_of_each_kind_loses_no_revocation(tmp_path):
    outcome = await soak(FAST, tmp_path)
    report = json.dumps(outcome, indent=1)
    assert not [f for f in outcome["faults"] if "not_recovered" in f], report
    assert outcome["verdict"]["ok"], report
    # The churn keeps going until the last fault recovered; on a slow machine fewer cycles fit.
    assert outcome["verdict"]["sessions"]["checked_in"] >= 100, report
