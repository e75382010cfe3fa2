"""The IdP's domain records and rules: pure, no I/O.

Directory and app-profile records, owned by the directory part of the IdP; the oidc and devices
parts read them through `directory.ports`, which re-exports the records they need.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from urllib.parse import quote, urlencode

Role = Literal["superadmin", "admin", "auditor", "user"]
ClientType = Literal["public", "confidential"]

DEFAULT_CLAIMS: tuple[str, ...] = ("sub", "name", "preferred_username", "email", "employee_id", "groups")
"""The claims every OIDC application profile releases unless an admin changes them."""


@dataclass(frozen=True)
class Enterprise:
    """A tenant. Its issuer is `{public_base}/e/{enterprise_id}`."""

    enterprise_id: str
    name: str
    created_at: datetime


@dataclass(frozen=True)
class User:
    """A directory user as the protocol side sees it (no password hash, no TOTP secret)."""

    enterprise_id: str
    user_id: str
    username: str
    display_name: str
    email: str | None = None
    employee_id: str | None = None
    groups: tuple[str, ...] = ()
    roles: tuple[Role, ...] = ("user",)
    status: Literal["active", "disabled", "locked"] = "active"
    totp_enrolled: bool = False
    attributes: dict[str, str] = field(default_factory=dict)
    badge_id: str | None = None


@dataclass(frozen=True)
class ClaimMapping:
    """A custom claim released in tokens, read from a user attribute."""

    claim: str
    source: str


@dataclass(frozen=True)
class Client:
    """An SSO application profile (an OIDC client)."""

    enterprise_id: str
    client_id: str
    profile_name: str
    display_name: str
    client_type: ClientType
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...] = ()
    backchannel_logout_uri: str | None = None
    scopes: tuple[str, ...] = ("openid", "profile", "email", "offline_access")
    custom_claims: tuple[ClaimMapping, ...] = ()
    enabled: bool = True
    claims: tuple[str, ...] = DEFAULT_CLAIMS
    require_pkce: bool = False
    """PKCE even though the client is confidential (the Epic Rover template: RFC 9700 §2.1.1)."""
    id_token_signed_response_alg: str | None = None
    """The alg its ID tokens are signed with (OIDC Dynamic Client Registration §2): one of
    `SIGNING_ALGS`; None is the IdP's `id_token_alg` (RS256, OIDC Core's default)."""

    @property
    def is_public(self) -> bool:
        """Native apps are public clients (RFC 8252 §8.4): no secret, PKCE required."""
        return self.client_type == "public"

    @property
    def pkce_required(self) -> bool:
        """Every public client, and a confidential one whose profile asks for it."""
        return self.is_public or self.require_pkce


@dataclass(frozen=True)
class OrgSettings:
    """MAM org settings the IdP honours (from lanyard.policy-config.v1)."""

    password_autofill_and_sso: bool = False
    require_second_factor: bool = True


@dataclass(frozen=True)
class BrowserSession:
    """A login at the interactive login page (cookie-bound). `sid` is the OIDC session id."""

    enterprise_id: str
    sid: str
    user_id: str
    auth_time: int
    amr: tuple[str, ...]


# ----------------------------------------------------------------- directory side: pure rules

ADMIN_ROLES: tuple[Role, ...] = ("superadmin", "admin", "auditor")
"""Roles that may hold an admin bearer token (aud lanyard-admin)."""

ALL_ROLES: tuple[Role, ...] = ("superadmin", "admin", "auditor", "user")


def admin_roles(user: User | None) -> list[Role]:
    """The admin roles an admin token of `user` carries: none for a missing or inactive user."""
    if user is None or user.status != "active":
        return []
    return [r for r in user.roles if r in ADMIN_ROLES]


CONSOLE_CLIENT_ID = "lanyard-console"
"""The admin console's client id, the same in every enterprise (a first-party client)."""

ADMIN_SCOPE = "lanyard:admin"
"""The scope that makes an access token an admin token (aud lanyard-admin, `roles`): only the
console client may ask for it, and only users holding an admin role get it."""


def console_client(enterprise_id: str, public_base_url: str) -> Client:
    """The console as an OIDC client of `enterprise_id`: public (PKCE), one exact redirect URI on
    the gateway's own origin. Built in rather than stored: no admin can edit or delete it, and it
    never counts as one of the enterprise's SSO application profiles (readiness, deployments)."""
    base = f"{public_base_url.rstrip('/')}/console"
    return Client(
        enterprise_id=enterprise_id,
        client_id=CONSOLE_CLIENT_ID,
        profile_name="Lanyard admin console",
        display_name="Lanyard admin console",
        client_type="public",
        redirect_uris=(f"{base}/e/{enterprise_id}/callback",),
        post_logout_redirect_uris=(f"{base}/",),
        scopes=("openid", "profile", ADMIN_SCOPE),
        claims=("sub", "name", "preferred_username"),
    )


@dataclass(frozen=True)
class Group:
    """A directory group."""

    enterprise_id: str
    group_id: str
    name: str
    description: str | None = None


CredentialsSource = Literal["generated", "rp_supplied"]


@dataclass(frozen=True)
class AppProfile:
    """The admin's view of an SSO application profile: a `Client` plus bookkeeping.
    `credentials_source` is `rp_supplied` when the RP chose the client id and secret (Web App
    Login Configuration), None (generated by Lanyard) otherwise."""

    client: Client
    template: str | None = None
    has_secret: bool = False
    credentials_source: CredentialsSource | None = None


RESERVED_CLIENT_ID_PREFIXES = ("lanyard", "cli_")
"""Client ids an RP may not choose: Lanyard's own first-party clients and its generated ids."""

RP_CLIENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._~@-]{2,127}$"
"""An RP-chosen client id: URL-safe, no ':' (it would break HTTP Basic client authentication)."""

RP_SECRET_MIN_LENGTH = 32
RP_SECRET_MIN_DISTINCT = 10


def rp_client_id_problem(client_id: str) -> str | None:
    """Why an RP-chosen client id cannot be registered, or None."""
    if not re.match(RP_CLIENT_ID_PATTERN, client_id):
        return "3 to 128 characters: letters, digits and . _ ~ @ - (no ':' or spaces), starting with a letter or digit"
    if client_id.lower().startswith(RESERVED_CLIENT_ID_PREFIXES):
        return f"client ids starting with {' or '.join(RESERVED_CLIENT_ID_PREFIXES)} are reserved for Lanyard"
    return None


def rp_secret_problem(secret: str, client_id: str) -> str | None:
    """Why a client secret the RP generated is too weak to store, or None.

    Secrets are kept as SHA-256 digests, which is sound only for long random values (generated
    ones have 256 bits): a secret an RP generated passes, one a person made up does not. The
    reason never repeats the secret.
    """
    if len(secret) < RP_SECRET_MIN_LENGTH:
        return f"too short: an RP client secret needs at least {RP_SECRET_MIN_LENGTH} characters"
    if len(secret) > 512:
        return "too long: at most 512 characters"
    if not all(0x21 <= ord(c) <= 0x7E for c in secret):
        return "only printable ASCII characters, without spaces"
    if len(set(secret)) < RP_SECRET_MIN_DISTINCT:
        return f"too repetitive: fewer than {RP_SECRET_MIN_DISTINCT} different characters; use the RP's generator"
    if client_id.lower() in secret.lower():
        return "must not contain the client id"
    return None


class InvalidUri(ValueError):
    """A redirect, post-logout or back-channel URI that must not be registered."""

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(f"{reason}: {uri[:200]}")
        self.uri = uri
        self.reason = reason


_LOOPBACK_HOSTS = ("127.0.0.1", "[::1]")


def _split_uri(uri: str) -> tuple[str, str, str, str]:
    """(scheme, authority, path, query) of an absolute URI, by RFC 3986's generic syntax."""
    scheme, sep, rest = uri.partition(":")
    if not sep or not scheme:
        raise InvalidUri(uri, "not an absolute URI")
    if not (scheme[0].isalpha() and all(c.isalnum() or c in "+-." for c in scheme)):
        raise InvalidUri(uri, "malformed scheme")
    if rest.startswith("//"):
        authority, slash, tail = rest[2:].partition("/")
        path_query = slash + tail
    else:
        authority, path_query = "", rest
    path, _, query = path_query.partition("?")
    return scheme.lower(), authority, path, query


def validate_redirect_uri(uri: str) -> str:
    """Check one redirect (or post-logout redirect) URI against RFC 8252 / RFC 9700; returns it.

    Allowed: reverse-DNS private-use schemes (the scheme must contain a dot, e.g.
    `com.epic.rover.oidc://callback`), https (claimed links), and http only on the loopback IP
    literals (127.0.0.1, [::1]; `localhost` is refused as RFC 8252 §8.3 recommends). Never a
    fragment, a wildcard, userinfo, whitespace or control characters.
    """
    if not isinstance(uri, str) or not uri or len(uri) > 2048:
        raise InvalidUri(str(uri), "empty or too long")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in uri):
        raise InvalidUri(uri, "whitespace or control characters")
    if "#" in uri:
        raise InvalidUri(uri, "fragments are not allowed")
    if "*" in uri:
        raise InvalidUri(uri, "wildcards are not allowed")
    scheme, authority, path, _query = _split_uri(uri)
    if "@" in authority:
        raise InvalidUri(uri, "userinfo is not allowed")
    if scheme == "https":
        host = authority.rsplit(":", 1)[0] if not authority.endswith("]") else authority
        if not host:
            raise InvalidUri(uri, "https URI without a host")
        return uri
    if scheme == "http":
        host, port = authority, ""
        if authority.startswith("["):
            end = authority.find("]")
            host, port = authority[: end + 1], authority[end + 2 :]
        elif ":" in authority:
            host, port = authority.split(":", 1)
        if host not in _LOOPBACK_HOSTS:
            raise InvalidUri(uri, "http is allowed only on the loopback IP literals 127.0.0.1 and [::1]")
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise InvalidUri(uri, "bad port")
        return uri
    if "." not in scheme:
        raise InvalidUri(uri, "custom schemes must be reverse-DNS names (with a dot)")
    if not (authority or path):
        raise InvalidUri(uri, "custom-scheme URI without a path")
    return uri


def validate_backchannel_uri(uri: str) -> str:
    """A back-channel logout URI: https, or http on a loopback literal; no fragment (BCL §2.2)."""
    checked = validate_redirect_uri(uri)
    if _split_uri(checked)[0] not in ("https", "http"):
        raise InvalidUri(uri, "back-channel logout URIs must be https (or http on loopback)")
    return checked


USERNAME_PATTERN = r"^[A-Za-z0-9._@+-]{1,128}$"
"""Usernames: plain ASCII, so one name never has two spellings and nothing in it can forge a log line."""

_RESUME_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def safe_next(next_path: str | None, enterprise_id: str) -> str | None:
    """`next` after login, if it is this enterprise's authorization endpoint; else None.

    Only `/e/{eid}/authorize?…` and `/e/{eid}/authorize/resume/{id}` — the two places a sign-in
    continues an app's authorization request — so the login page can never be used as an open
    redirector (RFC 9700 §4.11), nor send a signed-in browser to another of our own pages."""
    if not next_path or len(next_path) > 4096:
        return None
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F or c == "\\" for c in next_path):
        return None
    path, sep, query = next_path.partition("?")
    authorize = f"/e/{enterprise_id}/authorize"
    if path == authorize:
        return next_path if "#" not in query else None
    resume = authorize + "/resume/"
    if path.startswith(resume) and not sep and _RESUME_ID.fullmatch(path[len(resume) :]):
        return next_path
    return None


# TOTP, RFC 6238 over RFC 4226 HOTP: SHA-1, 6 digits, 30-second steps.

TOTP_STEP_S = 30
TOTP_DIGITS = 6


def hotp(secret: bytes, counter: int, digits: int = TOTP_DIGITS) -> str:
    """RFC 4226 §5.3: HMAC-SHA-1 over the 8-byte counter, dynamic truncation, `digits` digits."""

    mac = hmac.new(secret, counter.to_bytes(8, "big"), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(value % (10**digits)).zfill(digits)


def totp_step(now: float, step_s: int = TOTP_STEP_S) -> int:
    """The RFC 6238 time step T = floor(unix time / X)."""
    return int(now // step_s)


def totp_match(secret: bytes, code: str, now: float, last_used_step: int | None, window: int = 1) -> int | None:
    """The step `code` is valid for (now ±`window` steps), or None.

    A step at or before `last_used_step` never matches: a code, once accepted, cannot be replayed
    (RFC 6238 §5.2), nor can an older code from the window."""

    if not (isinstance(code, str) and len(code) == TOTP_DIGITS and code.isdigit()):
        return None
    current = totp_step(now)
    found = None
    for step in range(current - window, current + window + 1):
        # Compare every candidate so timing does not tell which step matched.
        if hmac.compare_digest(hotp(secret, step), code) and found is None:
            found = step
    if found is None or (last_used_step is not None and found <= last_used_step):
        return None
    return found


def b32_secret(secret: bytes) -> str:
    """The base32 form authenticator apps expect (RFC 4648, no padding)."""

    return base64.b32encode(secret).decode().rstrip("=")


def otpauth_uri(secret: bytes, issuer: str, account: str) -> str:
    """The `otpauth://totp/...` URI an authenticator app scans (Key Uri Format)."""

    label = quote(f"{issuer}:{account}", safe="")
    query = urlencode(
        {
            "secret": b32_secret(secret),
            "issuer": issuer,
            "algorithm": "SHA1",
            "digits": TOTP_DIGITS,
            "period": TOTP_STEP_S,
        }
    )
    return f"otpauth://totp/{label}?{query}"


@dataclass(frozen=True)
class LockoutPolicy:
    """`max_failures` failures within `window_s` lock the account for `duration_s`."""

    max_failures: int = 5
    window_s: int = 900
    duration_s: int = 900


@dataclass(frozen=True)
class FailureState:
    """Failed attempts of one account: how many since `first_at`, and any lock."""

    count: int = 0
    first_at: float = 0.0
    locked_until: float = 0.0

    def locked(self, now: float) -> bool:
        """True while a lockout is in force."""
        return now < self.locked_until

    def after_failure(self, now: float, policy: LockoutPolicy) -> FailureState:
        """The state after one more failure at `now`."""
        if self.locked(now):
            return self
        if self.count == 0 or now - self.first_at >= policy.window_s:
            count, first = 1, now
        else:
            count, first = self.count + 1, self.first_at
        if count >= policy.max_failures:
            return FailureState(count=0, first_at=0.0, locked_until=now + policy.duration_s)
        return FailureState(count=count, first_at=first, locked_until=self.locked_until)


# Signing-key rotation. Per algorithm there is exactly one `active` key (signs), one `next` key
# (published, signs nothing yet) and any number of `retired` keys (published until
# `retire_after`, when every token they signed has expired). A key is always published for at
# least one rotation period before it signs anything (RFC 9700 / OIDC Core §10.1.1).

KeyStatus = Literal["next", "active", "retired"]
SIGNING_ALGS: tuple[str, ...] = ("RS256", "ES256")
DEFAULT_ID_TOKEN_ALG = "RS256"
"""What a client that registers no `id_token_signed_response_alg` gets (OIDC Core §2, DCR §2)."""


@dataclass(frozen=True)
class KeyEntry:
    """One key's place in the ring (no key material: that stays in the adapter)."""

    kid: str
    alg: str
    status: KeyStatus
    created_at: float
    retire_after: float | None = None


@dataclass(frozen=True)
class KeyRing:
    """An enterprise's keys and a version that grows with every change."""

    version: int
    entries: tuple[KeyEntry, ...]

    def active(self, alg: str) -> KeyEntry:
        """The key that signs `alg` tokens now."""
        return next(e for e in self.entries if e.alg == alg and e.status == "active")

    def published(self, now: float) -> tuple[KeyEntry, ...]:
        """Keys in the JWKS: active, next, and retired keys whose tokens may still be valid."""
        return tuple(
            e for e in self.entries if e.status != "retired" or (e.retire_after is not None and now < e.retire_after)
        )


def new_ring(kids: dict[str, tuple[str, str]], now: float) -> KeyRing:
    """A fresh ring: for each alg, (active kid, next kid)."""
    entries = []
    for alg in SIGNING_ALGS:
        active_kid, next_kid = kids[alg]
        entries.append(KeyEntry(active_kid, alg, "active", now))
        entries.append(KeyEntry(next_kid, alg, "next", now))
    return KeyRing(1, tuple(entries))


def rotate_ring(ring: KeyRing, new_next: dict[str, str], now: float, max_token_lifetime_s: float) -> KeyRing:
    """next → active, active → retired (kept until now + max token lifetime), a new next per alg;
    retired keys whose tokens have all expired are dropped."""
    entries: list[KeyEntry] = []
    for e in ring.entries:
        if e.status == "active":
            entries.append(KeyEntry(e.kid, e.alg, "retired", e.created_at, now + max_token_lifetime_s))
        elif e.status == "next":
            entries.append(KeyEntry(e.kid, e.alg, "active", e.created_at))
        elif e.retire_after is not None and now < e.retire_after:
            entries.append(e)
    for alg in SIGNING_ALGS:
        entries.append(KeyEntry(new_next[alg], alg, "next", now))
    return KeyRing(ring.version + 1, tuple(entries))


@dataclass(frozen=True)
class ServicesPrincipalRecord:
    """A services principal as stored (never its secret)."""

    principal_id: str
    name: str
    status: str  # active | revoked
    scopes: tuple[str, ...]
    created_at: float


class NotFound(LookupError):
    """The addressed record does not exist in this enterprise."""


class Invalid(ValueError):
    """Input that breaks a rule; `error` is the JSON error code."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


PRODUCER = "idp"
"""The `producer` of every event the IdP's directory part publishes."""
