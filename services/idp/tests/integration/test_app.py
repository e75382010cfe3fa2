"""The idp service starts against the real broker and Redis, reports ready, and consumes."""

import httpx
import pytest

from lanyard.idp.app import create_app
from lanyard.idp.settings import IdpSettings
from lanyard.runtime.testing import eventually

pytestmark = pytest.mark.integration


async def test_health_and_readiness(kafka_bootstrap, redis_client):
    settings = IdpSettings(consumer_group="test-idp-health")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://idp") as client:
            assert (await client.get("/health/live")).status_code == 200

            async def ready():
                return (await client.get("/health/ready")).status_code == 200

            await eventually(ready, 30, what="readiness")
            body = (await client.get("/health/ready")).json()
            assert body["checks"] == {
                "redis": True, "kafka": True, "consumers": True, "handlers": True, "device_sessions": True
            }  # fmt: skip
            metrics = await client.get("/metrics")
            assert "lanyard_events_consumed_total" in metrics.text
