"""Poison on every topic against the real services (issue 17). The runtime's own tests prove the
dead-letter mechanics on a test topic (libs/runtime/tests/integration/test_kafka.py) and the
re-drive command (libs/cli/tests/test_redrive.py); this proves them where it matters: records
that are not JSON, of the wrong shape, oversized, or valid events keyed otherwise than their
event's key (or not at all: a record out of its subject's partition loses its order), published
to each of the six topics the services consume, land in `<topic>.dlq` with the reason and their
exact source position; a record of a type no consumer knows is skipped, not dead-lettered
(consumers are tolerant readers: producers add types first, DESIGN §3); the partition keeps
moving (a valid record published right after the poison, on the same partition, reaches the
audit log); and a checkin whose events sit behind poison on the device's partition still
revokes the session."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from lanyard.contracts import TOPICS, Topic, decode_event, topics
from lanyard.harness.admin import open_enterprise
from lanyard.harness.device import Device, introspect, redeem, refresh
from lanyard.harness.rp import unverified_claims
from lanyard.runtime.consumer import DLQ_GROUP, DLQ_REASON, DLQ_SOURCE
from lanyard.runtime.testing import TopicProbe, eventually

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

GOLDEN = Path(__file__).parents[2] / "libs/contracts/tests/golden"
SENTINEL = {  # per topic: a valid event of a harmless kind (about things that do not exist)
    topics.DIRECTORY.name: "directory.group_deleted.v1",
    topics.APP_PROFILES.name: "app_profile.deleted.v1",
    topics.POLICY_CONFIG.name: "policy.licence_deleted.v1",
    topics.DEVICE_SESSIONS.name: "session.checkout_refused.v1",
    topics.ENTITLEMENTS.name: "entitlement.denied.v1",
    topics.OIDC_EVENTS.name: "oidc.authentication_failed.v1",
}


def sentinel(kind: str, enterprise_id: str, device_id: str | None = None) -> tuple[bytes, bytes, str]:
    """(value, key, event_id) of a golden sample moved into the test's enterprise (and, for a
    device's event, to `device_id`), with the key its producer would give it."""
    event = json.loads((GOLDEN / f"{kind}.json").read_text())
    event.update(event_id=str(uuid.uuid4()), enterprise_id=enterprise_id)
    if device_id is not None:
        event["subject"]["device_id"] = event["payload"]["device_id"] = device_id
    value = json.dumps(event).encode()
    return value, decode_event(value).record_key(), event["event_id"]


def poison(
    topic: Topic, enterprise_id: str, key: bytes, device_id: str | None
) -> dict[str, tuple[bytes, bytes | None]]:
    """What → (value, key) of records no consumer can apply, each sent on the partition of `key`
    but the keyless one: a wrongly keyed record is a valid event of another subject under `key`
    on the device topic (so it sits right ahead of the device's checkin), and a valid event
    under another subject's key elsewhere. A compacted topic's broker refuses a keyless record
    itself, so only the others get one."""
    kind = SENTINEL[topic.name]
    unknown = json.loads((GOLDEN / "session.checkout_refused.v1.json").read_text())
    unknown.update(event_id=str(uuid.uuid4()), enterprise_id=enterprise_id, type="session.device_teleported.v1")
    if device_id is not None:
        wrong_key = (sentinel(kind, enterprise_id, "another-device")[0], key)
    else:
        wrong_key = (sentinel(kind, enterprise_id)[0], f"{enterprise_id}:not-its-subject".encode())
    return {
        "not json": (b"\xff{not json " + enterprise_id.encode(), key),
        "wrong shape": (
            json.dumps({"type": "session.device_checked_in.v1", "enterprise_id": enterprise_id}).encode(),
            key,
        ),
        "oversized": (json.dumps({"enterprise_id": enterprise_id, "x": "0" * 1_000_000}).encode(), key),
        "unknown type": (json.dumps(unknown).encode(), key),
        "wrong key": wrong_key,
    } | ({"no key": (sentinel(kind, enterprise_id, device_id)[0], None)} if topic.cleanup == "delete" else {})


async def test_poison_on_every_topic_is_dead_lettered_the_partition_moves_on_and_checkin_revokes(
    stack, http, kafka_bootstrap, logout_receiver
):
    ent = await open_enterprise(stack.base_url, stack.env, http)
    e = ent.enterprise_id
    app = await ent.add_app(
        name="Charts",
        client_type="confidential",
        redirect_uri="https://charts.example/callback",
        backchannel_logout_uri=logout_receiver.url,
    )
    nurse = await ent.add_user("nurse")
    await ent.make_ready([nurse], [app])
    device = Device(stack.base_url, e, http)
    await ent.enrol_device(device.device_id, device.public_jwk)
    await device.check_out(nurse)
    auth = await eventually(lambda: _code(device, app), 15, what="SSO")
    tokens = await redeem(http, ent.issuer, app, auth)
    sid = unverified_claims(tokens["id_token"])["sid"]

    dlq = await TopicProbe(kafka_bootstrap, *(t.dlq for t in TOPICS)).start()
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True, max_request_size=2 * 2**20
    )
    await producer.start()
    sent: dict[str, tuple[str, str]] = {}  # "topic:partition:offset" → (topic, what)
    sentinels: dict[str, str] = {}  # event_id → topic
    try:
        for topic in TOPICS:
            # On the device topic, about this device: on its partition, ahead of its checkin.
            device_id = device.device_id if topic is topics.DEVICE_SESSIONS else None
            value, key, event_id = sentinel(SENTINEL[topic.name], e, device_id)
            for what, (bad, bad_key) in poison(topic, e, key, device_id).items():
                meta = await producer.send_and_wait(topic.name, bad, key=bad_key)
                sent[f"{topic.name}:{meta.partition}:{meta.offset}"] = (topic.name, what)
            await producer.send_and_wait(topic.name, value, key=key)
            sentinels[event_id] = topic.name
    finally:
        await producer.stop()

    try:
        # Every poison record dead-lettered with its reason (the audit service consumes every
        # topic, so each has at least its copy); the unknown type skipped.
        def copies() -> dict[str, list]:
            found: dict[str, list] = {}
            for r in dlq.raw:
                headers = {k: v.decode() for k, v in r.headers}
                found.setdefault(headers.get(DLQ_SOURCE, ""), []).append(headers)
            return found

        expected = {pos for pos, (_, what) in sent.items() if what != "unknown type"}

        def audit_copied() -> set[str]:
            # Each group dead-letters on its own time: wait for the audit group's copy itself,
            # not for the first group's (another group's copy can come well before).
            return {pos for pos, hs in copies().items() if any(h[DLQ_GROUP].startswith("lanyard-audit") for h in hs)}

        await eventually(lambda: expected <= audit_copied(), 60, 0.2, "every poison record dead-lettered")
        for pos in expected:
            topic, what = sent[pos]
            for headers in copies()[pos]:
                cause = "wrong key" if what in ("wrong key", "no key") else "undecodable"
                assert headers[DLQ_REASON].startswith(cause), (topic, what, headers)
            assert any(h[DLQ_GROUP].startswith("lanyard-audit") for h in copies()[pos]), (topic, what)
        skipped = {pos for pos, (_, what) in sent.items() if what == "unknown type"}
        assert not skipped & set(copies()), "a record of an unknown type is skipped, not dead-lettered"

        # The partitions moved on: the valid record after the poison reached the audit log.
        async def audited() -> bool:
            exported = await ent.raw("GET", f"/audit/e/{e}/export", params={"format": "jsonl"})
            ids = {json.loads(line)["event_id"] for line in exported.text.splitlines() if line.strip()}
            return set(sentinels) <= ids

        await eventually(audited, 60, 0.5, "the record after the poison audited, on every topic")

        # The checkin behind the poison on the device's partition still revokes.
        await device.check_in()
        await eventually(lambda: sid in logout_receiver.sids(), 30, what="the app told")
        assert (await introspect(http, ent.issuer, app, tokens["access_token"]))["active"] is False
        assert (await refresh(http, ent.issuer, app, tokens["refresh_token"])).status_code == 400
    finally:
        await dlq.stop()


async def _code(device: Device, app):
    auth = await device.sso(app)
    return auth if auth.code else None
