"""Which claims a user's tokens and UserInfo release: by scope, by the app profile, by request.

Scopes map to claims as OIDC Core §5.4 says for `profile` and `email` (we keep no phone numbers
or postal addresses, so `phone` and `address` are not offered). The app profile's claim list
(`Client.claims`, default `DEFAULT_CLAIMS`) caps what an app ever sees; its custom claims are
read from user attributes. The `claims` request parameter (§5.5) may ask for individual claims
in the ID token or UserInfo; we release those the profile allows, essential or not (a missing
essential claim is simply absent, which §5.5.1 permits).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from lanyard.idp.directory.ports import DEFAULT_CLAIMS, Client, User

SCOPES_SUPPORTED: tuple[str, ...] = ("openid", "profile", "email", "offline_access")
SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "profile": ("name", "preferred_username", "employee_id", "groups"),
    "email": ("email",),
}
STANDARD_CLAIMS: tuple[str, ...] = (
    "sub",
    "name",
    "preferred_username",
    "email",
    "employee_id",
    "groups",
)
TOKEN_CLAIMS: tuple[str, ...] = (
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "sid",
    "azp",
    "at_hash",
)


def user_claim(user: User, name: str) -> Any:
    """The value of a standard claim for `user`, or None."""
    match name:
        case "sub":
            return user.user_id
        case "name":
            return user.display_name
        case "preferred_username":
            return user.username
        case "email":
            return user.email
        case "employee_id":
            return user.employee_id
        case "groups":
            return list(user.groups)
    return None


def released_claims(
    user: User, client: Client, scope: tuple[str, ...], requested: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The user claims `client` gets for `scope` plus individually `requested` ones (a `claims`
    parameter member), limited to the profile's claim list, plus the profile's custom claims."""
    allowed = set(getattr(client, "claims", DEFAULT_CLAIMS)) | {"sub"}
    wanted: list[str] = ["sub"]
    for s in scope:
        wanted += SCOPE_CLAIMS.get(s, ())
    wanted += [name for name in (requested or {}) if name in STANDARD_CLAIMS]
    out: dict[str, Any] = {}
    for name in wanted:
        if name in allowed and name not in out:
            value = user_claim(user, name)
            if value not in (None, "", []):
                out[name] = value
    for mapping in client.custom_claims:
        value = user.attributes.get(mapping.source)
        if value is None:
            value = user_claim(user, mapping.source)
        if value not in (None, "") and mapping.claim not in TOKEN_CLAIMS:
            out[mapping.claim] = value
    return out


def claims_supported() -> list[str]:
    """Every claim name discovery advertises."""
    return sorted(set(STANDARD_CLAIMS) | set(TOKEN_CLAIMS) | {"iss"})


# ---------------------------------------------------------------------------------- grants


@dataclass(frozen=True)
class Grant:
    """One authorization and what was issued from it (the refresh-token family)."""

    gid: str
    state: str
    client_id: str
    user_id: str
    sid: str
    dsid: str | None
    scope: tuple[str, ...]
    auth_time: int
    amr: tuple[str, ...]
    acr: str
    nonce: str | None
    claims: dict[str, Any]

    def to_fields(self) -> dict[str, str]:
        """The grant hash's fields as the authorization endpoint writes them (`gid` is the key,
        `state` is set by the store); `from_fields` reads them back."""
        return {
            "client_id": self.client_id,
            "user_id": self.user_id,
            "sid": self.sid,
            "dsid": self.dsid or "",
            "scope": " ".join(self.scope),
            "auth_time": str(self.auth_time),
            "amr": " ".join(self.amr),
            "acr": self.acr,
            "nonce": self.nonce or "",
            "claims": json.dumps(self.claims),
        }

    @classmethod
    def from_fields(cls, gid: str, f: dict[str, str]) -> Grant:
        """Parse a grant hash."""
        return cls(
            gid=gid,
            state=f.get("state", ""),
            client_id=f.get("client_id", ""),
            user_id=f.get("user_id", ""),
            sid=f.get("sid", ""),
            dsid=f.get("dsid") or None,
            scope=tuple(f.get("scope", "").split()),
            auth_time=int(f.get("auth_time", "0")),
            amr=tuple(f.get("amr", "").split()),
            acr=f.get("acr", ""),
            nonce=f.get("nonce") or None,
            claims=json.loads(f.get("claims") or "{}"),
        )


@dataclass(frozen=True)
class RevokedGrant:
    """A grant as a session revocation left it: `by_this` when this revocation (or an earlier
    attempt of the same one) revoked it, so its announcement is this revocation's to make;
    `revoked_ms` when that happened."""

    previous_state: str
    grant: Grant
    by_this: bool
    revoked_ms: int
