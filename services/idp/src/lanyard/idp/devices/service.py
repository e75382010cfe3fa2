"""The DeviceSessions port: SSO-extension authentication, and the checks refresh and
introspection make against the device-session read model.

`authenticate` answers the SSO extension (DESIGN §2): the handle is the device-session id; the
device proof must be signed by the key the session was checked out with and be fresh, single
use and bound to this request; the org must allow SSO; the session must be ACTIVE, granted for
this client and, in face mode, recently face-verified. A checkout or grant still in flight is
waited for with a bound: handlers in this process wake the waiter; Redis is polled for writes
made by other instances. Everything raises TemporarilyUnavailable while freshness is not shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from lanyard.idp.devices import domain as model
from lanyard.idp.devices.ports import DeviceLogin, DeviceSsoError, DeviceStore, Freshness, OrgSettingsView
from lanyard.idp.settings import DeviceSettings
from lanyard.runtime.logging import get_logger
from lanyard.runtime.proofs import CheckedProof, InvalidProof, check_device_proof

log = get_logger("lanyard.idp.devices.service")


class ChangeNotifier:
    """Wakes SSO requests waiting for a session's checkout or grant, in this process.

    Other instances' writes are not seen here; waiters also poll Redis for those."""

    def __init__(self) -> None:
        self._events: dict[tuple[str, str], tuple[asyncio.Event, int]] = {}

    @contextlib.asynccontextmanager
    async def watching(self, enterprise_id: str, device_session_id: str) -> AsyncIterator[asyncio.Event]:
        """An event set at the next change of this session (register before reading, so no wake-up is lost)."""
        key = (enterprise_id, device_session_id)
        event, count = self._events.get(key, (asyncio.Event(), 0))
        self._events[key] = (event, count + 1)
        try:
            yield event
        finally:
            event, count = self._events.get(key, (event, 1))
            if count <= 1:
                self._events.pop(key, None)
            else:
                self._events[key] = (event, count - 1)

    def renew(self, enterprise_id: str, device_session_id: str) -> asyncio.Event:
        """The current event of a watched session (after a wake-up, wait on the fresh one)."""
        key = (enterprise_id, device_session_id)
        entry = self._events.get(key)
        return entry[0] if entry else asyncio.Event()

    def notify(self, enterprise_id: str, device_session_id: str) -> None:
        """The session changed: wake its waiters and give later waiters a fresh event."""
        key = (enterprise_id, device_session_id)
        entry = self._events.get(key)
        if entry is not None:
            event, count = entry
            self._events[key] = (asyncio.Event(), count)
            event.set()


class DeviceSessionService:
    """Implements `lanyard.idp.directory.ports.DeviceSessions` on the Redis read model."""

    def __init__(
        self,
        store: DeviceStore,
        notifier: ChangeNotifier,
        freshness: Freshness,
        org_settings: OrgSettingsView,
        settings: DeviceSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.freshness = freshness
        self.org_settings = org_settings
        self._settings = settings
        self._clock = clock

    async def authenticate(
        self, enterprise_id: str, client_id: str, handle: str, proof: str, method: str, url: str
    ) -> DeviceLogin:
        """A DeviceLogin for this client on this device session, or DeviceSsoError /
        TemporarilyUnavailable (see the module docstring)."""
        self.freshness.check()
        if not isinstance(handle, str) or not model.HANDLE_RE.match(handle):
            raise DeviceSsoError("invalid_request", "malformed device-session handle")
        if not isinstance(proof, str) or not proof:
            raise DeviceSsoError("invalid_request", "device proof missing")
        if self.org_settings is None or not (await self.org_settings.get(enterprise_id)).password_autofill_and_sso:
            raise DeviceSsoError("access_denied", "single sign-on is turned off for this organisation")
        # Everything the proof says about itself is checked before any read: a proof that is not
        # validly signed, fresh and for this request marks nothing and waits for nothing.
        checked = self._checked_proof(enterprise_id, proof, method, url, handle)
        view, decision, caught_up, first_use = await self._decidable(enterprise_id, handle, client_id, checked)
        if view is not None and view.device_jkt is not None:
            # The proof comes before any session-specific answer: without the device key, a
            # handle reveals nothing about its session.
            try:
                checked.accept(view.device_jkt, first_use)
            except InvalidProof as exc:
                raise self._refused(enterprise_id, exc) from None
        self.freshness.check()
        final = model.after_wait(decision, caught_up)
        if isinstance(final, model.Refuse):
            raise DeviceSsoError(final.error, final.description, final.action)
        assert view is not None and view.user_id is not None and view.device_id is not None
        return DeviceLogin(
            enterprise_id=enterprise_id,
            device_session_id=handle,
            device_id=view.device_id,
            user_id=view.user_id,
            auth_time=view.auth_time or 0,
            amr=view.amr,
            sid=model.sid_for(enterprise_id, handle),
        )

    async def is_active(
        self, enterprise_id: str, device_session_id: str, view_fields: dict[str, str | None] | None = None
    ) -> bool:
        """ACTIVE or LOCKED: issued tokens stay valid. A CLOSED or unknown session is answered
        without the freshness check (CLOSED never comes back); a live one only while fresh.
        `view_fields`: the view's `ACTIVITY_FIELDS` when the caller read them already."""
        if view_fields is not None:
            state, checked_out = model.activity(view_fields)
        else:
            state, checked_out = await self.store.state(enterprise_id, device_session_id)
        if state not in ("ACTIVE", "LOCKED") or not checked_out:
            return False
        self.freshness.check()
        return True

    async def may_refresh(
        self, enterprise_id: str, device_session_id: str, client_id: str, view_fields: dict[str, str] | None = None
    ) -> bool:
        """ACTIVE (not LOCKED) and the client is granted; fails closed while not fresh; raises
        SessionLocked while a face verification would make it true.
        `view_fields` are the view's stored fields when the caller read them already."""
        if view_fields is not None:
            view = model.from_fields(view_fields)
        else:
            view = await self.store.load(enterprise_id, device_session_id)
        if view is None or view.state == "CLOSED":
            return False
        self.freshness.check()
        if model.locked_until_face(view, client_id):
            raise model.SessionLocked()
        return model.may_refresh(view, client_id)

    # ------------------------------------------------------------------------ internals

    async def _decidable(
        self, enterprise_id: str, handle: str, client_id: str, proof: CheckedProof
    ) -> tuple[model.SessionView | None, model.Decision, bool, bool]:
        """The view once the decision no longer waits for an event in flight, or at the bound,
        whether the consumer was shown caught up after the request arrived and before that
        view was read (`model.after_wait`: an unknown handle is then truly unknown), and whether
        this was the proof's first use (marked with the first read, in its round trip)."""
        asked_at = self._clock()
        deadline = time.monotonic() + self._settings.grant_wait_s
        first_use: bool | None = None
        async with self.notifier.watching(enterprise_id, handle):
            while True:
                changed = self.notifier.renew(enterprise_id, handle)
                # Read before the view: what it vouches for is then in the view read next.
                at = self.freshness.caught_up_at
                caught_up = at is not None and at >= asked_at
                if first_use is None:
                    view, first_use = await self.store.load_marking_proof(
                        enterprise_id, handle, proof.replay_key, proof.ttl_s
                    )
                else:
                    view = await self.store.load(enterprise_id, handle)
                decision = model.decide(view, client_id, self._clock())
                remaining = deadline - time.monotonic()
                if not isinstance(decision, model.Wait) or remaining <= 0:
                    return view, decision, caught_up, first_use is True
                if view is None and caught_up:  # never checked out: nothing in flight to wait for
                    return view, decision, caught_up, first_use is True
                try:
                    await asyncio.wait_for(changed.wait(), min(self._settings.grant_poll_s, remaining))
                except TimeoutError:
                    pass

    def _checked_proof(self, enterprise_id: str, proof: str, method: str, url: str, handle: str) -> CheckedProof:
        try:
            return check_device_proof(
                proof,
                method=method,
                url=url,
                now=self._clock(),
                max_skew_s=self._settings.proof_max_skew_s,
                handle=handle,
            )
        except InvalidProof as exc:
            raise self._refused(enterprise_id, exc) from None

    @staticmethod
    def _refused(enterprise_id: str, exc: InvalidProof) -> DeviceSsoError:
        log.info("device proof refused", enterprise_id=enterprise_id, reason=exc.reason)
        return DeviceSsoError("invalid_request", f"invalid device proof: {exc.reason}")
