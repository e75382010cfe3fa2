"""The checked-in OpenAPI and AsyncAPI documents are what the code generates now (drift check)."""

from __future__ import annotations

import json

from lanyard.cli import apidocs


def test_checked_in_api_documents_match_the_code():
    stale = [str(p.relative_to(apidocs.REPO)) for p in apidocs.drifted()]
    assert not stale, f"out of date (run `make api-docs`): {stale}"


def test_every_service_documents_its_public_paths_behind_the_gateway():
    prefixes = {
        "idp": ("/e/{enterprise_id}/", "/idp/services/"),  # the vendor's services realm has no enterprise
        "session": "/session/e/",
        "policy": "/policy/e/",
        "audit": "/audit/e/",
    }
    for service, prefix in prefixes.items():
        doc = json.loads((apidocs.DOCS / "openapi" / f"{service}.json").read_text())
        paths = [p for p in doc["paths"] if not p.startswith(("/health", "/metrics"))]
        assert paths and all(p.startswith(prefix) for p in paths), (service, paths)
