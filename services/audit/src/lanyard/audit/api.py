"""HTTP API of the audit service (auditor or superadmin role, scoped to one enterprise).

- GET /audit/e/{eid}/records   filtered, paginated by seq (`after` = the previous page's `next_cursor`)
- GET /audit/e/{eid}/access    who had access to app X on device Y at time T, with evidence seqs
- GET /audit/e/{eid}/gaps      gaps detected in the input
- GET /audit/e/{eid}/export    the same filters as /records, streamed as JSON Lines or CSV
- GET /audit/e/{eid}/verification   the hash chain recomputed (the whole log: it is one chain for
                                    every enterprise, so the answer names seqs only, no event)
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, replace
from datetime import datetime
from typing import Annotated, Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from lanyard.audit.domain import CATEGORIES, AuditRecord, format_time
from lanyard.audit.ports import AuditStore, RecordQuery
from lanyard.audit.service import find_access, verify_log
from lanyard.runtime.bodies import BoundedRoute
from lanyard.runtime.errors import error_response
from lanyard.runtime.tokens import AdminPrincipal, TokenVerifier, require_roles

Category = Literal["admin", "device_session", "entitlement", "oidc"]

CSV_COLUMNS = (
    "seq", "event_id", "type", "enterprise_id", "occurred_at", "producer", "actor", "admin_action", "user_id",
    "device_id", "device_session_id", "client_id", "topic", "partition", "offset", "prev_hash", "hash", "event",
)  # fmt: skip


def _error(status: int, code: str, description: str) -> JSONResponse:
    return error_response(status, code, description)


class Filters:
    """The record filters shared by /records and /export, parsed from the query string."""

    def __init__(
        self,
        user_id: str | None = None,
        device_id: str | None = None,
        client_id: Annotated[str | None, Query(description="app: the OIDC client id")] = None,
        device_session_id: str | None = None,
        types: Annotated[list[str], Query(alias="type", description="event type, repeatable")] = [],  # noqa: B006
        actor: Annotated[str | None, Query(description="the acting admin or user")] = None,
        category: Category | None = None,
        since: Annotated[datetime | None, Query(description="occurred at or after (ISO 8601)")] = None,
        until: Annotated[datetime | None, Query(description="occurred before (ISO 8601)")] = None,
    ) -> None:
        self.values = {
            "user_id": user_id,
            "device_id": device_id,
            "client_id": client_id,
            "device_session_id": device_session_id,
            "types": tuple(types),
            "actor": actor,
            "topics": tuple(sorted(CATEGORIES[category])) if category else (),
            "since": format_time(since) if since else None,
            "until": format_time(until) if until else None,
        }

    def query(self, enterprise_id: str, after: int, limit: int) -> RecordQuery:
        """The store query for one page."""
        return RecordQuery(enterprise_id=enterprise_id, after_seq=after, limit=limit, **self.values)


def _csv_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # Spreadsheets run cells starting with these as formulas; a leading quote keeps them text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv_row(record: AuditRecord) -> list[str]:
    d = record.to_dict()
    d["event"] = record.entry.event_json
    return [_csv_cell(d[c]) for c in CSV_COLUMNS]


def api_router(
    store_getter: Callable[[Request], AuditStore],
    verifier_getter: Callable[[Request], TokenVerifier],
    max_page: int = 1000,
    export_batch: int = 500,
    checkpoint_key: Ed25519PublicKey | None = None,
) -> APIRouter:
    """The audit service's routes, mounted under /audit behind the gateway."""
    router = APIRouter(prefix="/audit", tags=["audit"], route_class=BoundedRoute)
    auditor = Depends(require_roles(verifier_getter, "auditor", "superadmin"))

    @router.get("/e/{enterprise_id}/records")
    async def records(
        request: Request,
        enterprise_id: str,
        filters: Annotated[Filters, Depends()],
        principal: AdminPrincipal = auditor,
        after: Annotated[int, Query(ge=0, description="cursor: the last seq of the previous page")] = 0,
        limit: Annotated[int | None, Query(ge=1, description="page size (default 100 or the maximum)")] = None,
    ) -> JSONResponse:
        """One page of records matching the filters, ascending seq."""
        limit = limit or min(100, max_page)
        if limit > max_page:
            return _error(400, "invalid_request", f"limit must be at most {max_page}")
        found = await store_getter(request).query(filters.query(enterprise_id, after, limit + 1))
        page = found[:limit]
        next_cursor = page[-1].seq if len(found) > limit else None
        return JSONResponse({"records": [r.to_dict() for r in page], "next_cursor": next_cursor})

    @router.get("/e/{enterprise_id}/access")
    async def access(
        request: Request,
        enterprise_id: str,
        client_id: Annotated[str, Query(min_length=1, description="the app (OIDC client id)")],
        device_id: Annotated[str, Query(min_length=1)],
        at: Annotated[datetime, Query(description="the moment asked about (ISO 8601)")],
        principal: AdminPrincipal = auditor,
    ) -> JSONResponse:
        """Who had access to the app on the device at that time: users, sessions, intervals, evidence."""
        found = await find_access(store_getter(request), enterprise_id, device_id, client_id, at)
        return JSONResponse(
            {
                "client_id": client_id,
                "device_id": device_id,
                "at": format_time(at),
                "access": [a.to_dict() for a in found],
            }
        )

    @router.get("/e/{enterprise_id}/gaps")
    async def gaps(request: Request, enterprise_id: str, principal: AdminPrincipal = auditor) -> JSONResponse:
        """Gaps in device-session sequences (this enterprise) and in partition offsets (any enterprise:
        a missing offset may have held anyone's event, and the report names no tenant data)."""
        report = await store_getter(request).gaps(enterprise_id)
        return JSONResponse(
            {
                "sequence_gaps": [asdict(g) for g in report.sequence_gaps],
                "offset_gaps": [asdict(g) for g in report.offset_gaps],
            }
        )

    @router.get("/e/{enterprise_id}/verification")
    async def verification(request: Request, enterprise_id: str, principal: AdminPrincipal = auditor) -> JSONResponse:
        """The `verify` command's verdict, computed now on a reader thread."""
        verdict = await store_getter(request).with_chain(lambda log: verify_log(log, checkpoint_key))
        body = {k: v for k, v in asdict(verdict).items() if k != "broken_event_id"}
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    @router.get("/e/{enterprise_id}/export")
    async def export(
        request: Request,
        enterprise_id: str,
        filters: Annotated[Filters, Depends()],
        format: Literal["jsonl", "csv"] = "jsonl",
        principal: AdminPrincipal = auditor,
    ) -> StreamingResponse:
        """Every matching record, streamed in batches (never the whole log in memory)."""
        store = store_getter(request)
        first = filters.query(enterprise_id, 0, export_batch)

        async def pages() -> AsyncIterator[list[AuditRecord]]:
            query = first
            while True:
                batch = await store.query(query)
                if not batch:
                    return
                yield batch
                if len(batch) < query.limit:
                    return
                query = replace(query, after_seq=batch[-1].seq)

        async def jsonl() -> AsyncIterator[bytes]:
            async for batch in pages():
                yield "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in batch).encode()

        async def csv_body() -> AsyncIterator[bytes]:
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(CSV_COLUMNS)
            yield buffer.getvalue().encode()
            async for batch in pages():
                buffer.seek(0)
                buffer.truncate()
                writer.writerows(_csv_row(r) for r in batch)
                yield buffer.getvalue().encode()

        safe = "".join(ch for ch in enterprise_id if ch.isalnum() or ch in "-_.")[:64]
        name = f"audit-{safe}.{format}"
        headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
        if format == "csv":
            return StreamingResponse(csv_body(), media_type="text/csv; charset=utf-8", headers=headers)
        return StreamingResponse(jsonl(), media_type="application/x-ndjson", headers=headers)

    return router
