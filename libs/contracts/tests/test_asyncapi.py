"""The AsyncAPI document: every topic and event type is in it, and every reference resolves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lanyard.contracts import EVENT_TYPES, TOPICS, asyncapi

GOLDEN = Path(__file__).parent / "golden"


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [node["$ref"]] if "$ref" in node else [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_topic_and_event_type_has_a_channel_and_a_message():
    doc = asyncapi.document(GOLDEN)
    assert doc["asyncapi"].startswith("3.")
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == {t.name for t in TOPICS} | {t.dlq.name for t in TOPICS}
    kinds = {cls.model_fields["type"].default for cls in EVENT_TYPES}
    assert kinds <= set(doc["components"]["messages"])
    for cls in EVENT_TYPES:
        kind = cls.model_fields["type"].default
        channel = next(c for c in doc["channels"].values() if c["address"] == cls.topic.name)
        assert kind in channel["messages"], kind
        assert doc["components"]["messages"][kind]["examples"][0]["payload"]["type"] == kind


def test_every_reference_resolves():
    doc = asyncapi.document(GOLDEN)
    refs = _refs(doc)
    assert refs
    for ref in refs:
        assert _resolve(doc, ref) is not None, ref


def test_check_reports_drift(tmp_path):
    target = tmp_path / "asyncapi.json"
    assert asyncapi.main(["check", str(target), str(GOLDEN)]) == 1
    assert asyncapi.main(["write", str(target), str(GOLDEN)]) == 0
    assert asyncapi.main(["check", str(target), str(GOLDEN)]) == 0
    target.write_text(target.read_text().replace("Lanyard events", "Someone else's events"))
    assert asyncapi.main(["check", str(target), str(GOLDEN)]) == 1
