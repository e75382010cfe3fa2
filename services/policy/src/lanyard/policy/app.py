"""Composition root of the policy service: `create_app(settings, **overrides)`.

Overrides a test (or a benchmark) may pass: `broker`, `redis` (to ServiceRuntime), `jwks` (a
`JwksSource`, e.g. `StaticJwks` of a `TestIssuer`; it serves the services realm's keys too unless
`services_jwks` is given), `clock` (a callable returning an aware
datetime; drives licence validity, code expiry and readiness), `history` (for the rebuild).

Startup order: the rebuild from Kafka when Redis lost the projection (`rebuild.Rebuild`), then
the consumers and the licence clock.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import SimpleNamespace
from typing import Any

from fastapi import FastAPI

from lanyard.contracts import topics
from lanyard.policy.adapters.redis_cloud import RedisCloudSecrets
from lanyard.policy.adapters.redis_store import CLOSED_TTL_S, RedisReadModel
from lanyard.policy.api import api_router
from lanyard.policy.api_examples import EXAMPLES
from lanyard.policy.domain import utcnow
from lanyard.policy.handlers import PolicyHandlers
from lanyard.policy.locker_api import locker_router
from lanyard.policy.rebuild import Rebuild
from lanyard.policy.service import CloudConnection, ConfigCommands, Entitlements, LockerOptionsCommands, Readiness
from lanyard.policy.settings import PolicySettings
from lanyard.runtime.consumer import subscribe
from lanyard.runtime.errors import install_error_handlers
from lanyard.runtime.health import health_router
from lanyard.runtime.idempotency import Idempotency
from lanyard.runtime.logging import get_logger
from lanyard.runtime.openapi import document
from lanyard.runtime.rebuild import KafkaHistory, RedisProjectionMarker, rebuilding_lifespan
from lanyard.runtime.service import ServiceRuntime
from lanyard.runtime.tokens import SERVICES_JWKS_PATH, HttpJwks, KnownEnterprises, TokenVerifier

SESSION_TOPICS = [topics.DEVICE_SESSIONS]
CONFIG_TOPICS = [topics.POLICY_CONFIG, topics.DIRECTORY, topics.APP_PROFILES]
log = get_logger("lanyard.policy")


def create_app(settings: PolicySettings | None = None, **overrides: Any) -> FastAPI:
    """Build the policy service: adapters, handlers, subscriptions and routes."""
    settings = settings or PolicySettings()
    runtime = ServiceRuntime.from_settings(settings, **overrides)
    clock = overrides.get("clock") or utcnow
    marker = RedisProjectionMarker(runtime.redis, "policy")
    store = RedisReadModel(runtime.redis, complete_key=marker.key if settings.rebuild_on_start else None)
    entitlements = Entitlements(store, runtime.publisher, clock)
    commands = ConfigCommands(store, runtime.publisher, settings.apply_wait_s)
    handlers = PolicyHandlers(store, entitlements)
    retry = settings.retry_policy()
    # Two groups: the checkout hot path never waits behind a burst of configuration events.
    runtime.subscribers.append(
        subscribe(
            runtime.broker,
            SESSION_TOPICS,
            settings.group_id,
            handlers.on_device_session,
            batch_handler=handlers.on_device_sessions,
            retry=retry,
            **settings.consumer_options(),
        )
    )
    runtime.subscribers.append(
        subscribe(
            runtime.broker,
            CONFIG_TOPICS,
            f"{settings.group_id}.config",
            handlers.on_config,
            retry=retry,
            **settings.consumer_options(),
        )
    )

    jwks = overrides.get("jwks") or HttpJwks(settings.public_base_url)
    services_jwks = (
        overrides.get("services_jwks")
        or overrides.get("jwks")
        or HttpJwks(settings.public_base_url, path=SERVICES_JWKS_PATH)
    )
    ticker: dict[str, asyncio.Task[None]] = {}

    async def licence_clock() -> None:
        while True:
            await asyncio.sleep(settings.licence_check_interval_s)
            try:
                await entitlements.check_licences()
            except Exception as exc:  # keep ticking: the next round retries
                log.warning("licence check failed", error=type(exc).__name__)

    async def start_ticker() -> None:
        ticker["task"] = asyncio.create_task(licence_clock())

    async def stop_ticker() -> None:
        task = ticker.pop("task", None)
        if task:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for source in {id(jwks): jwks, id(services_jwks): services_jwks}.values():
            if isinstance(source, HttpJwks):
                await source.aclose()

    runtime.on_start.append(start_ticker)
    runtime.on_stop.append(stop_ticker)

    rebuild = Rebuild(
        store=store,
        marker=marker,
        history=overrides.get("history") or KafkaHistory(settings.kafka_bootstrap_servers, "lanyard-policy-rebuild"),
        clock=clock,
        closed_ttl_s=CLOSED_TTL_S,
        schedule_licences=entitlements.schedule_licences,
        timeout_s=settings.rebuild_timeout_s,
    )

    app = FastAPI(title="Lanyard policy", lifespan=rebuilding_lifespan(runtime, settings, rebuild.run))
    app.state.runtime = runtime
    app.state.rebuild = rebuild
    # Key sets are looked up only for enterprises the read model knows (its directory, app-profile
    # or configuration events): a made-up enterprise id in a URL costs no fetch and no memory.
    app.state.verifier = TokenVerifier(settings.public_base_url, jwks, known=KnownEnterprises(store.known))
    # The vendor's services realm is one fixed key set (`/idp/services/jwks`), no enterprise.
    app.state.services_verifier = TokenVerifier.for_services(settings.public_base_url, services_jwks)
    app.state.policy = SimpleNamespace(
        store=store,
        commands=commands,
        entitlements=entitlements,
        cloud=CloudConnection(
            store, RedisCloudSecrets(runtime.redis), commands, clock, settings.provisioning_code_ttl_s
        ),
        readiness=Readiness.from_settings(store, clock, settings),
        locker_options=LockerOptionsCommands(store, commands),
        clock=clock,
        enforced_after=settings.second_factor_enforced_after,
        idempotency=Idempotency(
            runtime.redis, "policy", settings.idempotency_ttl_s, secret_ttl_s=settings.idempotency_secret_ttl_s
        ),
    )
    install_error_handlers(app)

    checks = runtime.checks()
    if settings.rebuild_on_start:
        # A Redis that loses the projection while the service runs loses the marker too: not
        # ready until a restart rebuilt it, rather than decide checkouts against nothing.
        checks["state"] = marker.complete
    app.include_router(health_router("policy", checks))
    app.include_router(api_router())
    app.include_router(locker_router())
    document(app, EXAMPLES)
    return app
