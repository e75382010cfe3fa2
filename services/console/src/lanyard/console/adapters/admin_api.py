"""The admin HTTP APIs, called through the gateway with the signed-in admin's bearer token.

The same endpoints the CLI and the test harness use (IdP `/e/{eid}/admin/...`, policy
`/policy/e/{eid}/...`, session `/session/e/{eid}/...`, audit `/audit/e/{eid}/...`); the console
adds no rule of its own: whatever an API refuses reaches the admin as `ApiError`, with the
service's own error code and description.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

POLICY_COLLECTIONS = {"policies": "user-policies", "deployments": "app-deployments", "licences": "licences"}
"""The policy service's configuration collections, by the console's name for them."""


class ApiError(Exception):
    """An admin API that did not answer 2xx: its status and its own error code and description."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        error, description = "error", response.reason_phrase or "the request failed"
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            detail = body.get("detail")
            if isinstance(detail, dict):  # FastAPI's HTTPException shape (require_roles)
                body = detail
            elif isinstance(detail, list) and detail:  # request validation errors
                first = detail[0] if isinstance(detail[0], dict) else {}
                where = ".".join(str(p) for p in first.get("loc", ())[1:])
                body = {"error": "invalid_request", "error_description": f"{where}: {first.get('msg', 'invalid')}"}
            error = str(body.get("error") or error)
            description = str(body.get("error_description") or body.get("detail") or description)
        return cls(response.status_code, error, description[:500])


def _seg(value: str) -> str:
    """A path segment from user input: percent-encoded, so it can never change the path."""
    return quote(value, safe="")


class AdminApi:
    """One HTTP client (connection pool) for every admin API; `as_admin` binds a caller."""

    def __init__(self, base_url: str, timeout_s: float = 10.0, transport: httpx.AsyncBaseTransport | None = None):
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s, transport=transport)

    def as_admin(self, enterprise_id: str, token: str) -> Admin:
        """The APIs as this admin of this enterprise."""
        return Admin(self._http, enterprise_id, token)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()


@dataclass
class Download:
    """A file an API serves (MDM profile, audit export) as the browser should receive it."""

    chunks: AsyncIterator[bytes]
    media_type: str
    disposition: str | None


@dataclass
class Admin:
    """The admin APIs of one enterprise, called as one admin."""

    http: httpx.AsyncClient
    enterprise_id: str
    token: str

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One API call; the JSON answer (None for 204) or ApiError."""
        try:
            response = await self.http.request(method, path, headers=self._headers(), **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(503, "unavailable", f"the service did not answer ({type(exc).__name__})") from None
        if response.status_code >= 300:
            raise ApiError.from_response(response)
        return response.json() if response.content else None

    @property
    def _idp(self) -> str:
        return f"/e/{_seg(self.enterprise_id)}/admin"

    @property
    def _policy(self) -> str:
        return f"/policy/e/{_seg(self.enterprise_id)}"

    @property
    def _session(self) -> str:
        return f"/session/e/{_seg(self.enterprise_id)}"

    @property
    def _audit(self) -> str:
        return f"/audit/e/{_seg(self.enterprise_id)}"

    # ------------------------------------------------------------------ IdP: directory
    async def users(self) -> list[dict[str, Any]]:
        return (await self.call("GET", f"{self._idp}/users"))["users"]

    async def user(self, user_id: str) -> dict[str, Any]:
        return await self.call("GET", f"{self._idp}/users/{_seg(user_id)}")

    async def create_user(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.call("POST", f"{self._idp}/users", json=dict(body))

    async def update_user(self, user_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.call("PATCH", f"{self._idp}/users/{_seg(user_id)}", json=dict(body))

    async def delete_user(self, user_id: str) -> None:
        await self.call("DELETE", f"{self._idp}/users/{_seg(user_id)}")

    async def set_password(self, user_id: str, password: str) -> None:
        await self.call("PUT", f"{self._idp}/users/{_seg(user_id)}/password", json={"password": password})

    async def enroll_totp(self, user_id: str) -> dict[str, Any]:
        return await self.call("POST", f"{self._idp}/users/{_seg(user_id)}/totp")

    async def remove_totp(self, user_id: str) -> dict[str, Any]:
        return await self.call("DELETE", f"{self._idp}/users/{_seg(user_id)}/totp")

    async def groups(self) -> list[dict[str, Any]]:
        return (await self.call("GET", f"{self._idp}/groups"))["groups"]

    async def create_group(self, name: str, description: str | None) -> dict[str, Any]:
        return await self.call("POST", f"{self._idp}/groups", json={"name": name, "description": description})

    # ------------------------------------------------------------------ IdP: app profiles
    async def app_profiles(self) -> list[dict[str, Any]]:
        return (await self.call("GET", f"{self._idp}/app-profiles"))["app_profiles"]

    async def template(self, name: str) -> dict[str, Any]:
        return await self.call("GET", f"{self._idp}/app-profiles/templates/{_seg(name)}")

    async def create_profile(self, body: Mapping[str, Any], template: str | None = None) -> dict[str, Any]:
        params = {"template": template} if template else None
        return await self.call("POST", f"{self._idp}/app-profiles", json=dict(body), params=params)

    async def profile(self, client_id: str) -> dict[str, Any]:
        return await self.call("GET", f"{self._idp}/app-profiles/{_seg(client_id)}")

    async def update_profile(self, client_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.call("PATCH", f"{self._idp}/app-profiles/{_seg(client_id)}", json=dict(body))

    async def delete_profile(self, client_id: str) -> None:
        await self.call("DELETE", f"{self._idp}/app-profiles/{_seg(client_id)}")

    async def issue_credentials(self, client_id: str) -> dict[str, Any]:
        return await self.call("POST", f"{self._idp}/app-profiles/{_seg(client_id)}/credentials")

    async def rotate_credentials(self, client_id: str, grace_period_s: int = 0) -> dict[str, Any]:
        path = f"{self._idp}/app-profiles/{_seg(client_id)}/credentials/rotate"
        return await self.call("POST", path, json={"grace_period_s": grace_period_s})

    async def idp_metadata(self, client_id: str) -> dict[str, Any]:
        return await self.call("GET", f"{self._idp}/app-profiles/{_seg(client_id)}/metadata")

    async def mobileconfig(self) -> tuple[bytes, str, str | None]:
        response = await self.http.get(f"{self._idp}/sso-extension.mobileconfig", headers=self._headers())
        if response.status_code >= 300:
            raise ApiError.from_response(response)
        return response.content, response.headers.get("content-type", ""), response.headers.get("content-disposition")

    # ------------------------------------------------------------------ policy
    async def items(self, collection: str) -> list[dict[str, Any]]:
        return (await self.call("GET", f"{self._policy}/{POLICY_COLLECTIONS[collection]}"))["items"]

    async def item(self, collection: str, item_id: str) -> dict[str, Any]:
        return await self.call("GET", f"{self._policy}/{POLICY_COLLECTIONS[collection]}/{_seg(item_id)}")

    async def put_item(self, collection: str, item_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        path = f"{self._policy}/{POLICY_COLLECTIONS[collection]}/{_seg(item_id)}"
        return await self.call("PUT", path, json=dict(body))

    async def delete_item(self, collection: str, item_id: str) -> None:
        await self.call("DELETE", f"{self._policy}/{POLICY_COLLECTIONS[collection]}/{_seg(item_id)}")

    async def seats(self) -> dict[str, Any]:
        return await self.call("GET", f"{self._policy}/seats")

    async def org_settings(self) -> dict[str, Any]:
        return await self.call("GET", f"{self._policy}/org-settings")

    async def put_org_settings(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.call("PUT", f"{self._policy}/org-settings", json=dict(body))

    async def cloud(self) -> dict[str, Any]:
        return await self.call("GET", f"{self._policy}/cloud-connection")

    async def provisioning_code(self) -> dict[str, Any]:
        return await self.call("POST", f"{self._policy}/cloud-connection/provisioning-code")

    async def readiness(self) -> dict[str, Any]:
        return await self.call("GET", f"{self._policy}/readiness")

    async def explain(self, user_id: str, client_id: str | None) -> dict[str, Any]:
        params = {"client_id": client_id} if client_id else None
        return await self.call("GET", f"{self._policy}/readiness/users/{_seg(user_id)}", params=params)

    # ------------------------------------------------------------------ session
    async def device_sessions(self) -> list[dict[str, Any]]:
        return (await self.call("GET", f"{self._session}/device-sessions"))["device_sessions"]

    async def force_checkin(self, handle: str) -> dict[str, Any]:
        return await self.call("POST", f"{self._session}/device-sessions/{_seg(handle)}/force-checkin")

    # ------------------------------------------------------------------ audit
    async def audit_records(self, filters: Mapping[str, Any], after: int = 0, limit: int = 50) -> dict[str, Any]:
        params = {**filters, "after": after, "limit": limit}
        return await self.call("GET", f"{self._audit}/records", params=params)

    async def audit_access(self, client_id: str, device_id: str, at: str) -> dict[str, Any]:
        params = {"client_id": client_id, "device_id": device_id, "at": at}
        return await self.call("GET", f"{self._audit}/access", params=params)

    async def audit_verification(self) -> dict[str, Any]:
        return await self.call("GET", f"{self._audit}/verification")

    async def audit_export(self, filters: Mapping[str, Any], fmt: str) -> Download:
        """The export streamed through (never held whole in the console's memory)."""
        request = self.http.build_request(
            "GET", f"{self._audit}/export", params={**filters, "format": fmt}, headers=self._headers()
        )
        response = await self.http.send(request, stream=True)
        if response.status_code >= 300:
            await response.aread()
            await response.aclose()
            raise ApiError.from_response(response)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_bytes():
                    yield chunk
            finally:
                await response.aclose()

        return Download(chunks(), response.headers.get("content-type", ""), response.headers.get("content-disposition"))
