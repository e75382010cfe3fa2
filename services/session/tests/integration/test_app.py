"""The session service starts against the real broker and Redis, reports ready, and consumes."""

import httpx
import pytest

from lanyard.runtime.testing import eventually
from lanyard.session.app import create_app
from lanyard.session.settings import SessionSettings

pytestmark = pytest.mark.integration


async def test_health_and_readiness(kafka_bootstrap, redis_client):
    settings = SessionSettings(consumer_group="test-session-health")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://session") as client:
            assert (await client.get("/health/live")).status_code == 200

            async def ready():
                return (await client.get("/health/ready")).status_code == 200

            await eventually(ready, 30, what="readiness")
            body = (await client.get("/health/ready")).json()
            assert body["checks"] == {"redis": True, "kafka": True, "consumers": True, "handlers": True, "state": True}
            metrics = await client.get("/metrics")
            assert "lanyard_events_consumed_total" in metrics.text
