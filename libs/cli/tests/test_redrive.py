"""`lanyard ops dlq-redrive` on the real broker: a dead-lettered record goes back to its source
topic as it was (key, value, original headers), once; the dead-letter headers stay behind."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from lanyard.cli.ops import REDRIVEN_FROM, redrive
from lanyard.contracts import decode_event, topics
from lanyard.runtime.consumer import DLQ_GROUP, DLQ_REASON, DLQ_SOURCE
from lanyard.runtime.testing import TopicProbe, eventually

pytestmark = pytest.mark.integration

GOLDEN = Path(__file__).parents[2] / "contracts" / "tests" / "golden" / "oidc.tokens_revoked.v1.json"


async def test_redrive_sends_a_dead_letter_back_once(kafka_bootstrap):
    # A valid event of an enterprise nobody knows: harmless to any consumer that reads it later.
    event = json.loads(GOLDEN.read_text())
    event.update(event_id=str(uuid.uuid4()), enterprise_id=f"redrive-{uuid.uuid4().hex[:8]}")
    value = json.dumps(event).encode()
    key = decode_event(value).record_key()  # keyed as its producer would: consumers accept it back
    failing_group = f"test-group-{uuid.uuid4().hex[:8]}"  # only our record carries it
    source, dlq = topics.OIDC_EVENTS, topics.OIDC_EVENTS.dlq
    probe = await TopicProbe(kafka_bootstrap, source).start()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        headers = [
            ("lanyard-type", event["type"].encode()),
            (DLQ_REASON, b"ValueError: handler refused"),
            (DLQ_SOURCE, f"{source.name}:0:42".encode()),
            (DLQ_GROUP, failing_group.encode()),
        ]
        await (await producer.send(dlq.name, value, key=key, headers=headers))
        redrive_group = f"redrive-{uuid.uuid4().hex[:8]}"
        dry = await redrive(kafka_bootstrap, dlq.name, dry_run=True, only_group=failing_group, group_id=redrive_group)
        assert any(i["group"] == failing_group and not i["redriven"] for i in dry)

        sent = await redrive(kafka_bootstrap, dlq.name, only_group=failing_group, group_id=redrive_group, idle_s=1)
        ours = [i for i in sent if i["redriven"]]
        assert len(ours) == 1 and ours[0]["reason"] == "ValueError: handler refused"
        back = await eventually(lambda: [r for r in probe.raw if r.value == value], 10, what="record back at source")
        record = back[0]
        assert record.key == key
        names = dict(record.headers)
        assert names["lanyard-type"] == event["type"].encode()
        assert names[REDRIVEN_FROM].startswith(dlq.name.encode())
        assert not {DLQ_REASON, DLQ_SOURCE, DLQ_GROUP} & set(names)

        again = await redrive(kafka_bootstrap, dlq.name, only_group=failing_group, group_id=redrive_group, idle_s=1)
        assert not [i for i in again if i["redriven"]], "a second re-drive sends nothing again"
    finally:
        await producer.stop()
        await probe.stop()
