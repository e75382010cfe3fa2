"""What Apple's Redirect SSO extension needs from the server, for every enterprise one host serves.
Pure: builds bytes and dicts.

- The MDM profile: a `.mobileconfig` with one `com.apple.extensiblesso` payload (type Redirect)
  whose URL is the host's **origin** (`https://host`), as in the seed's
  `https://oidc.idp.cloud.imprivata.com`, not an issuer path. One host serves every enterprise
  under `/e/{enterprise_id}`; iOS requires the URLs of all installed Extensible SSO payloads to be
  unique and matches them as prefixes, so one payload per host is what a device can carry (and a
  per-issuer prefix such as `/e/st-mungos` would also match `/e/st-mungos-north`). The extension
  reads the enterprise from the path of the authorization request. Identifiers and UUIDs are
  derived from the origin only, so whichever enterprise's admin exports it, the profile is the
  same one and an MDM updates it instead of adding a second.
- The associated-domain file (`/.well-known/apple-app-site-association`, `authsrv`): iOS trusts a
  Redirect extension for a host only when the host lists the extension's app there. The gateway
  serves it (`deploy/gateway/gateway.sh` fills in `TeamIdentifier.ExtensionIdentifier`); the
  profile's description names it, so whoever deploys the profile knows the host must serve it.
"""

from __future__ import annotations

import plistlib
import uuid
from urllib.parse import urlsplit

CONTENT_TYPE = "application/x-apple-aspen-config"
_NAMESPACE = uuid.UUID("6f1e2a0c-8a4b-4c55-9d0e-1a7c2b9f0e11")


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of a URL, lower-cased (iOS matches scheme and host case-insensitively)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("not an http(s) URL")
    return f"{parts.scheme}://{parts.netloc}".lower()


def sso_extension_profile(origin: str, extension_id: str, team_id: str) -> bytes:
    """The `.mobileconfig` (plist XML) for every enterprise served at `origin`."""
    host = urlsplit(origin).netloc
    payload_uuid = str(uuid.uuid5(_NAMESPACE, f"{origin}|sso"))
    profile_uuid = str(uuid.uuid5(_NAMESPACE, f"{origin}|profile"))
    base_id = f"{extension_id}.{host}"
    sso_payload = {
        "PayloadType": "com.apple.extensiblesso",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{base_id}.extensiblesso",
        "PayloadUUID": payload_uuid,
        "PayloadDisplayName": "Lanyard single sign-on",
        "ExtensionIdentifier": extension_id,
        "TeamIdentifier": team_id,
        "Type": "Redirect",
        "URLs": [origin],
    }
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": base_id,
        "PayloadUUID": profile_uuid,
        "PayloadDisplayName": f"Lanyard SSO extension ({host})",
        "PayloadDescription": (
            f"Lets the Locker SSO extension sign users in to OpenID Connect apps of every enterprise served by "
            f"{host}. The host serves /.well-known/apple-app-site-association listing {team_id}.{extension_id} "
            "under authsrv."
        ),
        "PayloadScope": "System",
        "PayloadContent": [sso_payload],
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML)
