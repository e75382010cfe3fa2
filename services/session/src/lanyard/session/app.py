"""Composition root of the session service: `create_app(settings, **overrides)`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from lanyard.contracts import topics
from lanyard.runtime.consumer import RetryPolicy, subscribe
from lanyard.runtime.health import health_router
from lanyard.runtime.service import ServiceRuntime
from lanyard.session.api import api_router
from lanyard.session.handlers import SessionHandlers
from lanyard.session.settings import SessionSettings

CONSUMES = [topics.ENTITLEMENTS, topics.OIDC_EVENTS, topics.POLICY_CONFIG]


def create_app(settings: SessionSettings | None = None, **overrides: Any) -> FastAPI:
    """Build the session service: adapters, handlers, subscriptions and routes."""
    settings = settings or SessionSettings()
    runtime = ServiceRuntime.from_settings(settings, **overrides)
    handlers = SessionHandlers(runtime.redis)
    runtime.subscribers.append(
        subscribe(
            runtime.broker,
            CONSUMES,
            settings.group_id,
            handlers.handle,
            retry=RetryPolicy(settings.consumer_retries, settings.consumer_retry_backoff_s),
        )
    )
    app = FastAPI(title="Lanyard session", lifespan=runtime.lifespan)
    app.state.runtime = runtime
    app.include_router(health_router("session", runtime.checks()))
    app.include_router(api_router())
    return app
