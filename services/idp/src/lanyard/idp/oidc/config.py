"""Tunables of the OIDC provider: lifetimes, algorithms, limits.

Kept apart from `IdpSettings` (owned by the directory side) so the protocol can be built and
tested with its ports alone; `create_app` passes one in (defaults are the production values).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OidcConfig:
    """Everything the protocol side decides that an operator may want to change."""

    public_base_url: str = "http://127.0.0.1:8480"
    code_ttl_s: int = 60
    code_replay_window_s: int = 600
    access_token_ttl_s: int = 300
    id_token_ttl_s: int = 300
    refresh_token_ttl_s: int = 12 * 3600
    interaction_ttl_s: int = 600
    id_token_alg: str = "RS256"
    # ES256 signs ~4x faster than RS256 here (0.19 ms vs 0.81 ms); RFC 9068 only requires RS256
    # *support*, which our JWKS and resource servers have.
    access_token_alg: str = "ES256"
    # OIDC Core §12.2: a refresh response "might not contain an id_token". Off by default: an RS256
    # signature per refresh would halve refresh throughput, and RPs keep the first ID token.
    id_token_on_refresh: bool = False
    resource_audience: str | None = None
    browser_cookie: str = "lanyard_idp_session"
    max_query_bytes: int = 8192
    max_param_chars: int = 2048
    enterprise_cache_s: float = 30.0
    client_cache_s: float = 5.0
    keys_cache_s: float = 5.0
    # The admin console (`/console/` on the same origin) as a built-in public client of every
    # enterprise; its access tokens may carry the admin audience and roles (domain.ADMIN_SCOPE).
    console_client: bool = True
    # In-process caches are keyed by what requests name (client ids, secrets): each holds at most
    # this many entries, least recently used evicted first, so made-up ids cannot grow memory.
    cache_entries: int = 10_000

    def audience(self, issuer: str) -> str:
        """The `aud` of our access tokens: a configured resource id, else our UserInfo endpoint."""
        return self.resource_audience or f"{issuer}/userinfo"
