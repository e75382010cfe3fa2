"""Reading a topic's history for the rebuild: a plain consumer, no group, nothing committed.

Every partition is assigned, read from its earliest offset and stopped at the end offset taken
when the read started, so a rebuild reads a fixed snapshot while producers go on (or from the
first offset at a given time, for topics of which only recent records matter). Records of
one partition come in order (the device-sessions topic is keyed by device, so one device's
history is ordered); partitions are read one after another. Records that do not decode (a
type this version does not know, a malformed one) are skipped and counted, and so are records
keyed otherwise than their event (`Event.wrong_key`): the live consumer dead-lettered them, so
the rebuild must not apply what the live path refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, TopicPartition

from lanyard.contracts import Event, decode_event
from lanyard.runtime.logging import get_logger

log = get_logger("lanyard.session.rebuild")


class KafkaHistory:
    """`History` over the real broker."""

    def __init__(self, bootstrap_servers: str, fetch_timeout_ms: int = 500) -> None:
        self._bootstrap = bootstrap_servers
        self._fetch_timeout_ms = fetch_timeout_ms
        self.undecodable = 0
        self.wrongly_keyed = 0

    async def read(self, topic: str, since: float | None = None) -> AsyncIterator[Event]:
        """Every record of `topic` up to its end offsets at the start of the read, decoded; with
        `since` (seconds since the epoch), only records from that broker timestamp on."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id="lanyard-session-rebuild",
        )
        await consumer.start()
        try:
            ids = consumer.partitions_for_topic(topic)
            if not ids:
                await consumer._client.force_metadata_update()
                ids = consumer.partitions_for_topic(topic) or set()
            parts = [TopicPartition(topic, p) for p in sorted(ids)]
            if not parts:
                log.warning("rebuild: topic has no partitions", topic=topic)
                return
            ends = await consumer.end_offsets(parts)
            begins = await consumer.beginning_offsets(parts)
            if since is not None:
                found = await consumer.offsets_for_times({tp: int(since * 1000) for tp in parts})
                # No record at or after `since` in a partition: nothing to read there.
                begins = {tp: found[tp].offset if found.get(tp) else ends[tp] for tp in parts}
            consumer.assign(parts)
            for tp in parts:
                if ends[tp] <= begins[tp]:
                    continue
                consumer.seek(tp, begins[tp])
                while await consumer.position(tp) < ends[tp]:
                    batch = await consumer.getmany(tp, timeout_ms=self._fetch_timeout_ms)
                    for record in batch.get(tp, []):
                        if record.offset >= ends[tp]:
                            break
                        try:
                            event = decode_event(record.value)
                        except Exception:
                            self.undecodable += 1
                            continue
                        if event.wrong_key(record.key) is not None:
                            self.wrongly_keyed += 1
                            continue
                        yield event
        finally:
            await consumer.stop()
