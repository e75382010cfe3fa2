"""The wire contract: golden samples keep validating, and every type has one."""

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from lanyard.contracts import BY_TYPE, EVENT_TYPES, UnknownEventType, decode_event
from lanyard.contracts.topics import BY_NAME

GOLDEN = Path(__file__).parent / "golden"


def test_every_event_type_has_a_golden_sample():
    missing = sorted(set(BY_TYPE) - {p.stem for p in GOLDEN.glob("*.json")})
    assert missing == []


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.json")), ids=lambda p: p.stem)
def test_golden_sample_still_decodes_to_its_type(path):
    event = decode_event(path.read_bytes())
    assert event.type == path.stem
    assert type(event) is BY_TYPE[path.stem]


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.json")), ids=lambda p: p.stem)
def test_round_trip_is_lossless(path):
    event = decode_event(path.read_bytes())
    assert decode_event(event.to_json()) == event


def test_unknown_fields_are_ignored_so_producers_can_add_fields():
    sample = json.loads((GOLDEN / "session.device_checked_in.v1.json").read_text())
    sample["added_later"] = 1
    sample["payload"]["also_new"] = "x"
    assert decode_event(json.dumps(sample)).type == "session.device_checked_in.v1"


def test_app_profile_id_token_alg_is_optional_and_round_trips():
    # The golden sample predates the field: an older record decodes to "the IdP's default".
    sample = json.loads((GOLDEN / "app_profile.upserted.v1.json").read_text())
    assert "id_token_signed_response_alg" not in sample["payload"]
    assert decode_event(json.dumps(sample)).payload.id_token_signed_response_alg is None
    sample["payload"]["id_token_signed_response_alg"] = "ES256"
    event = decode_event(json.dumps(sample))
    assert event.payload.id_token_signed_response_alg == "ES256"
    assert decode_event(event.to_json()) == event


def test_unknown_type_is_told_apart_from_malformed_record():
    with pytest.raises(UnknownEventType):
        decode_event(b'{"type": "session.teleported.v9", "enterprise_id": "e"}')
    with pytest.raises(ValidationError):
        decode_event(b'{"type": "session.device_checked_in.v1"}')
    with pytest.raises(ValidationError):
        decode_event(b"not json")


def test_events_are_frozen():
    event = decode_event((GOLDEN / "entitlement.granted.v1.json").read_bytes())
    with pytest.raises(ValidationError):
        event.enterprise_id = "other"  # type: ignore[misc]


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda c: c.__name__)
def test_every_event_names_a_registered_topic(cls):
    assert cls.topic.name in BY_NAME


def test_keys_are_scoped_by_enterprise_and_route_one_device_to_one_partition():
    a = decode_event((GOLDEN / "session.device_checked_out.v1.json").read_bytes())
    b = decode_event((GOLDEN / "session.device_checked_in.v1.json").read_bytes())
    assert a.key() == b.key() == "st-mungos:device_id-1"


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.json")), ids=lambda p: p.stem)
def test_the_key_a_producer_sends_is_the_key_the_consumer_accepts(path):
    event = decode_event(path.read_bytes())
    assert event.record_key() == event.key().encode()
    assert decode_event(event.to_json()).wrong_key(event.record_key()) is None


def test_a_record_keyed_otherwise_or_not_at_all_is_told_why_without_the_key():
    checkin = decode_event((GOLDEN / "session.device_checked_in.v1.json").read_bytes())
    refused = decode_event((GOLDEN / "session.checkout_refused.v1.json").read_bytes())
    assert refused.key() == checkin.key()  # keyed by the device on one topic
    for key in (b"st-mungos:device_id-2", b"device_id-1", b"other:device_id-1", b"", checkin.key().upper().encode()):
        reason = checkin.wrong_key(key)
        assert (
            reason == "wrong key: session.device_checked_in.v1 record is not keyed by its enterprise id and device_id"
        )
    assert checkin.wrong_key(None) == (
        "wrong key: session.device_checked_in.v1 record has no key (expected enterprise id and device_id)"
    )
    failed = decode_event((GOLDEN / "oidc.authentication_failed.v1.json").read_bytes())
    reason = failed.wrong_key(b"x")
    assert reason is not None and failed.payload.username not in reason  # a username is personal data


def test_headers_carry_type_and_correlation_id_for_console_tools():
    event = decode_event((GOLDEN / "oidc.tokens_issued.v1.json").read_bytes())
    assert event.headers() == {"lanyard-type": "oidc.tokens_issued.v1", "lanyard-correlation-id": "corr-1"}
