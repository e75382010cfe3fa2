"""SSO application profiles: the Epic Rover template, redirect-URI rules, IdP metadata, client
credentials (generated and shown once, or supplied by the RP) — every change announced on
lanyard.app-profiles.v1."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from lanyard.contracts import Subject
from lanyard.contracts.events import (
    AppProfileDeleted,
    AppProfileDeletedPayload,
    AppProfileUpserted,
    AppProfileUpsertedPayload,
    ClientSecretRotated,
    ClientSecretRotatedPayload,
)
from lanyard.contracts.events import ClaimMapping as ClaimMappingModel
from lanyard.idp.directory.domain import (
    DEFAULT_CLAIMS,
    DEFAULT_ID_TOKEN_ALG,
    PRODUCER,
    SIGNING_ALGS,
    AppProfile,
    Client,
    Invalid,
    InvalidUri,
    NotFound,
    rp_client_id_problem,
    rp_secret_problem,
    validate_backchannel_uri,
    validate_redirect_uri,
)
from lanyard.idp.directory.ports import (
    ProfileStore,
    Publisher,
)
from lanyard.idp.web import endpoints
from lanyard.runtime.logging import get_logger
from lanyard.runtime.tokens import (
    issuer_for,
)

log = get_logger("lanyard.idp.directory.profiles")


CLIENT_TYPE_REASONS: dict[str, str] = {
    "confidential": (
        "the seed: Generate Client credentials creates a Client ID and Client secret that you give to "
        "your organization's Epic resource; PKCE (S256) is still required, so a stolen code cannot be "
        "redeemed with the secret alone (RFC 9700 §2.1.1)"
    ),
    "public": (
        "a native app on a shared phone cannot keep a secret (RFC 8252 §8.4): a public client with no "
        "secret, identified by its exact redirect URI and protected by PKCE (S256)"
    ),
}
"""Why an admin would choose each kind of client for a native app such as Epic Rover."""

EPIC_ROVER: dict[str, Any] = {
    "profile_name": "Epic Rover",
    "display_name": "Rover",
    "redirect_uris": ["com.epic.rover.oidc://callback", "https://mobile.epic.com/rover/OIDC/redirect/"],
    "post_logout_redirect_uris": [],
    "client_type": "confidential",  # the seed: "A Client ID and Client secret are created"
    "require_pkce": True,
    "claims": list(DEFAULT_CLAIMS),
    "custom_claims": [],
    "backchannel_logout_uri": None,
    "id_token_signed_response_alg": None,
    "enabled": True,
}
TEMPLATES: dict[str, dict[str, Any]] = {"epic-rover": EPIC_ROVER}


def template_view(name: str) -> dict[str, Any]:
    """What "Add App Profile" pre-fills from a template, and the client types an admin may choose
    instead, each with its reason."""
    body = TEMPLATES[name]
    choices = [
        {"client_type": kind, "default": kind == body["client_type"], "reason": CLIENT_TYPE_REASONS[kind]}
        for kind in ("confidential", "public")
    ]
    return {"template": name, **body, "client_type_choices": choices}


def check_uris(client: Client) -> None:
    """Validate every URI of a profile; raises Invalid("invalid_redirect_uri")."""
    if not client.redirect_uris:
        raise Invalid("invalid_redirect_uri", "redirect_uris: at least one redirect URI is required")
    # Each refusal names the field and its position and the rule, not the URI itself.
    fields = [("redirect_uris", i, u) for i, u in enumerate(client.redirect_uris)]
    fields += [("post_logout_redirect_uris", i, u) for i, u in enumerate(client.post_logout_redirect_uris)]
    for field, i, uri in fields:
        try:
            validate_redirect_uri(uri)
        except InvalidUri as bad:
            raise Invalid("invalid_redirect_uri", f"{field}[{i}]: {bad.reason}") from None
    if client.backchannel_logout_uri:
        try:
            validate_backchannel_uri(client.backchannel_logout_uri)
        except InvalidUri as bad:
            raise Invalid("invalid_redirect_uri", f"backchannel_logout_uri: {bad.reason}") from None


def check_signing_alg(client: Client) -> None:
    """The ID-token alg a profile registers must be one the enterprise has a key for and
    discovery advertises; raises Invalid("invalid_client_metadata") (RFC 7591 §3.2.2)."""
    alg = client.id_token_signed_response_alg
    # Exact match: JWS alg names are case-sensitive (RFC 7515 §4.1.1), and "none" or an HMAC alg
    # would let anyone holding the client secret (or nobody at all) mint ID tokens.
    if alg is not None and alg not in SIGNING_ALGS:
        allowed = ", ".join(SIGNING_ALGS)
        raise Invalid(
            "invalid_client_metadata",
            f"id_token_signed_response_alg: must be one of {allowed}, "
            f"or absent for the IdP's default ({DEFAULT_ID_TOKEN_ALG})",
        )


def metadata(public_base_url: str, eid: str, client_id: str) -> dict[str, str]:
    """ "View IdP metadata": the issuer, its discovery URL and every endpoint."""
    issuer = issuer_for(public_base_url, eid)
    return {
        "client_id": client_id,
        "issuer": issuer,
        "discovery_url": f"{issuer}/.well-known/openid-configuration",
        **endpoints(issuer),
    }


def profile_upserted(profile: AppProfile, actor: str) -> AppProfileUpserted:
    c = profile.client
    payload = AppProfileUpsertedPayload(
        client_id=c.client_id,
        profile_name=c.profile_name,
        display_name=c.display_name,
        client_type=c.client_type,
        redirect_uris=c.redirect_uris,
        post_logout_redirect_uris=c.post_logout_redirect_uris,
        backchannel_logout_uri=c.backchannel_logout_uri,
        scopes=c.scopes,
        custom_claims=tuple(ClaimMappingModel(claim=m.claim, source=m.source) for m in c.custom_claims),
        enabled=c.enabled,
        template=profile.template,
        require_pkce=c.pkce_required,
        credentials_source=profile.credentials_source or "generated",
        id_token_signed_response_alg=c.id_token_signed_response_alg,
    )
    return AppProfileUpserted(
        enterprise_id=c.enterprise_id,
        producer=PRODUCER,
        actor=actor,
        subject=Subject(client_id=c.client_id),
        payload=payload,
    )


@dataclass(frozen=True)
class Credentials:
    """Shown once. `client_secret` is None for public clients."""

    client_id: str
    client_secret: str | None
    previous_secret_valid_until: float | None = None


class ProfileService:
    """SSO application profiles; every change announced on lanyard.app-profiles.v1."""

    def __init__(self, store: ProfileStore, publisher: Publisher, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._pub = publisher
        self._clock = clock

    async def get(self, eid: str, client_id: str) -> AppProfile:
        profile = await self._store.get_profile(eid, client_id)
        if profile is None:
            raise NotFound("no such app profile")
        return profile

    async def save(self, profile: AppProfile, actor: str) -> AppProfile:
        check_uris(profile.client)
        check_signing_alg(profile.client)
        event = profile_upserted(profile, actor)
        await self._store.save_profile(profile, event)
        await self._pub.publish(event)
        return profile

    async def delete(self, eid: str, client_id: str, actor: str) -> None:
        event = AppProfileDeleted(
            enterprise_id=eid,
            producer=PRODUCER,
            actor=actor,
            subject=Subject(client_id=client_id),
            payload=AppProfileDeletedPayload(client_id=client_id),
        )
        if not await self._store.delete_profile(eid, client_id, event):
            raise NotFound("no such app profile")
        await self._pub.publish(event)

    async def register_rp_credentials(self, profile: AppProfile, secret: str, actor: str) -> AppProfile:
        """Web App Login Configuration: a confidential profile whose client id and secret the RP
        chose. Same redirect-URI rules as any profile; the secret must be strong, is stored only
        as a hash and never shown again; a client id already taken is refused (Conflict)."""
        c = profile.client
        if c.client_type != "confidential":
            raise Invalid("invalid_request", "RP-supplied credentials make a confidential client")
        problem = rp_client_id_problem(c.client_id)
        if problem:
            raise Invalid("invalid_client_id", problem)
        weak = rp_secret_problem(secret, c.client_id)
        if weak:
            raise Invalid("weak_client_secret", f"the client secret is refused: {weak}")
        check_uris(c)
        check_signing_alg(c)
        profile = replace(profile, has_secret=True, credentials_source="rp_supplied")
        event = profile_upserted(profile, actor)
        await self._store.create_profile(profile, secret, event)
        await self._pub.publish(event)
        log.info("RP credentials registered", enterprise_id=c.enterprise_id, client_id=c.client_id)
        return profile

    async def replace_rp_secret(
        self, eid: str, client_id: str, secret: str, actor: str, grace_s: int = 0
    ) -> float | None:
        """The RP changed its secret: store the new one's hash (the old one works `grace_s` more)."""
        profile = await self.get(eid, client_id)
        if profile.credentials_source != "rp_supplied":
            raise Invalid(
                "generated_credentials", "this profile's secret is Lanyard's: rotate it with credentials/rotate"
            )
        weak = rp_secret_problem(secret, client_id)
        if weak:
            raise Invalid("weak_client_secret", f"the client secret is refused: {weak}")
        return await self._store_secret(eid, client_id, secret, actor, True, grace_s)

    async def _store_secret(
        self, eid: str, client_id: str, secret: str, actor: str, rotate: bool, grace_s: int
    ) -> float | None:
        until = self._clock() + grace_s if rotate and grace_s > 0 else None
        event = ClientSecretRotated(
            enterprise_id=eid,
            producer=PRODUCER,
            actor=actor,
            subject=Subject(client_id=client_id),
            payload=ClientSecretRotatedPayload(
                client_id=client_id,
                previous_secret_valid_until=datetime.fromtimestamp(until, UTC) if until else None,
            ),
        )
        await self._store.set_secret(eid, client_id, secret, until, event)
        await self._pub.publish(event)
        log.info("client secret issued", enterprise_id=eid, client_id=client_id, rotated=rotate)
        return until

    async def issue_credentials(
        self, eid: str, client_id: str, actor: str, rotate: bool, grace_s: int = 0
    ) -> Credentials:
        """First issue (rotate=False; refused once a secret exists) or rotation of the secret."""
        profile = await self.get(eid, client_id)
        if profile.client.is_public:
            if rotate:
                raise Invalid("invalid_request", "public clients have no secret")
            return Credentials(client_id, None)
        if profile.credentials_source == "rp_supplied":
            raise Invalid(
                "rp_supplied_credentials",
                "the RP chose this client's secret: enter its new one at web-app-logins/{client_id}/secret",
            )
        if profile.has_secret and not rotate:
            raise Invalid("credentials_already_issued", "the secret was shown once already; rotate it instead")
        if rotate and not profile.has_secret:
            raise Invalid("invalid_request", "no secret to rotate; generate credentials first")
        secret = secrets.token_urlsafe(32)  # 256 bits
        until = await self._store_secret(eid, client_id, secret, actor, rotate, grace_s)
        return Credentials(client_id, secret, until)
