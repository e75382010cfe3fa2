"""`SessionRevoker`, implemented: ends OIDC sessions (by device session or by sid) and every
grant in them.

Each call walks only the index of the session it ends (`ds:<dsid>` or `sid:<sid>`, see
`adapters/redis_oidc.py`) inside one Lua script, so its cost is the number of that session's
grants, never the number of other live sessions. A revoked-session marker stops grants that were being
created concurrently from joining afterwards.

Resumable and idempotent: a repeated call revokes nothing new but still returns the sessions
(with every client), so a caller that stopped half-way (grants revoked, logouts not queued)
finishes its back-channel logouts. It also announces again what *this* revocation revoked
(`tokens_revoked` per grant it revoked — the store records the cause — and `session_revoked`
per sid), under the same event ids as the first time (`uuid7` seeded by the enterprise, the
grant or sid and the cause): a publish interrupted by a broker outage is completed, and
consumers, which deduplicate by event id, see each announcement once.
"""

from __future__ import annotations

from collections import defaultdict

from lanyard.contracts import Event
from lanyard.contracts.events import SessionRevoked, SessionRevokedPayload
from lanyard.contracts.ids import uuid7
from lanyard.idp.devices.ports import AfterRevoked, RevokedSession
from lanyard.idp.oidc.domain import Grant, RevokedGrant
from lanyard.idp.oidc.service import OidcProvider, log
from lanyard.runtime.settle import run_all


class OidcSessionRevoker:
    """The OIDC side's implementation of `ports.SessionRevoker`."""

    def __init__(self, provider: OidcProvider) -> None:
        self._p = provider

    def _marker_ttl(self) -> int:
        cfg = self._p.config
        return max(cfg.refresh_token_ttl_s, cfg.code_replay_window_s)

    async def revoke_device_session(
        self,
        enterprise_id: str,
        device_session_id: str,
        reason: str,
        alongside: AfterRevoked | None = None,
        first_only: bool = False,
    ) -> list[RevokedSession] | None:
        """Revoke every grant of a device session; one RevokedSession per OIDC sid. `first_only`:
        None, with nothing announced and `alongside` not called, when it was revoked before."""
        store = self._p.store
        revoked = await store.revoke_device_session(enterprise_id, device_session_id, self._marker_ttl(), first_only)
        if revoked is None:
            return None
        sessions, events = self._announcements(
            enterprise_id, revoked, reason, device_session_id, f"ds:{device_session_id}"
        )
        await self._announce(events, sessions, alongside)
        log.info("device_session_revoked", enterprise_id=enterprise_id, dsid=device_session_id, grants=len(revoked))
        return sessions

    async def revoke_sid(
        self, enterprise_id: str, sid: str, reason: str, alongside: AfterRevoked | None = None
    ) -> RevokedSession | None:
        """Revoke every grant of one OIDC session."""
        revoked = await self._p.store.revoke_sid(enterprise_id, sid, self._marker_ttl())
        sessions, events = self._announcements(enterprise_id, revoked, reason, None, f"sid:{sid}")
        await self._announce(events, sessions, alongside)
        return sessions[0] if sessions else None

    async def _announce(self, events: list[Event], sessions: list[RevokedSession], alongside: AfterRevoked | None):
        # The grants are revoked in Redis already; the announcements (acks=all) and the caller's
        # follow-up need only that, not each other, so neither waits for the other.
        steps = [self._p.ports.publisher.publish(e) for e in events]
        if alongside is not None and sessions:
            steps.append(alongside(sessions))
        await run_all(steps)  # a failure: the caller retries the whole revocation; every step is idempotent

    def _announcements(
        self, eid: str, revoked: list[RevokedGrant], reason: str, dsid: str | None, cause: str
    ) -> tuple[list[RevokedSession], list[Event]]:
        by_sid: dict[str, list[Grant]] = defaultdict(list)
        first_ms: dict[str, int] = {}
        events: list[Event] = []
        wire_reason = "logout" if reason == "logout" else "session_revoked"
        for item in revoked:
            grant = item.grant
            by_sid[grant.sid].append(grant)
            if item.by_this:
                first_ms[grant.sid] = min(first_ms.get(grant.sid, item.revoked_ms), item.revoked_ms)
                events.append(
                    _stable(
                        self._p.tokens_revoked(eid, grant, wire_reason),
                        item.revoked_ms,
                        f"{eid}\x00{grant.gid}\x00{cause}",
                    )
                )
        sessions: list[RevokedSession] = []
        for sid, grants in by_sid.items():
            clients = tuple(dict.fromkeys(g.client_id for g in grants))
            user_id = grants[0].user_id
            session_dsid = dsid or grants[0].dsid
            sessions.append(RevokedSession(sid=sid, user_id=user_id, client_ids=clients))
            event = self._p.event(
                SessionRevoked,
                eid,
                SessionRevokedPayload(
                    sid=sid, user_id=user_id, reason=reason, clients=clients, device_session_id=session_dsid
                ),
                user_id=user_id,
                device_session_id=session_dsid,
            )
            if sid in first_ms:
                event = _stable(event, first_ms[sid], f"{eid}\x00{sid}\x00{cause}\x00session")
            events.append(event)
        return sessions, events


def _stable(event: Event, at_ms: int, seed: str) -> Event:
    """The event under an id that a retry of the same revocation computes again."""
    return event.model_copy(update={"event_id": uuid7(at_ms, seed.encode())})
