"""JSON forms of the IdP's records as they are stored in Redis (and kept by the in-memory fakes)."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

from lanyard.idp.directory.domain import (
    AppProfile,
    ClaimMapping,
    Client,
    Enterprise,
    Group,
    KeyEntry,
    KeyRing,
    OrgSettings,
    User,
)


def dump_user(user: User) -> str:
    return json.dumps(asdict(user))


def load_user(raw: str) -> User:
    d = json.loads(raw)
    d["groups"] = tuple(d.get("groups", ()))
    d["roles"] = tuple(d.get("roles", ("user",)))
    d["attributes"] = dict(d.get("attributes") or {})
    return User(**d)


def dump_group(group: Group) -> str:
    return json.dumps(asdict(group))


def load_group(raw: str) -> Group:
    return Group(**json.loads(raw))


def dump_enterprise(enterprise: Enterprise) -> str:
    return json.dumps(
        {
            "enterprise_id": enterprise.enterprise_id,
            "name": enterprise.name,
            "created_at": enterprise.created_at.isoformat(),
        }
    )


def load_enterprise(raw: str) -> Enterprise:
    d = json.loads(raw)
    return Enterprise(d["enterprise_id"], d["name"], datetime.fromisoformat(d["created_at"]))


def dump_profile(profile: AppProfile) -> str:
    return json.dumps(
        {
            "client": asdict(profile.client),
            "template": profile.template,
            "has_secret": profile.has_secret,
            "credentials_source": profile.credentials_source,
        }
    )


def load_profile(raw: str) -> AppProfile:
    d = json.loads(raw)
    c: dict[str, Any] = d["client"]
    client = Client(
        enterprise_id=c["enterprise_id"],
        client_id=c["client_id"],
        profile_name=c["profile_name"],
        display_name=c["display_name"],
        client_type=c["client_type"],
        redirect_uris=tuple(c["redirect_uris"]),
        post_logout_redirect_uris=tuple(c.get("post_logout_redirect_uris", ())),
        backchannel_logout_uri=c.get("backchannel_logout_uri"),
        scopes=tuple(c.get("scopes", ())),
        custom_claims=tuple(ClaimMapping(**m) for m in c.get("custom_claims", ())),
        enabled=bool(c.get("enabled", True)),
        claims=tuple(c.get("claims", ())),
        require_pkce=bool(c.get("require_pkce", False)),
        # Stored before the field existed: absent, which is the IdP's default alg.
        id_token_signed_response_alg=c.get("id_token_signed_response_alg"),
    )
    return AppProfile(
        client=client,
        template=d.get("template"),
        has_secret=bool(d.get("has_secret")),
        credentials_source=d.get("credentials_source"),
    )


def dump_ring(ring: KeyRing) -> dict[str, Any]:
    return {"version": ring.version, "entries": [asdict(e) for e in ring.entries]}


def load_ring(d: dict[str, Any]) -> KeyRing:
    return KeyRing(int(d["version"]), tuple(KeyEntry(**e) for e in d["entries"]))


def dump_org_settings(settings: OrgSettings) -> dict[str, Any]:
    return asdict(settings)


def load_org_settings(d: dict[str, Any]) -> OrgSettings:
    known = OrgSettings.__dataclass_fields__
    return OrgSettings(**{k: v for k, v in d.items() if k in known})
