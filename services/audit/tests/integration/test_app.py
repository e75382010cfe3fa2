"""The audit service starts against the real broker and Redis, reports ready, and consumes."""

import httpx
import pytest

from lanyard.audit.app import create_app
from lanyard.audit.settings import AuditSettings
from lanyard.runtime.testing import eventually

pytestmark = pytest.mark.integration


async def test_health_and_readiness(kafka_bootstrap, redis_client, tmp_path):
    settings = AuditSettings(consumer_group="test-audit-health", db_path=tmp_path / "audit.sqlite")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://audit") as client:
            assert (await client.get("/health/live")).status_code == 200

            async def ready():
                return (await client.get("/health/ready")).status_code == 200

            await eventually(ready, 30, what="readiness")
            body = (await client.get("/health/ready")).json()
            assert body["checks"] == {"redis": True, "kafka": True, "consumers": True, "handlers": True}
            metrics = await client.get("/metrics")
            assert "lanyard_events_consumed_total" in metrics.text
