"""`SessionRevoker`, implemented: ends OIDC sessions (by device session or by sid) and every
grant in them.

Each call walks only the index of the session it ends (`ds:<dsid>` or `sid:<sid>` in
`storage.py`) inside one Lua script, so its cost is the number of that session's grants, never
the number of other live sessions. A revoked-session marker stops grants that were being
created concurrently from joining afterwards. Idempotent: a redelivered check-in revokes nothing
new and publishes no new `tokens_revoked`, but still returns the sessions (with every client)
and republishes `session_revoked`, so a caller that crashed half-way can finish its back-channel
logouts (consumers deduplicate).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from lanyard.contracts import Event
from lanyard.contracts.events import SessionRevoked, SessionRevokedPayload, TokensRevoked, TokensRevokedPayload
from lanyard.idp.domain import RevokedSession
from lanyard.idp.oidc.provider import OidcProvider, log
from lanyard.idp.oidc.storage import Grant


class OidcSessionRevoker:
    """The OIDC side's implementation of `ports.SessionRevoker`."""

    def __init__(self, provider: OidcProvider) -> None:
        self._p = provider

    def _marker_ttl(self) -> int:
        cfg = self._p.config
        return max(cfg.refresh_token_ttl_s, cfg.code_replay_window_s)

    async def revoke_device_session(
        self, enterprise_id: str, device_session_id: str, reason: str
    ) -> list[RevokedSession]:
        """Revoke every grant of a device session; one RevokedSession per OIDC sid."""
        revoked = await self._p.store.revoke_device_session(enterprise_id, device_session_id, self._marker_ttl())
        sessions = await self._publish(enterprise_id, revoked, reason, device_session_id)
        log.info("device_session_revoked", enterprise_id=enterprise_id, dsid=device_session_id, grants=len(revoked))
        return sessions

    async def revoke_sid(self, enterprise_id: str, sid: str, reason: str) -> RevokedSession | None:
        """Revoke every grant of one OIDC session."""
        revoked = await self._p.store.revoke_sid(enterprise_id, sid, self._marker_ttl())
        sessions = await self._publish(enterprise_id, revoked, reason, None)
        return sessions[0] if sessions else None

    async def _publish(
        self, eid: str, revoked: list[tuple[str, Grant]], reason: str, dsid: str | None
    ) -> list[RevokedSession]:
        by_sid: dict[str, list[Grant]] = defaultdict(list)
        events: list[Event] = []
        wire_reason = "logout" if reason == "logout" else "session_revoked"
        for prev, grant in revoked:
            by_sid[grant.sid].append(grant)
            if prev != "revoked":
                events.append(
                    self._p.event(
                        TokensRevoked,
                        eid,
                        TokensRevokedPayload(
                            client_id=grant.client_id,
                            user_id=grant.user_id,
                            grant_id=grant.gid,
                            reason=wire_reason,
                            device_session_id=grant.dsid,
                        ),
                        user_id=grant.user_id,
                        client_id=grant.client_id,
                        device_session_id=grant.dsid,
                    )
                )
        sessions: list[RevokedSession] = []
        for sid, grants in by_sid.items():
            clients = tuple(dict.fromkeys(g.client_id for g in grants))
            user_id = grants[0].user_id
            session_dsid = dsid or grants[0].dsid
            sessions.append(RevokedSession(sid=sid, user_id=user_id, client_ids=clients))
            events.append(
                self._p.event(
                    SessionRevoked,
                    eid,
                    SessionRevokedPayload(
                        sid=sid, user_id=user_id, reason=reason, clients=clients, device_session_id=session_dsid
                    ),
                    user_id=user_id,
                    device_session_id=session_dsid,
                )
            )
        await asyncio.gather(*(self._p.ports.publisher.publish(e) for e in events))
        return sessions
