"""Composition root of the session service: `create_app(settings, **overrides)`.

Overrides a test may pass: `broker`, `redis` (infrastructure), `clock`, `jwks` (a JwksSource,
e.g. `TestIssuer.static_jwks()`), `publisher`, `face_verifier`, `history` (for the rebuild).

Startup order: the rebuild from Kafka when Redis lost the state (`rebuild.Rebuild`), then the
runtime (broker, consumers, loops); the HTTP API serves only after both.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from lanyard.contracts import topics
from lanyard.runtime.consumer import subscribe
from lanyard.runtime.health import health_router
from lanyard.runtime.idempotency import Idempotency
from lanyard.runtime.logging import get_logger
from lanyard.runtime.loops import BackgroundLoops
from lanyard.runtime.openapi import document
from lanyard.runtime.rebuild import KafkaHistory, RedisProjectionMarker, rebuilding_lifespan
from lanyard.runtime.service import ServiceRuntime
from lanyard.runtime.tokens import HttpJwks, TokenVerifier
from lanyard.session.adapters.clock import SystemClock
from lanyard.session.adapters.proofs import DeviceProofVerifier, SignedFaceResultVerifier
from lanyard.session.adapters.redis_store import RedisSessionStore
from lanyard.session.api import api_router, install_error_handlers
from lanyard.session.api_examples import EXAMPLES
from lanyard.session.handlers import SessionHandlers
from lanyard.session.rebuild import Rebuild
from lanyard.session.service import SessionService
from lanyard.session.settings import SessionSettings

CONSUMES = [topics.ENTITLEMENTS, topics.OIDC_EVENTS, topics.POLICY_CONFIG]
log = get_logger("lanyard.session")


class BackgroundWork(BackgroundLoops):
    """The timer loop and the outbox relay of one instance (the runtime's `BackgroundLoops`:
    stopped promptly even when a library beneath swallows a cancellation). The relay's first
    round publishes what a previous run left behind."""

    def __init__(self, service: SessionService, settings: SessionSettings) -> None:
        super().__init__("session")
        self.add("timers", service.fire_due_timers, settings.timer_poll_interval_s)
        self.add("outbox", service.relay_outbox, settings.outbox_interval_s)


def create_app(settings: SessionSettings | None = None, **overrides: Any) -> FastAPI:
    """Build the session service: adapters, use cases, handlers, subscriptions, loops and routes."""
    settings = settings or SessionSettings()
    runtime = ServiceRuntime.from_settings(settings, **overrides)
    clock = overrides.get("clock") or SystemClock()
    jwks = overrides.get("jwks") or HttpJwks(settings.public_base_url)
    verifier = TokenVerifier(settings.public_base_url, jwks, clock=clock.now)
    service = SessionService(
        store=RedisSessionStore(runtime.redis, clock, settings.outbox_grace_s),
        publisher=overrides.get("publisher") or runtime.publisher,
        clock=clock,
        assertions=verifier,
        proofs=DeviceProofVerifier(runtime.redis, clock, settings.proof_max_skew_s),
        faces=overrides.get("face_verifier") or SignedFaceResultVerifier(clock, settings.proof_max_skew_s),
        settings=settings,
    )
    handlers = SessionHandlers(service)
    runtime.subscribers.append(
        subscribe(
            runtime.broker,
            CONSUMES,
            settings.group_id,
            handlers.handle,
            batch_handler=handlers.handle_batch,
            retry=settings.retry_policy(),
            **settings.consumer_options(),
        )
    )
    if settings.run_background:
        background = BackgroundWork(service, settings)
        runtime.on_start.append(background.start)
        runtime.on_stop.append(background.stop)
    marker = RedisProjectionMarker(runtime.redis, "session")
    rebuild = Rebuild(
        store=service.store,
        marker=marker,
        history=overrides.get("history") or KafkaHistory(settings.kafka_bootstrap_servers, "lanyard-session-rebuild"),
        clock=clock,
        default_max_session_s=settings.default_max_session_s,
        timeout_s=settings.rebuild_timeout_s,
        activity_lookback_s=settings.rebuild_activity_lookback_s,
    )

    async def settle_rebuild() -> None:
        await rebuild.settle(service.check_in_ended)

    # Before the timer loop starts, so a checkin it makes cannot race a timer on the same session.
    runtime.on_start.insert(0, settle_rebuild)
    if isinstance(jwks, HttpJwks):
        runtime.on_stop.append(jwks.aclose)

    app = FastAPI(title="Lanyard session", lifespan=rebuilding_lifespan(runtime, settings, rebuild.run))
    app.state.runtime = runtime
    app.state.rebuild = rebuild
    app.state.service = service
    app.state.admin_verifier = verifier
    app.state.idempotency = Idempotency(
        runtime.redis, "session", settings.idempotency_ttl_s, secret_ttl_s=settings.idempotency_secret_ttl_s
    )
    install_error_handlers(app)
    checks = runtime.checks()
    if settings.rebuild_on_start:
        # A Redis that loses the state while the service runs loses the marker too: not ready
        # until a restart rebuilt it, rather than serve 404s for live sessions.
        checks["state"] = marker.complete
    app.include_router(health_router("session", checks))
    app.include_router(api_router())
    document(app, EXAMPLES)
    return app
