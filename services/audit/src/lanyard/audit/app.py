"""Composition root of the audit service: `create_app(settings, **overrides)`.

Overrides for tests: `broker=`, `redis=` (runtime), `store=` (an `AuditStore`), `verifier=`
(a `TokenVerifier`), `jwks=` (a `JwksSource` for the verifier built here), `observer=` (an
`AuditObserver`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request

from lanyard.audit.adapters.observability import MetricsObserver
from lanyard.audit.adapters.sqlite_store import SqliteAuditStore
from lanyard.audit.api import api_router
from lanyard.audit.api_examples import EXAMPLES
from lanyard.audit.handlers import AuditHandlers
from lanyard.audit.ports import AuditStore
from lanyard.audit.settings import AuditSettings
from lanyard.contracts.topics import TOPICS
from lanyard.runtime.consumer import current_record, subscribe
from lanyard.runtime.errors import install_error_handlers
from lanyard.runtime.health import health_router
from lanyard.runtime.openapi import document
from lanyard.runtime.service import ServiceRuntime
from lanyard.runtime.tokens import HttpJwks, KnownEnterprises, TokenVerifier


def create_app(settings: AuditSettings | None = None, **overrides: Any) -> FastAPI:
    """Build the audit service: the store, the consumer of every source topic, and the query API."""
    settings = settings or AuditSettings()
    runtime = ServiceRuntime.from_settings(settings, **overrides)
    store: AuditStore = overrides.get("store") or SqliteAuditStore(settings.db_path, settings.sqlite_synchronous)
    jwks = None
    verifier = overrides.get("verifier")
    if verifier is None:
        jwks = overrides.get("jwks") or HttpJwks(settings.public_base_url)
        # Key sets are looked up only for enterprises the log holds records of: a made-up
        # enterprise id in a URL costs no fetch and no memory.
        verifier = TokenVerifier(settings.public_base_url, jwks, known=KnownEnterprises(store.has_enterprise))
    if settings.consume:
        handlers = AuditHandlers(store, overrides.get("observer") or MetricsObserver(), current_record)
        runtime.subscribers.append(
            subscribe(
                runtime.broker,
                list(TOPICS),
                settings.group_id,
                handlers.handle,
                batch_handler=handlers.handle_batch,
                retry=settings.retry_policy(),
                **settings.consumer_options(),
            )
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The store opens before the consumers start and closes after they stopped, so no
        # record is ever handled without it (runtime hooks run inside the broker's lifetime).
        opener = getattr(store, "open", None)
        if opener is not None:
            await opener()
        try:
            async with runtime.lifespan(app):
                yield
        finally:
            await store.close()
            if isinstance(jwks, HttpJwks):
                await jwks.aclose()

    app = FastAPI(title="Lanyard audit", lifespan=lifespan)
    app.state.runtime = runtime
    app.state.store = store
    app.state.verifier = verifier
    install_error_handlers(app)

    def store_of(request: Request) -> AuditStore:
        return request.app.state.store

    def verifier_of(request: Request) -> TokenVerifier:
        return request.app.state.verifier

    app.include_router(health_router("audit", runtime.checks()))
    app.include_router(
        api_router(store_of, verifier_of, settings.max_page, settings.export_batch, settings.checkpoint_verifier())
    )
    document(app, EXAMPLES)
    return app
