"""Composition root of the audit service: `create_app(settings, **overrides)`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from lanyard.audit.api import api_router
from lanyard.audit.handlers import AuditHandlers
from lanyard.audit.settings import AuditSettings
from lanyard.contracts import topics
from lanyard.runtime.consumer import RetryPolicy, subscribe
from lanyard.runtime.health import health_router
from lanyard.runtime.service import ServiceRuntime

CONSUMES = [
    topics.DIRECTORY,
    topics.APP_PROFILES,
    topics.POLICY_CONFIG,
    topics.DEVICE_SESSIONS,
    topics.ENTITLEMENTS,
    topics.OIDC_EVENTS,
]


def create_app(settings: AuditSettings | None = None, **overrides: Any) -> FastAPI:
    """Build the audit service: adapters, handlers, subscriptions and routes."""
    settings = settings or AuditSettings()
    runtime = ServiceRuntime.from_settings(settings, **overrides)
    handlers = AuditHandlers(runtime.redis)
    runtime.subscribers.append(
        subscribe(
            runtime.broker,
            CONSUMES,
            settings.group_id,
            handlers.handle,
            retry=RetryPolicy(settings.consumer_retries, settings.consumer_retry_backoff_s),
        )
    )
    app = FastAPI(title="Lanyard audit", lifespan=runtime.lifespan)
    app.state.runtime = runtime
    app.include_router(health_router("audit", runtime.checks()))
    app.include_router(api_router())
    return app
