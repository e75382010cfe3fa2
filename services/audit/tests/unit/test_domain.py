"""The pure rules: entries, the hash chain and its verification, gaps, checkpoints, access."""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lanyard.audit.domain import (
    GENESIS_HASH,
    Checkpoint,
    Position,
    StoredRecord,
    entry_from_json,
    format_time,
    offset_gap,
    seal,
    sequence_gap,
    verify_chain,
    who_had_access,
)
from lanyard.contracts import Subject
from lanyard.contracts import events as ev
from lanyard.harness.synthetic import generate_day

T0 = datetime(2026, 11, 30, 8, tzinfo=UTC)


def doc(event):
    return json.loads(event.to_json())


def grant(apps, at, version=1, dsid="ds-1", device="dev-1", user="u-1"):
    return ev.EntitlementGranted(
        enterprise_id="e1",
        producer="policy",
        occurred_at=at,
        payload=ev.EntitlementGrantedPayload(
            device_session_id=dsid, device_id=device, user_id=user, version=version, apps=tuple(apps),
            auth_mode="passcode", inactivity_timeout_s=300, max_session_s=3600, face_allowed=False, policy_id="p",
        ),
    )  # fmt: skip


def checkout(at, dsid="ds-1", device="dev-1", user="u-1", sequence=1):
    return ev.DeviceCheckedOut(
        enterprise_id="e1",
        producer="session",
        occurred_at=at,
        payload=ev.DeviceCheckedOutPayload(
            device_session_id=dsid, device_id=device, user_id=user, sequence=sequence, amr=("pwd",),
            checked_out_at=at, device_jkt="j",
        ),
    )  # fmt: skip


def checkin(at, dsid="ds-1", device="dev-1", user="u-1", sequence=2):
    return ev.DeviceCheckedIn(
        enterprise_id="e1",
        producer="session",
        occurred_at=at,
        payload=ev.DeviceCheckedInPayload(
            device_session_id=dsid, device_id=device, user_id=user, sequence=sequence, reason="user"
        ),
    )


def chain(events):
    records, prev = [], GENESIS_HASH
    for i, e in enumerate(events, start=1):
        rec = seal(entry_from_json(doc(e), Position("t", 0, i)), i, prev)
        records.append(rec)
        prev = rec.hash
    return records


def stored(records):
    return [StoredRecord(r, r.entry.clients) for r in records]


def test_entry_takes_subject_ids_from_payload_when_subject_is_empty_and_apps_from_grants():
    entry = entry_from_json(doc(grant(["epic-rover", "vocera"], T0)), Position("lanyard.entitlements.v1", 2, 9))
    assert (entry.user_id, entry.device_id, entry.device_session_id) == ("u-1", "dev-1", "ds-1")
    assert entry.clients == ("epic-rover", "vocera")
    assert entry.occurred_at == "2026-11-30T08:00:00.000000Z"
    assert not entry.is_admin_action


def test_entry_keeps_fields_this_version_does_not_know_and_marks_admin_actions():
    document = doc(
        ev.AppProfileDeleted(
            enterprise_id="e1", producer="idp", actor="admin-7", payload=ev.AppProfileDeletedPayload(client_id="c1")
        )
    )
    document["payload"]["added_later"] = "kept"
    entry = entry_from_json(document, Position("lanyard.app-profiles.v1", 0, 1))
    assert json.loads(entry.event_json)["payload"]["added_later"] == "kept"
    assert entry.actor == "admin-7" and entry.is_admin_action and entry.client_id == "c1"


def test_hash_is_independent_of_key_order_but_covers_content_and_position():
    e = doc(checkout(T0))
    a = entry_from_json(e, Position("t", 0, 1))
    reordered = dict(reversed(list(e.items())))
    b = entry_from_json(reordered, Position("t", 0, 1))
    assert seal(a, 1, GENESIS_HASH).hash == seal(b, 1, GENESIS_HASH).hash
    assert seal(a, 1, GENESIS_HASH).hash != seal(replace(a, position=Position("t", 0, 2)), 1, GENESIS_HASH).hash
    assert seal(a, 1, GENESIS_HASH).hash != seal(a, 2, GENESIS_HASH).hash


def test_verify_passes_an_intact_chain_and_names_the_first_edited_record():
    records = chain(generate_day("e1", devices=1, users=3, shifts=1).events[:50])
    assert verify_chain(stored(records), checkpoint=None, key=None, head=(50, records[-1].hash)).ok
    edited = json.loads(records[20].entry.event_json)
    edited["producer"] = "someone-else"
    records[20] = replace(records[20], entry=replace(records[20].entry, event_json=json.dumps(edited)))
    verdict = verify_chain(stored(records), checkpoint=None, key=None)
    assert not verdict.ok and verdict.broken_seq == 21 and verdict.broken_event_id == records[20].entry.event_id
    assert verdict.count == 20


def test_verify_catches_an_edited_index_column_a_missing_record_and_a_cut_tail():
    records = chain([checkout(T0), grant(["a"], T0), checkin(T0 + timedelta(hours=1))])
    hidden = replace(records[1], entry=replace(records[1].entry, user_id="u-other"))
    assert verify_chain(stored([records[0], hidden, records[2]]), checkpoint=None, key=None).broken_seq == 2
    assert verify_chain(stored([records[0], records[2]]), checkpoint=None, key=None).broken_seq == 3
    cut = verify_chain(stored(records[:2]), checkpoint=None, key=None, head=(3, records[2].hash))
    assert not cut.ok and "head" in cut.reason


KEY, OTHER = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()


def test_checkpoint_signature_covers_every_field():
    cp = Checkpoint(10, "ab" * 32, "2026-11-30T00:00:00.000000Z", "2026-12-01T00:00:00.000000Z").signed(KEY)
    assert cp.signature_valid(KEY.public_key())
    assert not cp.signature_valid(OTHER.public_key())
    assert not replace(cp, seq=11).signature_valid(KEY.public_key())
    assert not replace(cp, hash="cd" * 32).signature_valid(KEY.public_key())
    assert not replace(cp, signature="%%%").signature_valid(KEY.public_key())


def test_verify_starts_at_a_valid_checkpoint_and_refuses_a_forged_one():
    records = chain([checkout(T0), grant(["a"], T0), checkin(T0 + timedelta(hours=1))])
    cp = Checkpoint(1, records[0].hash, "x", "y").signed(KEY)
    assert verify_chain(stored(records[1:]), checkpoint=cp, key=KEY.public_key()).ok
    forged = replace(cp, seq=2)
    assert not verify_chain(stored(records[1:]), checkpoint=forged, key=KEY.public_key()).ok
    assert not verify_chain(stored(records[1:]), checkpoint=cp, key=None).ok
    # A verifier's own key cannot sign: a checkpoint made with any other key is refused.
    assert not verify_chain(stored(records[1:]), checkpoint=cp.signed(OTHER), key=KEY.public_key()).ok


def test_gaps_in_sequences_and_in_delete_topic_offsets_but_not_compacted_ones():
    assert sequence_gap(None, 1) is None
    assert sequence_gap(2, 3) is None
    assert sequence_gap(2, 5) == (3, 4)
    assert sequence_gap(None, 3) == (1, 2)
    assert offset_gap("lanyard.device-sessions.v1", 4, 5) is None
    assert offset_gap("lanyard.device-sessions.v1", 4, 9) == (5, 8)
    assert offset_gap("lanyard.device-sessions.v1", None, 9) is None
    assert offset_gap("lanyard.directory.v1", 4, 90) is None


def test_who_had_access_answers_user_session_interval_and_evidence():
    out1, g1, in1 = T0, T0 + timedelta(seconds=1), T0 + timedelta(hours=2)
    out2 = in1 + timedelta(minutes=5)
    events = [
        checkout(out1),
        grant(["epic-rover", "vocera"], g1),
        checkin(in1),
        checkout(out2, dsid="ds-2", user="u-2"),
        grant(["vocera"], out2, dsid="ds-2", user="u-2"),
    ]
    records = chain(events)
    at = format_time(T0 + timedelta(hours=1))
    [access] = who_had_access(records, device_id="dev-1", client_id="epic-rover", at=at)
    assert (access.user_id, access.device_session_id) == ("u-1", "ds-1")
    assert access.start == format_time(g1) and access.end == format_time(in1)
    assert access.evidence == (1, 2, 3) and access.ended_by == "session.device_checked_in.v1"
    later = format_time(out2 + timedelta(minutes=1))
    assert who_had_access(records, device_id="dev-1", client_id="epic-rover", at=later) == []
    [second] = who_had_access(records, device_id="dev-1", client_id="vocera", at=later)
    assert second.user_id == "u-2" and second.end is None
    assert who_had_access(records, device_id="dev-2", client_id="vocera", at=later) == []
    before_grant = format_time(out1 + timedelta(milliseconds=500))
    assert who_had_access(records, device_id="dev-1", client_id="vocera", at=before_grant) == []


def test_a_revocation_or_a_narrower_grant_ends_access_and_a_lock_is_reported():
    t = T0
    locked = ev.DeviceLocked(
        enterprise_id="e1", producer="session", occurred_at=t + timedelta(minutes=10),
        payload=ev.DeviceLockedPayload(device_session_id="ds-1", device_id="dev-1", user_id="u-1", sequence=2),
    )  # fmt: skip
    narrower = grant(["vocera"], t + timedelta(minutes=20), version=2)
    records = chain([checkout(t), grant(["epic-rover", "vocera"], t), locked, narrower])
    [a] = who_had_access(records, device_id="dev-1", client_id="epic-rover", at=format_time(t + timedelta(minutes=15)))
    assert a.locked_at_time and a.end == format_time(t + timedelta(minutes=20)) and 3 in a.evidence
    assert (
        who_had_access(records, device_id="dev-1", client_id="epic-rover", at=format_time(t + timedelta(minutes=25)))
        == []
    )


def test_subject_ids_in_the_envelope_win():
    e = ev.AuthorizationGranted(
        enterprise_id="e1",
        producer="idp",
        subject=Subject(device_id="dev-9"),
        payload=ev.AuthorizationGrantedPayload(client_id="c", user_id="u", sid="s", via="sso_extension"),
    )
    entry = entry_from_json(doc(e), Position("lanyard.oidc-events.v1", 0, 0))
    assert (entry.device_id, entry.client_id, entry.user_id) == ("dev-9", "c", "u")
