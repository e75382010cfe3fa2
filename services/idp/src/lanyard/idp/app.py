"""Composition root of the idp service: `create_app(settings, **overrides)`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from lanyard.contracts import topics
from lanyard.idp.adapters.redis_services import RedisServicesPrincipals
from lanyard.idp.api import api_router
from lanyard.idp.devices.wiring import build_devices
from lanyard.idp.handlers import IdpHandlers
from lanyard.idp.login import SESSION_COOKIE
from lanyard.idp.oidc import OidcConfig, Ports, build_oidc
from lanyard.idp.services_realm import ServicesRealm, services_router
from lanyard.idp.settings import IdpSettings
from lanyard.idp.webapp import webapp_router
from lanyard.idp.wiring import build_directory_side, install_directory_side
from lanyard.runtime.consumer import subscribe
from lanyard.runtime.health import health_router
from lanyard.runtime.service import ServiceRuntime

CONSUMES = [topics.DEVICE_SESSIONS, topics.ENTITLEMENTS, topics.POLICY_CONFIG]


def create_app(settings: IdpSettings | None = None, **overrides: Any) -> FastAPI:
    """Build the idp service: adapters, handlers, subscriptions and routes."""
    settings = settings or IdpSettings()
    runtime = ServiceRuntime.from_settings(settings, **overrides)
    # Directory side (enterprises, users, app profiles, keys, login, Locker authn, admin API).
    directory_side = build_directory_side(runtime, settings, overrides)
    handlers = IdpHandlers(runtime.redis)
    runtime.subscribers.append(
        subscribe(
            runtime.broker,
            CONSUMES,
            settings.group_id,
            handlers.handle,
            retry=settings.retry_policy(),
            **settings.consumer_options(),
        )
    )
    # Device sessions (lanyard.idp.devices): own consumer group; ports of the other sides are
    # bound here or later with devices.bind(...).
    devices = build_devices(
        runtime,
        overrides.get("device_settings"),
        revoker=overrides.get("session_revoker"),
        clients=overrides.get("clients"),
        keys=overrides.get("keys"),
        org_settings=overrides.get("org_settings"),
    )
    app = FastAPI(title="Lanyard idp", lifespan=runtime.lifespan)
    app.state.runtime = runtime
    app.state.devices = devices
    install_directory_side(app, directory_side)
    devices.bind(clients=directory_side.clients, keys=directory_side.keys, org_settings=directory_side.org_settings)
    # OIDC protocol (lanyard.idp.oidc): consumes the directory and devices sides' ports and
    # implements SessionRevoker for the devices side.
    oidc = build_oidc(
        Ports(
            enterprises=directory_side.enterprises,
            users=directory_side.directory,
            clients=directory_side.clients,
            keys=directory_side.keys,
            org_settings=directory_side.org_settings,
            browser_sessions=directory_side.browser_sessions,
            device_sessions=overrides.get("device_sessions") or devices.sessions,
            backchannel=devices.logouts,
            publisher=runtime.publisher,
        ),
        runtime.redis,
        overrides.get("oidc_config")
        or OidcConfig(public_base_url=settings.public_base_url, browser_cookie=SESSION_COOKIE),
    )
    if overrides.get("session_revoker") is None:
        devices.bind(revoker=oidc.revoker)
    app.state.oidc = oidc
    app.include_router(oidc.router)

    async def device_sessions_fresh() -> bool:
        # Not ready while the device-session view may be stale: SSO and refresh fail closed then.
        return devices.freshness.fresh

    app.include_router(health_router("idp", {**runtime.checks(), "device_sessions": device_sessions_fresh}))
    app.include_router(api_router())
    # The seed's rest: Web App Login Configuration, the vendor's services realm, the MDM's side.
    app.state.services_realm = ServicesRealm(
        RedisServicesPrincipals(runtime.redis), directory_side.keys, directory_side.outbox, settings.public_base_url
    )
    app.include_router(webapp_router())
    app.include_router(services_router())
    return app
