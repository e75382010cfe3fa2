"""The AsyncAPI 3.0 document of Lanyard's Kafka topics, generated from the contracts.

One channel per topic of the registry (address = the topic name; Kafka bindings carry the
partitions, cleanup policy and retention) and one per dead-letter topic; one message per event
type (payload = the event's JSON Schema, the `lanyard-*` headers, the record key as a Kafka
binding, the golden sample as its example); one `send` operation per producing service.

`python -m lanyard.contracts.asyncapi write FILE [GOLDEN_DIR]` writes it; `check` compares it
with FILE and exits 1 on drift (the test suite runs the same comparison).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from lanyard.contracts.envelope import CORRELATION_HEADER, TYPE_HEADER
from lanyard.contracts.events import EVENT_TYPES
from lanyard.contracts.topics import TOPICS, Topic

KAFKA_BINDING = "0.5.0"
DLQ_HEADERS = {
    "lanyard-dlq-reason": "why the consumer gave up on the record (decode error, handler refusal)",
    "lanyard-dlq-source": "topic:partition:offset of the original record",
    "lanyard-dlq-group": "the consumer group that dead-lettered it",
}


def _channel_id(topic: Topic) -> str:
    return topic.name.removeprefix("lanyard.").replace(".", "-")


def _hoist(schema: dict[str, Any], shared: dict[str, Any]) -> dict[str, Any]:
    """Move a pydantic schema's `$defs` into components/schemas and point its refs there (a ref
    inside an embedded schema resolves against the document root)."""
    defs = schema.pop("$defs", {})

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: (v.replace("#/$defs/", "#/components/schemas/") if k == "$ref" else rewrite(v))
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    for name, definition in defs.items():
        definition = rewrite(definition)
        if name in shared and shared[name] != definition:
            raise ValueError(f"two different schemas are both named {name}")
        shared[name] = definition
    return rewrite(schema)


def document(golden_dir: Path | None = None) -> dict[str, Any]:
    """The AsyncAPI document (with the golden samples as examples when their folder is given)."""
    schemas: dict[str, Any] = {
        "Headers": {
            "type": "object",
            "properties": {
                TYPE_HEADER: {"type": "string", "description": "the event type with its version"},
                CORRELATION_HEADER: {"type": "string", "description": "the request or flow this event belongs to"},
            },
            "required": [TYPE_HEADER],
        },
        "DeadLetterHeaders": {
            "type": "object",
            "description": "the original record's headers, plus why and where it was dead-lettered",
            "properties": {
                TYPE_HEADER: {"type": "string"},
                CORRELATION_HEADER: {"type": "string"},
                **{name: {"type": "string", "description": text} for name, text in DLQ_HEADERS.items()},
            },
            "required": list(DLQ_HEADERS),
        },
    }
    messages: dict[str, Any] = {}
    by_topic: dict[str, list[str]] = {t.name: [] for t in TOPICS}
    for cls in EVENT_TYPES:
        kind = cls.model_fields["type"].default
        message: dict[str, Any] = {
            "name": kind,
            "title": cls.__name__,
            "summary": (cls.__doc__ or cls.__name__).strip().splitlines()[0],
            "contentType": "application/json",
            "headers": {"$ref": "#/components/schemas/Headers"},
            "payload": _hoist(cls.model_json_schema(), schemas),
            "bindings": {
                "kafka": {
                    "key": {
                        "type": "string",
                        "description": f"<enterprise_id>:<{cls.key_field}> (the subject's, else the payload's)",
                    },
                    "bindingVersion": KAFKA_BINDING,
                }
            },
        }
        golden = golden_dir / f"{kind}.json" if golden_dir else None
        if golden is not None and golden.exists():
            message["examples"] = [
                {"name": "golden", "headers": {TYPE_HEADER: kind}, "payload": json.loads(golden.read_text())}
            ]
        messages[kind] = message
        by_topic[cls.topic.name].append(kind)

    messages["dead-letter"] = {
        "name": "dead-letter",
        "title": "DeadLetter",
        "summary": "A record some consumer could not process, as it was, with the reason in its headers",
        "description": "The value and key are the original record's, byte for byte (any message of the source "
        "channel, or bytes that did not decode); `lanyard ops dlq-redrive` sends it back to its source topic.",
        "contentType": "application/json",
        "headers": {"$ref": "#/components/schemas/DeadLetterHeaders"},
        "payload": {"description": "the original record's value"},
    }
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic in TOPICS:
        cid = _channel_id(topic)
        channels[cid] = _channel(topic, {k: {"$ref": f"#/components/messages/{k}"} for k in by_topic[topic.name]})
        channels[_channel_id(topic.dlq)] = _channel(
            topic.dlq, {"dead-letter": {"$ref": "#/components/messages/dead-letter"}}
        )
        operations[f"{topic.producer}-sends-{cid}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{cid}"},
            "summary": f"{topic.producer} publishes to {topic.name} (acks=all, idempotent)",
            "messages": [{"$ref": f"#/channels/{cid}/messages/{k}"} for k in by_topic[topic.name]],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Lanyard events",
            "version": "1",
            "description": (
                "Every Kafka topic Lanyard uses and every event on it, generated from libs/contracts. "
                "Values are UTF-8 JSON envelopes (event_id, type, occurred_at, enterprise_id, producer, "
                "correlation_id, actor, subject, payload); changes are additive only and readers ignore "
                "unknown fields. A record a consumer cannot process goes to <topic>.dlq."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {"host": "127.0.0.1:29092", "protocol": "kafka", "description": "the broker of `make run`"}
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": dict(sorted(schemas.items()))},
    }


def _channel(topic: Topic, messages: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {"cleanup.policy": [topic.cleanup]}
    if topic.retention_ms is not None:
        config["retention.ms"] = topic.retention_ms
    return {
        "address": topic.name,
        "description": f"key: {topic.key}; {topic.partitions} partition(s); {topic.cleanup}; "
        f"producer: {topic.producer}",
        "messages": messages,
        "bindings": {
            "kafka": {
                "topic": topic.name,
                "partitions": topic.partitions,
                "topicConfiguration": config,
                "bindingVersion": KAFKA_BINDING,
            }
        },
    }


def render(golden_dir: Path | None = None) -> str:
    """The document as the checked-in file holds it."""
    return json.dumps(document(golden_dir), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    """CLI: `write FILE [GOLDEN_DIR]` or `check FILE [GOLDEN_DIR]`."""
    if len(argv) not in (2, 3) or argv[0] not in ("write", "check"):
        print("usage: python -m lanyard.contracts.asyncapi write|check FILE [GOLDEN_DIR]", file=sys.stderr)
        return 2
    path = Path(argv[1])
    text = render(Path(argv[2]) if len(argv) == 3 else None)
    if argv[0] == "write":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return 0
    if not path.exists() or path.read_text() != text:
        print(f"{path} is out of date: run `make api-docs`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
