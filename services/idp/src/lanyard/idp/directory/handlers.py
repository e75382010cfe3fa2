"""The directory part's consumer: org settings from lanyard.policy-config.v1 (the devices part
has its own in `lanyard.idp.devices.handlers`)."""

from __future__ import annotations

from lanyard.contracts import Event
from lanyard.contracts.events import OrgSettingsChanged
from lanyard.idp.directory.ports import OrgSettingsStore
from lanyard.idp.directory.service import apply_org_settings


class OrgSettingsHandler:
    """Consumes lanyard.policy-config.v1 in its own group (`{group_id}-config`) and keeps the org
    settings the IdP honours (second factor, Password Autofill and SSO) in Redis. Other
    policy-config events are not the directory side's concern and are skipped. Idempotent: an
    event is applied only if newer than the one already stored."""

    def __init__(self, store: OrgSettingsStore) -> None:
        self._store = store

    async def handle(self, event: Event) -> None:
        """Apply OrgSettingsChanged; ignore everything else."""
        if isinstance(event, OrgSettingsChanged):
            await apply_org_settings(self._store, event)
