"""Protocol errors, one class per wire code (as authlib names them), and how each is rendered.

Each carries the RFC 6749 §5.2 / OIDC Core §3.1.2.6 `error` code, an HTTP status for direct
(token, revocation, introspection, UserInfo) responses, and a description restricted to the
characters RFC 6749 allows in `error_description` (%x20-21 / %x23-5B / %x5D-7E: no CR, LF, TAB,
quote or backslash), so nothing we emit can split a header or break a redirect.
"""

from __future__ import annotations

import re

from lanyard.runtime.errors import error_body

_UNSAFE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


def safe_description(text: str) -> str:
    """`text` with every character RFC 6749 forbids in error_description replaced by a space."""
    return _UNSAFE.sub(" ", text)[:200]


class OAuthError(Exception):
    """Base: `error` is the wire code; `status_code` applies to direct responses only."""

    error = "server_error"
    status_code = 400

    def __init__(self, description: str = "", *, headers: dict[str, str] | None = None) -> None:
        super().__init__(description or self.error)
        self.description = safe_description(description)
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        """The JSON body of a direct error response."""
        # The shared shape (`lanyard.runtime.errors`); RFC 6749 §5.2 lets a bare code go without one.
        return error_body(self.error, self.description) if self.description else {"error": self.error}


def _error(code: str, status: int = 400) -> type[OAuthError]:
    return type(code, (OAuthError,), {"error": code, "status_code": status, "__doc__": f"Wire code `{code}`."})


invalid_request = _error("invalid_request")
invalid_client = _error("invalid_client", 401)
invalid_grant = _error("invalid_grant")
unauthorized_client = _error("unauthorized_client")
unsupported_grant_type = _error("unsupported_grant_type")
unsupported_response_type = _error("unsupported_response_type")
unsupported_token_type = _error("unsupported_token_type")
invalid_scope = _error("invalid_scope")
access_denied = _error("access_denied", 403)
login_required = _error("login_required")
interaction_required = _error("interaction_required")
consent_required = _error("consent_required")
request_not_supported = _error("request_not_supported")
request_uri_not_supported = _error("request_uri_not_supported")
# Not a token-endpoint code in RFC 6749; we answer a stale device-session view with 503 and this
# code (DESIGN §4 fail-closed), which clients treat as retryable.
temporarily_unavailable = _error("temporarily_unavailable", 503)
invalid_token = _error("invalid_token", 401)
insufficient_scope = _error("insufficient_scope", 403)


class ErrorPage(Exception):
    """An authorization/logout request we must not redirect (bad client or redirect URI):
    shown as an HTML error page, never as a redirect (RFC 6749 §4.1.2.1)."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.message = safe_description(message)
        self.status_code = status_code
