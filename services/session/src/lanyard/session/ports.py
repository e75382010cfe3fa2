"""The interfaces the session service's use cases depend on; adapters implement them.

`History` and `ProjectionMarker` (the rebuild from Kafka) are the runtime's, shared with the
policy service, and named here with the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from lanyard.contracts import Event
from lanyard.runtime.proofs import CheckedProof as CheckedProof
from lanyard.runtime.proofs import InvalidProof as _RuntimeInvalidProof
from lanyard.runtime.rebuild import History as History
from lanyard.runtime.rebuild import ProjectionMarker as ProjectionMarker
from lanyard.session.domain import Device, DeviceSession, LockerOptions, OrgSettings, TimerKind


class Clock(Protocol):
    """Wall-clock time in seconds since the epoch; tests inject a fake one."""

    def now(self) -> float: ...


class Publisher(Protocol):
    """Publishes one event and returns only after the broker acknowledged it."""

    async def publish(self, event: Event) -> None: ...


@dataclass(frozen=True)
class Change:
    """What a decision writes: sessions (new or changed) and the events announcing it."""

    sessions: tuple[DeviceSession, ...]
    events: tuple[Event, ...] = ()


Mutation = tuple[str, str, Callable[[DeviceSession], "Change | None"]]
"""One item of `SessionStore.mutate_many`: enterprise id, device session id, the decision."""


@dataclass(frozen=True)
class TimerRef:
    """One timer of one session."""

    enterprise_id: str
    device_session_id: str
    kind: TimerKind


class SessionConflict(Exception):
    """The device already has a live session and the enterprise does not replace it."""

    def __init__(self, device_session_id: str) -> None:
        super().__init__("device already checked out")
        self.device_session_id = device_session_id


class SessionStore(Protocol):
    """The authoritative state: devices, sessions, timers and the event outbox, written atomically.

    Every write of sessions also writes their timers (from `domain.deadlines`) and parks the
    events in the outbox in the same transaction; `outbox_done` removes them once published.
    """

    async def get_device(self, enterprise_id: str, device_id: str) -> Device | None: ...

    async def put_device(self, device: Device, events: Sequence[Event]) -> None: ...

    async def list_devices(self, enterprise_id: str) -> list[Device]: ...

    async def get_session(self, enterprise_id: str, device_session_id: str) -> DeviceSession | None: ...

    async def get_session_marking_proof(
        self, enterprise_id: str, device_session_id: str, replay_key: str, ttl_s: int
    ) -> tuple[DeviceSession | None, bool]:
        """`get_session`, and whether this is the first use of a device proof's `replay_key`
        (remembered for `ttl_s`, where `ProofVerifier.verify` remembers it), in one round trip."""
        ...

    async def current_session_id(self, enterprise_id: str, device_id: str) -> str | None: ...

    async def list_live(self, enterprise_id: str) -> list[DeviceSession]: ...

    async def mutate(
        self,
        enterprise_id: str,
        device_session_id: str,
        decide: Callable[[DeviceSession], Change | None],
        known: DeviceSession | None = None,
    ) -> Change | None:
        """Read the session, decide, write the result atomically (retrying on a concurrent write).

        `known` is the session as the caller read it a moment ago: a store may decide on it and
        write only if the stored record is still that one, saving the read; whatever it does, the
        change written was decided on the stored session, and `decide` may run more than once.

        Returns the change written, or None when the session is unknown (its timers are dropped) or
        `decide` said no change (its timers are rewritten from its state either way, so a claimed
        timer gets its real due time back). Exceptions from `decide` propagate; nothing is written.
        """
        ...

    async def mutate_many(self, items: Sequence[Mutation]) -> list[Change | None]:
        """`mutate` for each (enterprise_id, device_session_id, decide), in order, in one atomic
        write; an item on a session an earlier item changed decides on that change's result.
        Returns each item's change (None as `mutate` would). Exceptions from a `decide`
        propagate; nothing is written."""
        ...

    async def open(
        self, enterprise_id: str, device_id: str, decide: Callable[[DeviceSession | None], Change]
    ) -> Change:
        """Read the device's live session (or None), decide, write atomically; the last session in
        the change becomes the device's current one. `decide` may raise to write nothing."""
        ...

    async def restore(
        self, devices: Sequence[Device], sessions: Sequence[DeviceSession], org_settings: Mapping[str, OrgSettings]
    ) -> int:
        """Write rebuilt records (devices, sessions with their timers and current pointers, org
        settings) where the store holds none; parks no event. Returns how many were written."""
        ...

    async def claim_due_timers(self, now: float, lease_s: float, limit: int) -> list[TimerRef]:
        """Take timers due at `now`; each is handed to one caller only (its due time moves by `lease_s`)."""
        ...

    async def claim_outbox(self, now: float, lease_s: float, limit: int) -> list[Event]:
        """Take events parked longer than the grace period; each to one caller at a time."""
        ...

    async def outbox_done(self, event: Event) -> None: ...

    async def outbox_later(self, events: Sequence[Event], due: float) -> None:
        """Put claimed events back, due at `due`, after a failed publish."""
        ...

    async def pending_events(self, enterprise_id: str, device_id: str) -> list[Event]:
        """Events about this device not yet acknowledged by the broker, oldest first."""
        ...

    async def get_org_settings(self, enterprise_id: str) -> OrgSettings: ...

    async def put_org_settings(self, enterprise_id: str, settings: OrgSettings) -> None: ...

    async def get_locker_options(self, enterprise_id: str) -> LockerOptions: ...

    async def get_view_settings(self, enterprise_id: str) -> tuple[OrgSettings, LockerOptions]:
        """`get_org_settings` and `get_locker_options` in one read (every Locker answer shows both)."""
        ...

    async def put_locker_options(self, enterprise_id: str, options: LockerOptions) -> bool:
        """Keep `options` unless a version at least as high is kept already; True if kept."""
        ...

    async def park(self, events: Sequence[Event]) -> None:
        """Put events that change no session in the outbox (published, then `outbox_done`)."""
        ...

    async def first_use(self, enterprise_id: str, kind: str, value: str, ttl_s: int) -> bool:
        """True the first time (`kind`, `value`) is seen within `ttl_s`: single-use ids."""
        ...

    async def put_challenge(self, enterprise_id: str, challenge: str, device_session_id: str, ttl_s: int) -> None: ...

    async def take_challenge(self, enterprise_id: str, challenge: str) -> str | None:
        """The session a challenge was issued to, consuming it (None if unknown, used or expired)."""
        ...


class AssertionVerifier(Protocol):
    """Verifies IdP-signed JWTs (lanyard.runtime.tokens.TokenVerifier fits)."""

    async def verify(self, token: str, *, enterprise_id: str, audience: str, typ: str) -> dict[str, Any]: ...


# A device proof that is malformed, wrongly signed, stale, replayed or for another key: the
# runtime's, so a `CheckedProof`'s own refusal (`accept`) is the same error as the verifier's.
InvalidProof = _RuntimeInvalidProof


class ProofVerifier(Protocol):
    """Checks a device proof over method and URL against the enrolled key's thumbprint."""

    async def verify(
        self,
        proof: str,
        *,
        enterprise_id: str,
        method: str,
        url: str,
        expected_jkt: str,
        handle: str | None = None,
    ) -> dict[str, Any]:
        """The proof's claims; raises InvalidProof. `handle`: the device session the call is about."""
        ...

    def check(self, proof: str, *, method: str, url: str, handle: str | None = None) -> CheckedProof:
        """What `verify` checks without a store (signature by the key in the proof, time, request):
        the caller accepts it for the enrolled key once its `replay_key` is marked used, in one read with
        the session (`SessionStore.get_session_marking_proof`). Raises InvalidProof."""
        ...


@dataclass(frozen=True)
class FaceResult:
    """What the Locker app's face provider reported, once its signature checked out."""

    challenge: str
    subject: str
    match_score: float
    liveness_score: float
    issued_at: float


class InvalidFaceResult(Exception):
    """A face result whose signature, key or shape is wrong."""


class FaceResultVerifier(Protocol):
    """Verifies a signed face result from the device; the face matching itself is the provider's."""

    def verify(self, result: str, *, expected_jkt: str) -> FaceResult: ...
