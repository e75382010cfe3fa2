"""The checked-in API documents: OpenAPI for each HTTP service, AsyncAPI for the Kafka topics.

    docs/api/openapi/<service>.json   what each service's FastAPI app generates from its routes
                                      (the gateway serves the live one at /_openapi/<service>.json)
    docs/api/asyncapi.json            lanyard.contracts.asyncapi, with the golden samples as examples

`python -m lanyard.cli.apidocs write` regenerates them (`make api-docs`); `check` exits 1 and
names each file that drifted from the code (the test suite runs the same comparison).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from lanyard.cli.config import REPO
from lanyard.contracts import asyncapi

SERVICES = ("idp", "session", "policy", "audit")
DOCS = REPO / "docs" / "api"
GOLDEN = REPO / "libs" / "contracts" / "tests" / "golden"


def openapi(service: str) -> dict[str, Any]:
    """One service's OpenAPI document, from its app as `create_app` builds it (nothing starts)."""
    if service == "idp":
        from lanyard.idp.app import create_app
        from lanyard.idp.settings import IdpSettings as Settings
    elif service == "session":
        from lanyard.session.app import create_app
        from lanyard.session.settings import SessionSettings as Settings
    elif service == "policy":
        from lanyard.policy.app import create_app
        from lanyard.policy.settings import PolicySettings as Settings
    else:
        from lanyard.audit.app import create_app
        from lanyard.audit.settings import AuditSettings as Settings
    with tempfile.TemporaryDirectory() as scratch:
        # The audit service opens its log where settings say; the document does not depend on it.
        settings = Settings(db_path=Path(scratch) / "audit.sqlite") if service == "audit" else Settings()
        return create_app(settings).openapi()


def rendered() -> dict[Path, str]:
    """Every document as its checked-in file should read."""
    files = {
        DOCS / "openapi" / f"{s}.json": json.dumps(openapi(s), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        for s in SERVICES
    }
    files[DOCS / "asyncapi.json"] = asyncapi.render(GOLDEN)
    return files


def drifted() -> list[Path]:
    """The checked-in files that differ from what the code generates now."""
    return [path for path, text in rendered().items() if not path.exists() or path.read_text() != text]


def main(argv: list[str]) -> int:
    """`write` or `check`."""
    if argv not in (["write"], ["check"]):
        print("usage: python -m lanyard.cli.apidocs write|check", file=sys.stderr)
        return 2
    if argv == ["write"]:
        for path, text in rendered().items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO)}")
        return 0
    stale = drifted()
    for path in stale:
        print(f"{path.relative_to(REPO)} is out of date: run `make api-docs`", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
