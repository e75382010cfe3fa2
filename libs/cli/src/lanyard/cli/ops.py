"""`lanyard ops …`: operator tools on the broker itself (Kafka, not the HTTP APIs).

`dlq-redrive TOPIC.dlq` sends dead-lettered records back to the topic they came from, once the
cause is fixed (a handler bug shipped, a schema widened). The re-drive reads the dead-letter topic
as its own consumer group (`lanyard-dlq-redrive`), publishes each record's exact bytes and key
to its source topic with acks=all and idempotence, and commits after the broker acknowledged
it: run it twice and the second run finds nothing new; stop it halfway and it resumes where it
stopped. Every consumer group of the source topic then sees the record again; handlers are
idempotent (DESIGN §4), so groups that had handled it change nothing. The dead-letter headers
are dropped and `lanyard-redriven-from` names the dead-letter record.
"""

from __future__ import annotations

import time
from typing import Any

import click
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console

from lanyard.cli.output import Out, Refused, json_option, rows, runs
from lanyard.contracts import BY_NAME
from lanyard.runtime.consumer import DLQ_GROUP, DLQ_REASON, DLQ_SOURCE

REDRIVE_GROUP = "lanyard-dlq-redrive"
REDRIVEN_FROM = "lanyard-redriven-from"


@click.group()
def ops() -> None:
    """Operator tools on the Kafka broker."""


async def redrive(
    bootstrap: str,
    dlq: str,
    *,
    dry_run: bool = False,
    only_group: str | None = None,
    idle_s: float = 2.0,
    group_id: str = REDRIVE_GROUP,
) -> list[dict[str, Any]]:
    """Re-drive every record of `dlq` not re-driven before (by `group_id`); returns what was (or
    would be) sent. It stops once the topic has been idle for `idle_s`."""
    source = dlq.removesuffix(".dlq")
    if not dlq.endswith(".dlq") or dlq not in BY_NAME or source not in BY_NAME:
        raise Refused("unknown_topic", f"{dlq} is not a Lanyard dead-letter topic (<topic>.dlq)")
    consumer = AIOKafkaConsumer(
        dlq,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    sent: list[dict[str, Any]] = []
    await consumer.start()
    await producer.start()
    try:
        idle_until = time.monotonic() + idle_s
        while time.monotonic() < idle_until:
            batch = await consumer.getmany(timeout_ms=200, max_records=200)
            for tp, records in batch.items():
                for record in records:
                    headers = dict((k, v) for k, v in record.headers)
                    group = headers.get(DLQ_GROUP, b"").decode(errors="replace")
                    item = {
                        "dlq_offset": f"{tp.partition}:{record.offset}",
                        "source": headers.get(DLQ_SOURCE, b"").decode(errors="replace"),
                        "group": group,
                        "reason": headers.get(DLQ_REASON, b"").decode(errors="replace"),
                        "key": (record.key or b"").decode(errors="replace"),
                        "redriven": False,
                    }
                    if not dry_run and (only_group is None or group == only_group):
                        kept = [(k, v) for k, v in record.headers if k not in (DLQ_REASON, DLQ_SOURCE, DLQ_GROUP)]
                        kept.append((REDRIVEN_FROM, f"{dlq}:{tp.partition}:{record.offset}".encode()))
                        await (await producer.send(source, record.value, key=record.key, headers=kept))
                        item["redriven"] = True
                    sent.append(item)
                if records and not dry_run:
                    # After the acks: a re-drive stopped here resumes after the last record sent.
                    await consumer.commit({tp: records[-1].offset + 1})
            if batch:
                idle_until = time.monotonic() + idle_s
    finally:
        await producer.stop()
        await consumer.stop()
    return sent


@ops.command(name="dlq-redrive")
@click.argument("dlq_topic")
@click.option("--bootstrap", envvar="KAFKA_BOOTSTRAP_SERVERS", default="127.0.0.1:29092", show_default=True)
@click.option("--dry-run", is_flag=True, help="List what would be re-driven; commit nothing.")
@click.option(
    "--only-group", help="Re-drive only records that this consumer group dead-lettered (others are skipped for good)."
)
@json_option
@runs
async def dlq_redrive(out: Out, dlq_topic: str, bootstrap: str, dry_run: bool, only_group: str | None) -> None:
    """Send the records of DLQ_TOPIC (e.g. lanyard.directory.v1.dlq) back to their source topic."""
    items = await redrive(bootstrap, dlq_topic, dry_run=dry_run, only_group=only_group)
    done = sum(1 for i in items if i["redriven"])

    def human(c: Console) -> None:
        if items:
            c.print(rows(items, ["dlq_offset", "source", "group", "reason", "redriven"], title=dlq_topic))
        verb = "would re-drive" if dry_run else "re-drove"
        c.print(f"{verb} {len(items) if dry_run else done} record(s) to {dlq_topic.removesuffix('.dlq')}")

    out.emit({"topic": dlq_topic, "redriven": done, "records": items}, human)
