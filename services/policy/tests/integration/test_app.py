"""The policy service starts against the real broker and Redis, reports ready, and consumes."""

import httpx
import pytest

from lanyard.policy.app import create_app
from lanyard.policy.settings import PolicySettings
from lanyard.runtime.testing import eventually

pytestmark = pytest.mark.integration


async def test_health_and_readiness(kafka_bootstrap, redis_client):
    settings = PolicySettings(consumer_group="test-policy-health")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://policy") as client:
            assert (await client.get("/health/live")).status_code == 200

            async def ready():
                return (await client.get("/health/ready")).status_code == 200

            await eventually(ready, 30, what="readiness")
            body = (await client.get("/health/ready")).json()
            checks = {"redis": True, "kafka": True, "consumers": True, "handlers": True, "state": True}
            assert body["checks"] == checks
            metrics = await client.get("/metrics")
            assert "lanyard_events_consumed_total" in metrics.text

            # A Redis that loses the projection while the service runs loses its marker too:
            # not ready (a restart rebuilds it from Kafka) rather than decide against nothing.
            await redis_client.flushdb()
            gone = await client.get("/health/ready")
            assert gone.status_code == 503 and gone.json()["checks"]["state"] is False
