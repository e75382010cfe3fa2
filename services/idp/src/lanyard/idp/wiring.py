"""Wiring of the directory/administration side (called from `app.create_app`): Redis adapters,
use cases, the policy-config subscription, routes and error handlers.

Its ports are exposed on `app.state.directory_side` (`enterprises`, `directory` (Users),
`clients`, `keys`, `org_settings`, `browser_sessions`) for the OIDC and devices sides.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from lanyard.contracts import topics
from lanyard.contracts.events import SERVICES_REALM
from lanyard.idp.adapters.outbox import OutboxPublisher
from lanyard.idp.adapters.redis_clients import RedisClients
from lanyard.idp.adapters.redis_directory import RedisDirectory, RedisEnterprises, RedisLockouts
from lanyard.idp.adapters.redis_keys import RedisKeys
from lanyard.idp.adapters.redis_sessions import RedisBrowserSessions, RedisOrgSettings, RedisPendingLogins
from lanyard.idp.api import DirectorySide, install_error_handlers
from lanyard.idp.domain import LockoutPolicy
from lanyard.idp.handlers import OrgSettingsHandler
from lanyard.idp.login import login_router
from lanyard.idp.service import Authenticator, DirectoryService, Passwords, ProfileService, TokenIssuer
from lanyard.idp.settings import IdpSettings
from lanyard.runtime.consumer import RetryPolicy, subscribe
from lanyard.runtime.idempotency import Idempotency
from lanyard.runtime.service import ServiceRuntime


def build_directory_side(runtime: ServiceRuntime, settings: IdpSettings, overrides: dict[str, Any]) -> DirectorySide:
    """Adapters and use cases on `runtime`'s Redis and publisher; subscribes the org-settings
    handler (group `{group_id}-config`) and relays any outbox left by a crash at start-up."""
    r = runtime.redis
    outbox = OutboxPublisher(r, runtime.publisher)
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
            retry=RetryPolicy(settings.consumer_retries, settings.consumer_retry_backoff_s),
        )
    )

    async def relay() -> None:
        await outbox.relay(SERVICES_REALM)

    runtime.on_start.append(relay)
    return side


def install_directory_side(app: FastAPI, side: DirectorySide) -> None:
    """Routes (admin API, Locker authn, login page) and error handlers."""
    app.state.directory_side = side
    install_error_handlers(app)
    app.include_router(login_router())
