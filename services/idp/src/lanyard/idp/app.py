"""Composition root of the idp service: `create_app(settings, **overrides)`.

The IdP has three parts, each with its own domain, ports, service and routes or handlers —
`directory` (enterprises, users, app profiles, keys, login, Locker authn, admin API), `oidc`
(the OpenID Provider) and `devices` (the device-session read model, SSO and back-channel
logout) — and one set of Redis adapters (`adapters/`). They are built here in dependency
order, each given its collaborators at construction:

1. the device read model (store, change notifier, freshness monitor);
2. the directory (its adapters, use cases and policy-config consumer);
3. the devices services over the directory's ports (SSO, the logout queue and its worker);
4. the oidc part over the directory's and devices' ports (it implements `SessionRevoker`);
5. the device consumer, which revokes through the oidc part when a session closes.

`overrides` (tests only) replace ports with fakes: `clients`, `keys`, `org_settings`,
`session_revoker`, `device_sessions`, and `device_settings` / `oidc_config`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI
from redis.asyncio import Redis

from lanyard.contracts import topics
from lanyard.idp.adapters.freshness import FreshnessMonitor
from lanyard.idp.adapters.outbox import OutboxPublisher
from lanyard.idp.adapters.redis_backchannel import BackchannelQueue
from lanyard.idp.adapters.redis_clients import RedisClients
from lanyard.idp.adapters.redis_devices import SessionStore, session_key
from lanyard.idp.adapters.redis_directory import RedisDirectory, RedisEnterprises, RedisLockouts, user_key
from lanyard.idp.adapters.redis_keys import RedisKeys
from lanyard.idp.adapters.redis_oidc import OidcStore
from lanyard.idp.adapters.redis_services import RedisServicesPrincipals
from lanyard.idp.adapters.redis_sessions import RedisBrowserSessions, RedisOrgSettings, RedisPendingLogins
from lanyard.idp.devices.backchannel import BackchannelWorker
from lanyard.idp.devices.handlers import DeviceEventHandler
from lanyard.idp.devices.service import ChangeNotifier, DeviceSessionService
from lanyard.idp.directory.api import api_router, install_error_handlers
from lanyard.idp.directory.api_examples import EXAMPLES
from lanyard.idp.directory.authn import Authenticator, Passwords, TokenIssuer
from lanyard.idp.directory.domain import LockoutPolicy
from lanyard.idp.directory.handlers import OrgSettingsHandler
from lanyard.idp.directory.login import SESSION_COOKIE, login_router
from lanyard.idp.directory.ports import CachedClients
from lanyard.idp.directory.profiles import ProfileService
from lanyard.idp.directory.service import DirectoryService, DirectorySide
from lanyard.idp.directory.services_realm import ServicesRealm, services_router
from lanyard.idp.directory.webapp import webapp_router
from lanyard.idp.oidc.api import oidc_router
from lanyard.idp.oidc.ports import Ports
from lanyard.idp.oidc.revoker import OidcSessionRevoker
from lanyard.idp.oidc.service import OidcProvider
from lanyard.idp.settings import DeviceSettings, IdpSettings, OidcConfig
from lanyard.runtime.consumer import consumer_state, subscribe
from lanyard.runtime.health import health_router
from lanyard.runtime.idempotency import Idempotency
from lanyard.runtime.loops import BackgroundLoops
from lanyard.runtime.openapi import document
from lanyard.runtime.routing import ServiceAPI
from lanyard.runtime.service import ServiceRuntime

DEVICE_TOPICS = [topics.DEVICE_SESSIONS, topics.ENTITLEMENTS]


@dataclass(frozen=True)
class Devices:
    """The devices part as built: `sessions` is the DeviceSessions port, `logouts` the
    BackchannelLogouts port, `freshness` the readiness check of its consumer."""

    settings: DeviceSettings
    store: SessionStore
    sessions: DeviceSessionService
    handler: DeviceEventHandler
    freshness: FreshnessMonitor
    logouts: BackchannelQueue
    worker: BackchannelWorker
    subscriber: Any


@dataclass(frozen=True)
class Oidc:
    """The oidc part as built: the provider, its routes and its `SessionRevoker`."""

    provider: OidcProvider
    router: APIRouter
    revoker: OidcSessionRevoker


def build_oidc(ports: Ports, redis: Redis, config: OidcConfig) -> Oidc:
    """The OpenID Provider over `ports`, its grants in Redis."""
    # The code's redemption reads its user's status in the same script when the directory is
    # the one on this Redis (a test's fake directory is asked through its port instead).
    user_key_of = user_key if isinstance(ports.users, RedisDirectory) else None
    store = OidcStore(redis, config.code_replay_window_s, device_view_key=session_key, user_key=user_key_of)
    provider = OidcProvider(ports, store, config)
    return Oidc(provider, oidc_router(provider), OidcSessionRevoker(provider))


def build_directory(runtime: ServiceRuntime, settings: IdpSettings, overrides: dict[str, Any]) -> DirectorySide:
    """The directory's adapters and use cases on `runtime`'s Redis and publisher; subscribes the
    org-settings handler (group `{group_id}-config`) and runs the outbox relay every
    `outbox_interval_s` (its first round at start-up publishes what a crash left)."""
    r = runtime.redis
    outbox = OutboxPublisher(
        r,
        runtime.publisher,
        grace_s=settings.outbox_grace_s,
        lease_s=settings.outbox_lease_s,
        timeout_s=settings.publish_timeout_s,
        retry_s=settings.outbox_interval_s,
    )
    directory = RedisDirectory(r)
    org = overrides.get("org_settings") or RedisOrgSettings(r, settings.org_settings_cache_s)
    keys = overrides.get("keys") or RedisKeys(r, settings.max_token_lifetime_s, settings.keys_cache_check_s)
    clients = overrides.get("clients") or RedisClients(r)
    policy = LockoutPolicy(settings.lockout_max_failures, settings.lockout_window_s, settings.lockout_duration_s)
    passwords = Passwords()
    side = DirectorySide(
        settings=settings,
        enterprises=RedisEnterprises(r),
        directory=directory,
        clients=clients,
        keys=keys,
        authenticator=Authenticator(directory, RedisLockouts(r, policy), org, runtime.publisher, passwords),
        directory_service=DirectoryService(directory, outbox, passwords, settings.totp_issuer),
        profiles=ProfileService(clients, outbox),
        issuer=TokenIssuer(keys, settings.public_base_url),
        verifier=DirectorySide.verifier_for(settings, keys),
        org_settings=org,
        browser_sessions=RedisBrowserSessions(r, settings.browser_session_ttl_s),
        pending_logins=RedisPendingLogins(r, settings.pending_login_ttl_s),
        outbox=outbox,
        idempotency=Idempotency(r, "idp", settings.idempotency_ttl_s, secret_ttl_s=settings.idempotency_secret_ttl_s),
    )
    runtime.subscribers.append(
        subscribe(
            runtime.broker,
            topics.POLICY_CONFIG,
            f"{settings.group_id}-config",
            OrgSettingsHandler(org).handle,
            retry=settings.retry_policy(),
            **settings.consumer_options(),
        )
    )
    loops = BackgroundLoops("idp").add("outbox", lambda: outbox.relay(time.time()), settings.outbox_interval_s)
    runtime.on_start.append(loops.start)
    runtime.on_stop.append(loops.stop)
    return side


def create_app(settings: IdpSettings | None = None, **overrides: Any) -> FastAPI:
    """Build the idp service: its three parts, their subscriptions and routes."""
    settings = settings or IdpSettings()
    runtime = ServiceRuntime.from_settings(settings, **overrides)
    r = runtime.redis
    device_settings: DeviceSettings = overrides.get("device_settings") or DeviceSettings()
    device_group = f"{settings.group_id}-devices"

    # 1. The device read model. The freshness monitor watches the device consumer, which needs
    # the oidc part's revoker and so is subscribed last (step 5): it is looked up when used.
    consumer: dict[str, Any] = {}
    store = SessionStore(r)
    notifier = ChangeNotifier()
    freshness = FreshnessMonitor(
        r,
        device_group,
        DEVICE_TOPICS,
        consumer=lambda: getattr(consumer.get("subscriber"), "consumer", None),
        max_staleness_s=device_settings.max_staleness_s,
        tick_s=device_settings.freshness_tick_s,
        # A held record (the consumer retrying a dependency) may be a pending revocation.
        state=lambda: consumer_state(consumer.get("subscriber")),
    )

    # 2. The directory.
    directory = build_directory(runtime, settings, overrides)

    # 3. The devices services, over the directory's ports.
    sessions = DeviceSessionService(
        store,
        notifier,
        freshness,
        directory.org_settings,
        device_settings,
    )
    config: OidcConfig = overrides.get("oidc_config") or OidcConfig(
        public_base_url=settings.public_base_url, browser_cookie=SESSION_COOKIE
    )
    # Every queued logout reads its app's registration: remembered as the token endpoints do.
    logouts = BackchannelQueue(r, CachedClients(directory.clients, config.cache_entries, config.client_cache_s))
    worker = BackchannelWorker(logouts, directory.keys, runtime.publisher, device_settings, settings.public_base_url)

    # 4. The OpenID Provider, over the directory's and devices' ports.
    ports = Ports(
        enterprises=directory.enterprises,
        users=directory.directory,
        clients=directory.clients,
        keys=directory.keys,
        org_settings=directory.org_settings,
        browser_sessions=directory.browser_sessions,
        device_sessions=overrides.get("device_sessions") or sessions,
        backchannel=logouts,
        publisher=runtime.publisher,
    )
    oidc = build_oidc(ports, r, config)

    # 5. The device consumer: one-hop revocation through the oidc part.
    handler = DeviceEventHandler(store, notifier, overrides.get("session_revoker") or oidc.revoker, logouts)
    subscriber = subscribe(
        runtime.broker,
        DEVICE_TOPICS,
        device_group,
        handler.handle,
        batch_handler=handler.handle_batch,
        retry=settings.retry_policy(),
        **settings.consumer_options(),
    )
    consumer["subscriber"] = subscriber
    runtime.subscribers.append(subscriber)
    runtime.on_start += [freshness.start, worker.start]
    runtime.on_stop += [worker.stop, freshness.stop]
    devices = Devices(device_settings, store, sessions, handler, freshness, logouts, worker, subscriber)

    app = ServiceAPI(title="Lanyard idp", lifespan=runtime.lifespan)
    app.state.runtime = runtime
    app.state.directory_side = directory
    app.state.devices = devices
    app.state.oidc = oidc
    # The seed's rest: Web App Login Configuration, the vendor's services realm, the MDM's side.
    app.state.services_realm = ServicesRealm(
        RedisServicesPrincipals(r), directory.keys, directory.outbox, settings.public_base_url
    )
    install_error_handlers(app)
    app.include_router(login_router())
    app.include_router(oidc.router)
    app.serve_directly(oidc.router.routes)  # token, introspection, authorize: the hot paths

    async def device_sessions_fresh() -> bool:
        # Not ready while the device-session view may be stale: SSO and refresh fail closed then.
        return freshness.fresh

    app.include_router(health_router("idp", {**runtime.checks(), "device_sessions": device_sessions_fresh}))
    app.include_router(api_router())
    app.include_router(webapp_router())
    app.include_router(services_router())
    document(app, EXAMPLES)
    return app
