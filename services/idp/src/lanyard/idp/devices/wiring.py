"""Composition of the device-session side, called from `lanyard.idp.app.create_app`.

`build_devices` creates the read model, the consumer (its own group, `<group>-devices`), the
freshness monitor, the DeviceSessions service and the back-channel queue and worker, and hooks
their start and stop into the service runtime. Ports owned by the other sides of the IdP
(SessionRevoker, Clients, Keys, OrgSettingsView) may be bound after construction with `bind`,
because the OIDC side needs `devices.sessions` to build itself and we need its revoker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lanyard.contracts import topics
from lanyard.idp.devices.backchannel import BackchannelQueue, BackchannelWorker
from lanyard.idp.devices.freshness import FreshnessMonitor
from lanyard.idp.devices.handlers import DeviceEventHandler
from lanyard.idp.devices.readmodel import ChangeNotifier, SessionStore
from lanyard.idp.devices.settings import DeviceSettings
from lanyard.idp.devices.sso import DeviceSessionService
from lanyard.idp.ports import Clients, Keys, OrgSettingsView, SessionRevoker
from lanyard.runtime.consumer import consumer_state, subscribe
from lanyard.runtime.service import ServiceRuntime

DEVICE_TOPICS = [topics.DEVICE_SESSIONS, topics.ENTITLEMENTS]


@dataclass
class Devices:
    """The device-session side's parts; `sessions` is the DeviceSessions port, `logouts` the
    BackchannelLogouts port."""

    settings: DeviceSettings
    store: SessionStore
    sessions: DeviceSessionService
    handler: DeviceEventHandler
    freshness: FreshnessMonitor
    logouts: BackchannelQueue
    worker: BackchannelWorker
    subscriber: Any

    def bind(
        self,
        *,
        revoker: SessionRevoker | None = None,
        clients: Clients | None = None,
        keys: Keys | None = None,
        org_settings: OrgSettingsView | None = None,
    ) -> Devices:
        """Attach the other sides' ports (any left None stays as it was)."""
        if revoker is not None:
            self.handler.revoker = revoker
        if clients is not None:
            self.logouts.clients = clients
        if keys is not None:
            self.worker.keys = keys
        if org_settings is not None:
            self.sessions.org_settings = org_settings
        return self

    async def fresh(self) -> bool:
        """Readiness check: the device-session view is vouched for."""
        return self.freshness.fresh


def build_devices(
    runtime: ServiceRuntime,
    settings: DeviceSettings | None = None,
    *,
    revoker: SessionRevoker | None = None,
    clients: Clients | None = None,
    keys: Keys | None = None,
    org_settings: OrgSettingsView | None = None,
) -> Devices:
    """Build the device-session side on `runtime` and register its lifecycle hooks."""
    settings = settings or DeviceSettings()
    svc = runtime.settings
    group_id = f"{svc.group_id}-devices"
    store = SessionStore(runtime.redis)
    notifier = ChangeNotifier()
    holder: dict[str, Any] = {}
    freshness = FreshnessMonitor(
        runtime.redis,
        group_id,
        DEVICE_TOPICS,
        consumer=lambda: getattr(holder.get("subscriber"), "consumer", None),
        max_staleness_s=settings.max_staleness_s,
        tick_s=settings.freshness_tick_s,
        # A held record (the consumer retrying a dependency) may be a pending revocation.
        state=lambda: consumer_state(holder.get("subscriber")),
    )
    logouts = BackchannelQueue(runtime.redis, clients)
    handler = DeviceEventHandler(store, notifier, revoker, logouts)
    subscriber = subscribe(
        runtime.broker,
        DEVICE_TOPICS,
        group_id,
        handler.handle,
        retry=svc.retry_policy(),
        **{
            **svc.consumer_options(),
            # Revocation latency runs through this consumer: a shorter idle poll cuts the wait a
            # checkin can meet before its handler runs, for a few percent of a core when idle.
            "poll_ms": settings.poll_ms,
        },
    )
    holder["subscriber"] = subscriber
    runtime.subscribers.append(subscriber)
    sessions = DeviceSessionService(runtime.redis, store, notifier, freshness, org_settings, settings)
    worker = BackchannelWorker(logouts, keys, runtime.publisher, settings, svc.public_base_url)
    runtime.on_start += [freshness.start, worker.start]
    runtime.on_stop += [worker.stop, freshness.stop]
    return Devices(settings, store, sessions, handler, freshness, logouts, worker, subscriber)
