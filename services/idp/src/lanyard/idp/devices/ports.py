"""The device part's ports: what it offers the oidc part (`DeviceSessions`, `BackchannelLogouts`),
what it needs from it (`SessionRevoker`) and from storage (`LogoutQueue`).

The directory's ports it uses (`Clients`, `Keys`, `OrgSettingsView`, `Publisher`) come from
`directory.ports`; the records the oidc part needs are re-exported here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from lanyard.idp.devices.domain import (
    ACTIVITY_FIELDS,
    DeviceLogin,
    DeviceSsoError,
    Fact,
    Outcome,
    RevokedSession,
    SessionLocked,
    SessionView,
    TemporarilyUnavailable,
)
from lanyard.idp.directory.ports import Clients, Keys, OrgSettingsView, Publisher


class DeviceSessions(Protocol):
    """The IdP's read model of device sessions and entitlements (lanyard.idp.devices)."""

    async def authenticate(
        self, enterprise_id: str, client_id: str, handle: str, proof: str, method: str, url: str
    ) -> DeviceLogin:
        """Check handle, device proof, session state, grant for the client, org setting and face
        recency (waiting briefly for a grant in flight). Raises DeviceSsoError or
        TemporarilyUnavailable."""
        ...

    async def is_active(
        self, enterprise_id: str, device_session_id: str, view_fields: dict[str, str | None] | None = None
    ) -> bool:
        """True while the device session may keep its tokens (ACTIVE, or LOCKED for already-issued
        access tokens). `view_fields`: the view's `ACTIVITY_FIELDS` (`domain.ACTIVITY_FIELDS`) as
        the caller already read them, else they are read here. Raises TemporarilyUnavailable when
        the read model may be stale."""
        ...

    async def may_refresh(
        self, enterprise_id: str, device_session_id: str, client_id: str, view_fields: dict[str, str] | None = None
    ) -> bool:
        """True when refresh is allowed: ACTIVE (not LOCKED, not CLOSED) and the client is granted.
        `view_fields`: the session view as the caller already read it (in the same round trip as
        its grant), else it is read here. Raises TemporarilyUnavailable when the read model may be
        stale, SessionLocked while only a face verification on the device stands between the
        session and a refresh."""
        ...


AfterRevoked = Callable[[list[RevokedSession]], Awaitable[None]]
"""What a caller does with the sessions a revocation ended (queue their back-channel logouts)."""


class SessionRevoker(Protocol):
    """Implemented by the OIDC side: ends OIDC sessions and every grant and token in them.

    `alongside`, when given, runs with the revoked sessions as soon as the grants are revoked,
    concurrently with the revocation's own announcements (`tokens_revoked`, `session_revoked`),
    so an app's logout does not wait for the broker's acknowledgement of events it does not need.
    The call returns when both are done and raises if either failed (each side is idempotent).

    `first_only`: a device session revoked before (by a call that may not have finished) is left
    alone and None returned — the caller finishes such a revocation with a plain call."""

    async def revoke_device_session(
        self,
        enterprise_id: str,
        device_session_id: str,
        reason: str,
        alongside: AfterRevoked | None = None,
        first_only: bool = False,
    ) -> list[RevokedSession] | None: ...

    async def revoke_sid(
        self, enterprise_id: str, sid: str, reason: str, alongside: AfterRevoked | None = None
    ) -> RevokedSession | None: ...


class BackchannelLogouts(Protocol):
    """A durable queue of back-channel logout deliveries (retries, backoff, outcome events).
    Only clients that registered a back-channel logout URI are queued."""

    async def enqueue(
        self, enterprise_id: str, client_id: str, sid: str, user_id: str, device_session_id: str | None = None
    ) -> None: ...

    async def enqueue_revoked(
        self, enterprise_id: str, sessions: list[RevokedSession], device_session_id: str | None = None
    ) -> None:
        """Queue a logout for every client of every revoked session (the last step of both a
        check-in's and a logout's revocation)."""
        ...


@dataclass(frozen=True)
class Delivery:
    """One claimed delivery."""

    delivery_id: str
    enterprise_id: str
    client_id: str
    uri: str
    sid: str
    user_id: str
    device_session_id: str | None
    created_ms: int
    attempts: int
    claim: str
    outcome: str | None
    status: int | None
    error: str | None
    alg: str | None = None
    """The ID token algorithm the client registered when the delivery was queued (None: none, or
    queued before the field existed); its logout token is signed with it (an RP validates a
    logout token as it validates ID tokens, BCL §2.6, `alg` included)."""


class DeviceStore(Protocol):
    """The device-session read model (`adapters.redis_devices`): one view per session."""

    async def load(self, enterprise_id: str, device_session_id: str) -> SessionView | None: ...

    async def load_marking_proof(
        self, enterprise_id: str, device_session_id: str, replay_key: str, ttl_s: int
    ) -> tuple[SessionView | None, bool]:
        """`load`, and whether this is the first use of a device proof's `replay_key` (remembered
        for `ttl_s`), in one round trip: the view holds the key the proof must be bound to."""
        ...

    async def state(self, enterprise_id: str, device_session_id: str) -> tuple[str | None, bool]:
        """(state, checked out) without reading the whole view: the hot path of introspection."""
        ...

    async def apply(self, enterprise_id: str, device_session_id: str, fact: Fact) -> Outcome:
        """Apply one fact by the pure rules, atomically against concurrent writers."""
        ...

    async def apply_many(self, changes: Sequence[tuple[str, str, Sequence[Fact]]]) -> list[Outcome]:
        """Apply each (enterprise, session)'s facts in order, all sessions in one atomic step."""
        ...

    async def mark_revocation_done(self, enterprise_id: str, device_session_id: str) -> None: ...


class Freshness(Protocol):
    """Whether the device consumer is shown caught up (`adapters.freshness`); fail closed if not."""

    @property
    def fresh(self) -> bool: ...

    def check(self) -> None:
        """Raise TemporarilyUnavailable unless fresh."""
        ...

    @property
    def caught_up_at(self) -> float | None:
        """Wall-clock seconds up to which every partition the view is made of was shown caught
        up (everything the broker held then is applied), or None while some never was."""
        ...


class LogoutTaker(Protocol):
    """Who posts a logout the moment it is queued (the back-channel worker): the queue leases the
    new delivery to it in the same step that stores it, so no claim round stands between a
    revocation and its logout."""

    lease_s: float
    """How long a delivery taken at enqueue stays leased (another instance takes it after)."""

    @property
    def accepting(self) -> bool:
        """False when stopping or when enough deliveries are in flight: the queue then only
        stores the delivery, due now, and wakes the claim loop."""
        ...

    def take(self, delivery: Delivery) -> None:
        """Deliver `delivery` (leased under its `claim`) in the background."""
        ...

    def lost(self, claim: str) -> None:
        """An enqueue under `claim` got no answer (it may have run): release it once Redis answers."""
        ...

    def wake(self) -> None:
        """Something is due now: claim it."""
        ...


class LogoutQueue(BackchannelLogouts, Protocol):
    """The durable queue the back-channel worker drains (`adapters.redis_backchannel`)."""

    taker: LogoutTaker | None

    async def claim(self, limit: int, lease_s: float, token: str | None = None) -> list[Delivery]: ...

    async def release(self, token: str, lease_s: float) -> int: ...

    async def retry_at(self, d: Delivery, due_s: float, status: int | None, error: str) -> bool: ...

    async def record_outcome(self, d: Delivery, outcome: str, status: int | None, error: str | None) -> bool: ...

    async def settle(self, d: Delivery) -> bool: ...

    async def pending(self) -> int: ...


__all__ = [
    "ACTIVITY_FIELDS",
    "BackchannelLogouts",
    "Clients",
    "Delivery",
    "DeviceLogin",
    "DeviceSessions",
    "DeviceSsoError",
    "DeviceStore",
    "Freshness",
    "Keys",
    "LogoutQueue",
    "LogoutTaker",
    "OrgSettingsView",
    "Publisher",
    "RevokedSession",
    "SessionLocked",
    "SessionRevoker",
    "TemporarilyUnavailable",
]
