"""Changes to events are additive only, checked against the exported schemas in ../schemas."""

import copy
import json
from pathlib import Path

import pytest

from lanyard.contracts.schema import breaking_changes, schemas

EXPORTED = Path(__file__).parents[1] / "schemas"


@pytest.mark.parametrize("kind", sorted(schemas()))
def test_current_models_are_compatible_with_the_exported_schema(kind):
    exported = EXPORTED / f"{kind}.json"
    assert exported.exists(), f"run `make contracts` to export the schema of {kind}"
    assert breaking_changes(json.loads(exported.read_text()), schemas()[kind]) == []


def _granted():
    return schemas()["entitlement.granted.v1"]


def test_removing_a_field_is_breaking():
    new = copy.deepcopy(_granted())
    payload = new["$defs"]["EntitlementGrantedPayload"]
    del payload["properties"]["apps"]
    payload["required"].remove("apps")
    assert breaking_changes(_granted(), new) == ["payload.apps: removed"]


def test_retyping_a_field_is_breaking():
    new = copy.deepcopy(_granted())
    new["$defs"]["EntitlementGrantedPayload"]["properties"]["version"] = {"type": "string"}
    assert breaking_changes(_granted(), new)[0].startswith("payload.version: type changed")


def test_a_new_required_field_is_breaking_but_a_new_optional_one_is_not():
    new = copy.deepcopy(_granted())
    payload = new["$defs"]["EntitlementGrantedPayload"]
    payload["properties"]["colour"] = {"type": "string", "default": "blue"}
    assert breaking_changes(_granted(), new) == []
    payload["required"].append("colour")
    assert breaking_changes(_granted(), new) == ["payload.colour: newly required"]


def test_an_enum_may_gain_members_but_not_lose_them():
    old = schemas()["session.device_checked_in.v1"]
    new = copy.deepcopy(old)
    reason = new["$defs"]["DeviceCheckedInPayload"]["properties"]["reason"]
    reason["enum"] = [*reason["enum"], "meteor"]
    assert breaking_changes(old, new) == []
    reason["enum"] = reason["enum"][1:]
    assert breaking_changes(old, new) != []
