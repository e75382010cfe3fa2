"""The MDM export: an Apple configuration profile carrying the Extensible SSO payload that points
the Locker SSO extension (type Redirect) at the enterprise's issuer. Pure: builds bytes."""

from __future__ import annotations

import plistlib
import uuid

CONTENT_TYPE = "application/x-apple-aspen-config"
_NAMESPACE = uuid.UUID("6f1e2a0c-8a4b-4c55-9d0e-1a7c2b9f0e11")


def sso_extension_profile(enterprise_id: str, issuer: str, extension_id: str, team_id: str) -> bytes:
    """The `.mobileconfig` (plist XML). Identifiers and UUIDs are derived from the enterprise and
    issuer, so re-exporting gives the same profile and an MDM updates it instead of adding one."""
    payload_uuid = str(uuid.uuid5(_NAMESPACE, f"{enterprise_id}|{issuer}|sso"))
    profile_uuid = str(uuid.uuid5(_NAMESPACE, f"{enterprise_id}|{issuer}|profile"))
    base_id = f"{extension_id}.{enterprise_id}"
    sso_payload = {
        "PayloadType": "com.apple.extensiblesso",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{base_id}.extensiblesso",
        "PayloadUUID": payload_uuid,
        "PayloadDisplayName": "Lanyard single sign-on",
        "ExtensionIdentifier": extension_id,
        "TeamIdentifier": team_id,
        "Type": "Redirect",
        "URLs": [issuer],
    }
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": base_id,
        "PayloadUUID": profile_uuid,
        "PayloadDisplayName": f"Lanyard SSO extension ({enterprise_id})",
        # Apple hands a Redirect extension the URLs' requests only if their host vouches for it:
        # the gateway's /.well-known/apple-app-site-association lists TeamIdentifier.ExtensionIdentifier.
        "PayloadDescription": (
            "Lets the Locker SSO extension sign users in to OpenID Connect apps. The issuer's host serves "
            f"/.well-known/apple-app-site-association listing {team_id}.{extension_id} under authsrv."
        ),
        "PayloadScope": "System",
        "PayloadContent": [sso_payload],
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML)
