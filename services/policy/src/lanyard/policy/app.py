"""Composition root of the policy service: `create_app(settings, **overrides)`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from lanyard.contracts import topics
from lanyard.policy.api import api_router
from lanyard.policy.handlers import PolicyHandlers
from lanyard.policy.settings import PolicySettings
from lanyard.runtime.consumer import RetryPolicy, subscribe
from lanyard.runtime.health import health_router
from lanyard.runtime.service import ServiceRuntime

CONSUMES = [topics.DEVICE_SESSIONS, topics.DIRECTORY, topics.APP_PROFILES]


def create_app(settings: PolicySettings | None = None, **overrides: Any) -> FastAPI:
    """Build the policy service: adapters, handlers, subscriptions and routes."""
    settings = settings or PolicySettings()
    runtime = ServiceRuntime.from_settings(settings, **overrides)
    handlers = PolicyHandlers(runtime.redis)
    runtime.subscribers.append(
        subscribe(
            runtime.broker,
            CONSUMES,
            settings.group_id,
            handlers.handle,
            retry=RetryPolicy(settings.consumer_retries, settings.consumer_retry_backoff_s),
        )
    )
    app = FastAPI(title="Lanyard policy", lifespan=runtime.lifespan)
    app.state.runtime = runtime
    app.include_router(health_router("policy", runtime.checks()))
    app.include_router(api_router())
    return app
