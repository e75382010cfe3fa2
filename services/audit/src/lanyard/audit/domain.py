"""The audit service's domain: pure rules, no I/O.

- How an event becomes an audit entry (the columns it is found by are derived from its JSON).
- The hash chain: each record's hash covers its seq, the previous record's hash, the event JSON in
  canonical form and where it was read from (topic, partition, offset); verification recomputes it.
- Gaps: a jump in a device session's `sequence`, or in the offsets of a delete-policy topic.
- The signed checkpoint that stands in for pruned records.
- "Who had access to app X on device Y at time T", derived from session and entitlement records.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from json.encoder import encode_basestring as _json_string
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from lanyard.contracts import topics

GENESIS_HASH = "0" * 64
"""The prev_hash of the first record ever written."""

ADMIN_TOPICS = frozenset({topics.DIRECTORY.name, topics.APP_PROFILES.name, topics.POLICY_CONFIG.name})
"""Topics whose events are configuration changes made by an admin (the record's `actor`)."""

CATEGORIES: Mapping[str, frozenset[str]] = {
    "admin": ADMIN_TOPICS,
    "device_session": frozenset({topics.DEVICE_SESSIONS.name}),
    "entitlement": frozenset({topics.ENTITLEMENTS.name}),
    "oidc": frozenset({topics.OIDC_EVENTS.name}),
}

SUBJECT_FIELDS = ("user_id", "device_id", "device_session_id", "client_id")

CHECKED_OUT = "session.device_checked_out.v1"
CHECKED_IN = "session.device_checked_in.v1"
LOCKED = "session.device_locked.v1"
FACE_VERIFIED = "session.face_verified.v1"
GRANTED = "entitlement.granted.v1"
REVOKED = "entitlement.revoked.v1"
DENIED = "entitlement.denied.v1"
ACCESS_TYPES = (CHECKED_OUT, CHECKED_IN, LOCKED, FACE_VERIFIED, GRANTED, REVOKED, DENIED)
"""The record types "who had access" is derived from."""


# ------------------------------------------------------------------------------- canonical forms


# The encoder `json.dumps` would build on every call with these arguments, built once: same class,
# same options, so the same text (it keeps no state between calls, so threads may share it).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_json(value: Any) -> str:
    """One text per JSON value: sorted keys, no whitespace, UTF-8 (not \\u escapes)."""
    return _CANONICAL.encode(value)


def format_time(moment: datetime) -> str:
    """A fixed-width UTC timestamp, so text order in the store is time order."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    if moment.year < 1000:
        # strftime's %Y is not zero-padded before year 1000 (glibc) and isoformat's year always is:
        # those years keep the text strftime wrote.
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # strftime("%Y-%m-%dT%H:%M:%S.%fZ")'s text (the offset of a UTC time is +00:00), at a lower cost:
    # every consumed event's time goes through here.
    return moment.isoformat(timespec="microseconds")[:-6] + "Z"


def parse_time(text: str) -> datetime:
    """Parse an ISO 8601 time; a time without offset is taken as UTC."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# ------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Position:
    """Where a record was read: Kafka topic, partition and offset."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Entry:
    """An event ready to be appended: its JSON and the columns derived from it."""

    event_id: str
    type: str
    enterprise_id: str
    occurred_at: str
    producer: str
    actor: str | None
    user_id: str | None
    device_id: str | None
    device_session_id: str | None
    client_id: str | None
    clients: tuple[str, ...]
    sequence: int | None
    position: Position
    event_json: str

    @property
    def is_admin_action(self) -> bool:
        """A configuration change (directory, app profiles, policy config)."""
        return self.position.topic in ADMIN_TOPICS


@dataclass(frozen=True)
class AuditRecord:
    """An appended entry: its place in the chain and the hashes that seal it."""

    seq: int
    entry: Entry
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        """The record as the query API and the JSON Lines export show it."""
        e = self.entry
        return {
            "seq": self.seq,
            "event_id": e.event_id,
            "type": e.type,
            "enterprise_id": e.enterprise_id,
            "occurred_at": e.occurred_at,
            "producer": e.producer,
            "actor": e.actor,
            "admin_action": e.is_admin_action,
            "user_id": e.user_id,
            "device_id": e.device_id,
            "device_session_id": e.device_session_id,
            "client_id": e.client_id,
            "topic": e.position.topic,
            "partition": e.position.partition,
            "offset": e.position.offset,
            "event": json.loads(e.event_json),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def entry_from_json(document: Mapping[str, Any], position: Position) -> Entry:
    """Derive an entry from an event's JSON document (the wire form, unknown fields kept).

    Subject ids come from the envelope's `subject`, else from the payload field of the same name,
    so an event is found by user, device, session or app even when its producer left `subject` empty.
    `clients` adds every app the event names (an entitlement's `apps`, a revoked session's `clients`).
    """
    subject = document.get("subject") or {}
    payload = document.get("payload") or {}
    ids = {name: _text(subject.get(name)) or _text(payload.get(name)) for name in SUBJECT_FIELDS}
    clients = {c for c in (ids["client_id"],) if c}
    for many in ("apps", "clients"):
        values = payload.get(many)
        if isinstance(values, list | tuple):
            clients.update(v for v in values if isinstance(v, str) and v)
    sequence = payload.get("sequence")
    if not (isinstance(sequence, int) and not isinstance(sequence, bool) and ids["device_session_id"]):
        sequence = None
    return Entry(
        event_id=str(document["event_id"]),
        type=str(document["type"]),
        enterprise_id=str(document["enterprise_id"]),
        occurred_at=format_time(parse_time(str(document["occurred_at"]))),
        producer=str(document.get("producer") or ""),
        actor=_text(document.get("actor")),
        user_id=ids["user_id"],
        device_id=ids["device_id"],
        device_session_id=ids["device_session_id"],
        client_id=ids["client_id"],
        clients=tuple(sorted(clients)),
        sequence=sequence,
        position=position,
        event_json=canonical_json(document),
    )


def chain_hash(seq: int, prev_hash: str, event_json: str, position: Position) -> str:
    """SHA-256 (hex) over the canonical JSON array [seq, prev_hash, event, topic, partition, offset].

    The event is re-canonicalised here, so the hash depends on the event's content only, not on
    how its text happens to be spelled in the store.
    """
    event = json.loads(event_json)
    material = canonical_json([seq, prev_hash, event, position.topic, position.partition, position.offset])
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def seal(entry: Entry, seq: int, prev_hash: str) -> AuditRecord:
    """Give an entry its place in the chain.

    The entry's `event_json` must be canonical JSON text of a JSON document, as `entry_from_json`
    makes it (its documents come from parsed JSON or a model's JSON dump, whose keys are strings):
    such text is its own canonical form, so it goes into the hash material as it is, and the hash
    is the one `chain_hash` recomputes from the stored text (unit-tested over generated documents).
    """
    material = _sealing_material(seq, prev_hash, entry.event_json, entry.position)
    return AuditRecord(seq=seq, entry=entry, prev_hash=prev_hash, hash=hashlib.sha256(material).hexdigest())


def _sealing_material(seq: int, prev_hash: str, event_json: str, pos: Position) -> bytes:
    """canonical_json([seq, prev_hash, event, topic, partition, offset]) with the event's canonical
    text spliced in as it is: a list's items are joined by "," alone, so "[" + the items' texts
    joined by "," + "]" is the encoder's output."""
    # `+` rather than an f-string: an event_json that is not text fails here, as json.loads did.
    event = "," + event_json + ","
    scalars = (type(seq), type(prev_hash), type(pos.topic), type(pos.partition), type(pos.offset))
    if scalars == (int, str, str, int, int):
        # The encoder writes an int as its repr and a str with encode_basestring; doing the same
        # for these five small values spares two encoder set-ups per record.
        text = f"[{seq},{_json_string(prev_hash)}{event}{_json_string(pos.topic)},{pos.partition},{pos.offset}]"
        return text.encode("utf-8")
    head = _CANONICAL.encode([seq, prev_hash])
    tail = _CANONICAL.encode([pos.topic, pos.partition, pos.offset])
    return (head[:-1] + event + tail[1:]).encode("utf-8")


# ---------------------------------------------------------------------------------------- gaps


@dataclass(frozen=True)
class SequenceGap:
    """Transitions of one device session that never reached the audit log."""

    enterprise_id: str
    device_session_id: str
    first_missing: int
    last_missing: int
    detected_at_seq: int


@dataclass(frozen=True)
class OffsetGap:
    """Offsets of a delete-policy topic partition the audit service never saw."""

    topic: str
    partition: int
    first_missing: int
    last_missing: int
    detected_at_seq: int


def sequence_gap(last_sequence: int | None, sequence: int) -> tuple[int, int] | None:
    """The missing sequence numbers before `sequence`, if any (sessions start at 1)."""
    expected = (last_sequence or 0) + 1
    return (expected, sequence - 1) if sequence > expected else None


def offset_gap(topic: str, last_offset: int | None, offset: int) -> tuple[int, int] | None:
    """The offsets skipped before `offset` on a delete-policy topic, if any.

    Compacted topics legitimately skip offsets (the cleaner removed superseded keys), and the
    first offset seen in a partition may follow records the broker's retention already removed,
    so neither is flagged.
    """
    declared = topics.BY_NAME.get(topic)
    if declared is None or declared.cleanup != "delete" or last_offset is None:
        return None
    return (last_offset + 1, offset - 1) if offset > last_offset + 1 else None


# ---------------------------------------------------------------------------------- checkpoint


@dataclass(frozen=True)
class Checkpoint:
    """Stands in for pruned records: the last pruned seq and hash, signed with Ed25519.

    An asymmetric signature, so whoever verifies the log (an external auditor, a SIEM) needs only
    the public key and cannot forge a checkpoint that would hide pruned-and-rewritten history.
    """

    seq: int
    hash: str
    pruned_before: str
    created_at: str
    signature: str = ""

    def message(self) -> bytes:
        """The bytes the signature covers."""
        body = {"seq": self.seq, "hash": self.hash, "pruned_before": self.pruned_before, "created_at": self.created_at}
        return canonical_json(body).encode("utf-8")

    def signed(self, key: Ed25519PrivateKey) -> Checkpoint:
        """This checkpoint with its signature (base64url, no padding)."""
        return replace(self, signature=base64.urlsafe_b64encode(key.sign(self.message())).rstrip(b"=").decode())

    def signature_valid(self, key: Ed25519PublicKey) -> bool:
        """True when the signature is the key's over this checkpoint."""
        try:
            key.verify(base64.urlsafe_b64decode(self.signature + "=" * (-len(self.signature) % 4)), self.message())
        except (InvalidSignature, ValueError):
            return False
        return True


# -------------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class StoredRecord:
    """A record as read back from the store: stored columns, not trusted until verified."""

    record: AuditRecord
    clients: tuple[str, ...]


@dataclass(frozen=True)
class Verdict:
    """Outcome of verifying the chain."""

    ok: bool
    count: int
    first_seq: int | None = None
    last_seq: int | None = None
    broken_seq: int | None = None
    broken_event_id: str | None = None
    reason: str = ""


def verify_chain(
    records: Iterable[StoredRecord],
    *,
    checkpoint: Checkpoint | None,
    key: Ed25519PublicKey | None,
    head: tuple[int, str] | None = None,
) -> Verdict:
    """Recompute the chain from the checkpoint (or genesis) and name the first broken record.

    A record is broken when its seq is not the next one, its prev_hash is not the previous hash,
    its hash does not match its content, or a column it is found by (type, enterprise, subject ids,
    apps, time, topic...) disagrees with its event JSON. `head`, the store's own note of the last
    record, catches a chain cut short at the end.
    """
    expected_seq, prev = 1, GENESIS_HASH
    if checkpoint is not None:
        if key is None:
            return Verdict(False, 0, reason="checkpoint present but no checkpoint public key configured")
        if not checkpoint.signature_valid(key):
            return Verdict(False, 0, broken_seq=checkpoint.seq, reason="checkpoint signature invalid")
        expected_seq, prev = checkpoint.seq + 1, checkpoint.hash
    count, first = 0, None
    for stored in records:
        rec = stored.record
        reason = _broken(stored, expected_seq, prev)
        if reason:
            return Verdict(False, count, first, expected_seq - 1, rec.seq, rec.entry.event_id, reason)
        first = first or rec.seq
        count += 1
        expected_seq, prev = rec.seq + 1, rec.hash
    last = expected_seq - 1
    if head is not None and head != (last, prev):
        return Verdict(False, count, first, last, head[0], None, "chain head does not match the last record")
    return Verdict(True, count, first, last if count else None)


def _broken(stored: StoredRecord, expected_seq: int, prev: str) -> str:
    rec = stored.record
    if rec.seq != expected_seq:
        return f"seq {rec.seq} where {expected_seq} was expected (a record is missing)"
    if rec.prev_hash != prev:
        return "prev_hash does not match the previous record's hash"
    try:
        document = json.loads(rec.entry.event_json)
        derived = entry_from_json(document, rec.entry.position)
    except (ValueError, KeyError, TypeError):
        return "event JSON unreadable"
    if chain_hash(rec.seq, rec.prev_hash, rec.entry.event_json, rec.entry.position) != rec.hash:
        return "hash does not match the record's content"
    if replace(derived, event_json=rec.entry.event_json) != rec.entry or derived.clients != stored.clients:
        return "indexed columns disagree with the event JSON"
    return ""


# ------------------------------------------------------------------------------------- access


@dataclass(frozen=True)
class Access:
    """One user's access to an app on a device, with the records that prove it."""

    user_id: str
    device_session_id: str
    device_id: str
    client_id: str
    start: str
    end: str | None
    locked_at_time: bool
    evidence: tuple[int, ...]
    ended_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The API's JSON form."""
        return {
            "user_id": self.user_id,
            "device_session_id": self.device_session_id,
            "device_id": self.device_id,
            "client_id": self.client_id,
            "interval": {"start": self.start, "end": self.end},
            "ended_by": self.ended_by,
            "locked_at_time": self.locked_at_time,
            "evidence_seqs": list(self.evidence),
        }


@dataclass
class _Session:
    device_session_id: str
    user_id: str
    device_id: str
    checkout: AuditRecord | None = None
    checkin: AuditRecord | None = None
    events: list[AuditRecord] = field(default_factory=list)


def who_had_access(records: Iterable[AuditRecord], *, device_id: str, client_id: str, at: str) -> list[Access]:
    """The users who had access to `client_id` on `device_id` at time `at` (format_time form).

    A user had access when their device session on the device was checked out at or before `at`
    and not checked in by then, and the latest entitlement of that session at `at` was a grant
    naming the app (no later revocation or denial). The interval is the stretch of time around
    `at` during which that grant stood; `locked_at_time` tells whether the device was locked then
    (a lock not yet followed by a face verification), when SSO needed a fresh face verification.
    """
    sessions: dict[str, _Session] = {}
    for rec in sorted(records, key=lambda r: r.seq):
        e = rec.entry
        if e.device_id != device_id or not e.device_session_id or e.type not in ACCESS_TYPES:
            continue
        s = sessions.setdefault(e.device_session_id, _Session(e.device_session_id, e.user_id or "", device_id))
        s.events.append(rec)
        if e.type == CHECKED_OUT and s.checkout is None:
            s.checkout = rec
        elif e.type == CHECKED_IN and s.checkin is None:
            s.checkin = rec
    found = [_access_of(s, client_id, at) for s in sessions.values()]
    return sorted((a for a in found if a), key=lambda a: (a.start, a.device_session_id))


def _access_of(s: _Session, client_id: str, at: str) -> Access | None:
    if s.checkout is None or s.checkout.entry.occurred_at > at:
        return None
    if s.checkin is not None and s.checkin.entry.occurred_at <= at:
        return None
    timeline = sorted(s.events, key=lambda r: (r.entry.occurred_at, r.seq))
    grant: AuditRecord | None = None
    locked: AuditRecord | None = None
    unlocked: AuditRecord | None = None
    for rec in (r for r in timeline if r.entry.occurred_at <= at):
        kind = rec.entry.type
        if kind == GRANTED:
            grant = rec if client_id in rec.entry.clients else None
        elif kind in (REVOKED, DENIED):
            grant = None
        elif kind == LOCKED:
            locked, unlocked = rec, None
        elif kind == FACE_VERIFIED and locked is not None:
            unlocked = rec
    if grant is None:
        return None
    # The grant stands until the first later record that ends it (or changes it to exclude the app).
    end_rec = next(
        (
            r
            for r in timeline
            if r.entry.occurred_at > at
            and (
                r.entry.type in (REVOKED, DENIED, CHECKED_IN)
                or (r.entry.type == GRANTED and client_id not in r.entry.clients)
            )
        ),
        None,
    )
    evidence = [s.checkout.seq, grant.seq]
    evidence += [r.seq for r in (locked, unlocked, end_rec) if r is not None]
    start = max(s.checkout.entry.occurred_at, grant.entry.occurred_at)
    return Access(
        user_id=s.checkout.entry.user_id or s.user_id,
        device_session_id=s.device_session_id,
        device_id=s.device_id,
        client_id=client_id,
        start=start,
        end=end_rec.entry.occurred_at if end_rec else None,
        locked_at_time=locked is not None and unlocked is None,
        evidence=tuple(sorted(set(evidence))),
        ended_by=end_rec.entry.type if end_rec else None,
    )
