"""The authorization endpoint (OIDC Core §3.1.2, RFC 6749 §4.1, RFC 7636, RFC 9207).

Design trade-off (authlib): authlib 1.9's server side is synchronous and Flask/Django-shaped; its
storage hooks (`query_client`, `save_authorization_code`, `query_authorization_code`,
`delete_authorization_code`, `authenticate_user`) would each hop from a worker thread back into
the event loop for our async ports and Redis, and its look-up-then-delete of codes is not atomic.
The checks it would run here are a short, well-specified list, so this module implements them
natively async (reusing nothing but the spec), in the order that decides *whether we may
redirect at all*:

1. enterprise (404), size limits (error page, nothing reflected);
2. `client_id` and `redirect_uri`: missing, repeated, unknown, disabled or not an exact match
   (loopback: any port, RFC 8252 §7.3) → an error page, never a redirect (RFC 6749 §4.1.2.1);
3. everything else → a redirect to the validated URI with `error`, `state` byte for byte, and
   `iss` (RFC 9207) on every response, success or error.

No consent screen: apps are enterprise applications an admin assigned (an app profile exists
only because a superadmin created it, and device-session SSO additionally needs the user's
entitlement for the app), so `prompt=consent` is satisfied without a page. RFC 8252 §8.6 asks for
an assured client identity before silent approval: our redirect URIs are exact-registered
(claimed https links or reverse-DNS schemes), and public clients must use PKCE.

Login: without a browser session (or with `prompt=login`, or an exceeded `max_age`) the request
is parked in Redis and the browser goes (303) to `/e/{eid}/login?next=/e/{eid}/authorize/resume/<id>`;
the resume path finishes the request once the user signed in *after* the request started.
Device SSO: with `Lanyard-Device-Session` and `Lanyard-Device-Proof` headers, the devices side
authenticates (proof over the exact method and public URL) instead of the browser session.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import Response

from lanyard.contracts.events import AuthorizationGranted, AuthorizationGrantedPayload
from lanyard.idp.devices.ports import DeviceSsoError, TemporarilyUnavailable
from lanyard.idp.directory.ports import ADMIN_SCOPE, Client
from lanyard.idp.oidc.discovery import ACR_1FA, ACR_MFA
from lanyard.idp.oidc.domain import SCOPES_SUPPORTED, Grant
from lanyard.idp.oidc.errors import (
    ErrorPage,
    OAuthError,
    invalid_request,
    invalid_scope,
    login_required,
    request_not_supported,
    request_uri_not_supported,
    temporarily_unavailable,
    unsupported_response_type,
)
from lanyard.idp.oidc.http import FORM, FORM_LIMITS, Params, html_page, parse_params, redirect, with_query
from lanyard.idp.oidc.jwt import ID_TOKEN_TYP
from lanyard.idp.oidc.service import OidcProvider, log
from lanyard.runtime.bodies import BodyRefused, parse_json, read_bytes
from lanyard.runtime.tokens import InvalidToken

DEVICE_SESSION_HEADER = "lanyard-device-session"
DEVICE_PROOF_HEADER = "lanyard-device-proof"
_S256_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_LOOPBACK = re.compile(r"^http://(127\.0\.0\.1|\[::1\])(?::(\d{1,5}))?(?=[/?]|$)(.*)$", re.DOTALL)
_KNOWN_PROMPTS = {"none", "login", "consent", "select_account"}
_KNOWN = (
    "client_id redirect_uri response_type response_mode scope state nonce code_challenge "
    "code_challenge_method prompt max_age login_hint id_token_hint acr_values ui_locales "
    "claims_locales display claims request request_uri registration"
).split()


def redirect_uri_matches(registered: tuple[str, ...], given: str) -> bool:
    """Exact string match (RFC 3986 §6.2.1 simple comparison); for loopback IP literals over
    http the port is ignored (RFC 8252 §7.3), everything else must still match exactly."""
    if given in registered:
        return True
    m = _LOOPBACK.match(given)
    if not m or (m.group(2) is not None and not 0 < int(m.group(2)) < 65536):
        return False
    for uri in registered:
        r = _LOOPBACK.match(uri)
        if r and r.group(1) == m.group(1) and r.group(3) == m.group(3):
            return True
    return False


@dataclass(frozen=True)
class AuthzRequest:
    """A validated authorization request: safe to redirect to `redirect_uri`."""

    client: Client
    redirect_uri: str
    state: str | None
    scope: tuple[str, ...]
    nonce: str | None
    code_challenge: str | None
    prompt: frozenset[str]
    max_age: int | None
    login_hint: str | None
    hint_sub: str | None
    claims: dict[str, Any]
    raw: dict[str, str]


@dataclass(frozen=True)
class Authn:
    """Who is signing in, and how recently."""

    user_id: str
    sid: str
    auth_time: int
    amr: tuple[str, ...]
    dsid: str | None
    via: str


class Redirected(Exception):
    """An error to send back to the (validated) redirect URI."""

    def __init__(self, err: OAuthError, action: str | None = None) -> None:
        super().__init__(err.error)
        self.err = err
        self.action = action


def _error_redirect(provider: OidcProvider, eid: str, uri: str, state: str | None, exc: Redirected) -> Response:
    params = {"error": exc.err.error}
    if exc.err.description:
        params["error_description"] = exc.err.description
    if exc.action:
        params["lanyard_action"] = exc.action
    if state is not None:
        params["state"] = state
    params["iss"] = provider.issuer(eid)
    return redirect(with_query(uri, params))


async def _raw_params(provider: OidcProvider, request: Request) -> Params:
    limits = replace(FORM_LIMITS, max_bytes=provider.config.max_query_bytes)
    try:
        if request.method == "POST":
            if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM:
                raise ErrorPage("The authorization request must be a form POST.")
            params = parse_params(await read_bytes(request, limits.max_bytes), limits)
        else:
            raw = request.url.query
            if len(raw) > limits.max_bytes:
                raise ErrorPage("The authorization request is too large.", 414)
            params = parse_params(raw, limits)
    except BodyRefused as refused:
        if refused.status_code == 413:
            raise ErrorPage("The authorization request is too large.", 413) from None
        raise ErrorPage(f"The authorization request is malformed: {refused.description}.") from None
    if any(len(v) > provider.config.max_param_chars for v in params.values.values()):
        raise ErrorPage("A parameter of the authorization request is too long.")
    return params


async def _client_and_redirect(provider: OidcProvider, eid: str, p: Params) -> tuple[Client, str]:
    """Step 2: decide whether we may redirect at all."""
    if "client_id" in p.repeated or "redirect_uri" in p.repeated:
        raise ErrorPage("client_id and redirect_uri must be sent once.")
    client = await provider.client(eid, p.get("client_id"))
    if client is None:
        raise ErrorPage("Unknown or disabled application (client_id).")
    uri = p.get("redirect_uri")
    if uri is None:
        raise ErrorPage("redirect_uri is required.")
    if not redirect_uri_matches(client.redirect_uris, uri):
        raise ErrorPage("redirect_uri is not registered for this application.")
    return client, uri


async def _validate(provider: OidcProvider, eid: str, p: Params, client: Client, uri: str) -> AuthzRequest:
    """Step 3: every other rule; raises Redirected."""
    known_repeats = sorted(n for n in p.repeated if n in _KNOWN)
    if known_repeats:
        raise Redirected(invalid_request(f"repeated parameter: {known_repeats[0]}"))
    if "request" in p:
        raise Redirected(request_not_supported("request objects are not supported"))
    if "request_uri" in p:
        raise Redirected(request_uri_not_supported("request_uri is not supported"))
    response_type = p.get("response_type")
    if response_type is None:
        raise Redirected(invalid_request("response_type is required"))
    if response_type != "code":
        raise Redirected(unsupported_response_type("only response_type=code is supported"))
    if p.get("response_mode") not in (None, "query"):
        raise Redirected(invalid_request("only response_mode=query is supported"))
    scope = tuple(dict.fromkeys((p.get("scope") or "").split()))
    if "openid" not in scope:
        raise Redirected(invalid_scope("scope must include openid"))
    # The admin scope is not advertised in discovery: only the console client lists it.
    unknown = [s for s in scope if (s not in SCOPES_SUPPORTED and s != ADMIN_SCOPE) or s not in client.scopes]
    if unknown:
        raise Redirected(invalid_scope(f"scope not allowed: {unknown[0]}"))
    challenge, method = p.get("code_challenge"), p.get("code_challenge_method")
    if challenge is None:
        if method is not None:
            raise Redirected(invalid_request("code_challenge_method without code_challenge"))
        if client.pkce_required:
            raise Redirected(invalid_request("code challenge required (PKCE S256) for this client"))
    else:
        if method != "S256":
            raise Redirected(invalid_request("transform algorithm not supported: use S256"))
        if not _S256_CHALLENGE.match(challenge):
            raise Redirected(invalid_request("malformed code_challenge"))
    prompt = frozenset((p.get("prompt") or "").split())
    if prompt - _KNOWN_PROMPTS:
        raise Redirected(invalid_request("unsupported prompt value"))
    if "none" in prompt and len(prompt) > 1:
        raise Redirected(invalid_request("prompt=none cannot be combined with other values"))
    max_age: int | None = None
    if p.get("max_age") is not None:
        raw_age = p.get("max_age") or ""
        if not raw_age.isdigit() or len(raw_age) > 10:
            raise Redirected(invalid_request("max_age must be a non-negative integer"))
        max_age = int(raw_age)
    claims: dict[str, Any] = {}
    if p.get("claims") is not None:
        try:
            parsed = parse_json(p.get("claims") or "", FORM_LIMITS)
        except BodyRefused as refused:
            raise Redirected(invalid_request(f"claims: {refused.description}")) from None
        if not isinstance(parsed, dict) or any(
            k not in ("id_token", "userinfo") or not isinstance(v, dict) for k, v in parsed.items()
        ):
            raise Redirected(invalid_request("claims must be a JSON object of id_token/userinfo members"))
        claims = parsed
    hint_sub = None
    if p.get("id_token_hint") is not None:
        try:
            hint = await provider.keys.verify(
                eid, p.get("id_token_hint") or "", issuer=provider.issuer(eid), typs=(ID_TOKEN_TYP,), check_exp=False
            )
        except InvalidToken as exc:
            raise Redirected(invalid_request(f"id_token_hint rejected: {exc.reason}")) from None
        hint_sub = hint["sub"]
    return AuthzRequest(
        client=client,
        redirect_uri=uri,
        state=p.get("state"),
        scope=scope,
        nonce=p.get("nonce"),
        code_challenge=challenge,
        prompt=prompt,
        max_age=max_age,
        login_hint=p.get("login_hint"),
        hint_sub=hint_sub,
        claims=claims,
        raw=dict(p.values),
    )


def _public_url(provider: OidcProvider, request: Request) -> str:
    """The URL as the device signed it: configured public base + path + raw query."""
    url = provider.config.public_base_url.rstrip("/") + request.url.path
    return url + ("?" + request.url.query if request.url.query else "")


async def _device_authn(provider: OidcProvider, eid: str, request: Request, areq: AuthzRequest) -> Authn:
    handle = request.headers.get(DEVICE_SESSION_HEADER)
    proof = request.headers.get(DEVICE_PROOF_HEADER)
    if not handle or not proof:
        raise Redirected(invalid_request("device SSO needs both the session handle and a proof"))
    try:
        login = await provider.ports.device_sessions.authenticate(
            eid, areq.client.client_id, handle, proof, request.method, _public_url(provider, request)
        )
    except DeviceSsoError as exc:
        err = type(exc.error, (OAuthError,), {"error": exc.error})(exc.description)
        raise Redirected(err, exc.action) from None
    except TemporarilyUnavailable:
        raise Redirected(temporarily_unavailable("device sessions cannot be verified right now")) from None
    return Authn(login.user_id, login.sid, login.auth_time, login.amr, login.device_session_id, "sso_extension")


async def _browser_authn(provider: OidcProvider, eid: str, request: Request, resumed: bool) -> Authn | None:
    cookie = request.cookies.get(provider.config.browser_cookie)
    if not cookie:
        return None
    session = await provider.ports.browser_sessions.get(eid, cookie)
    if session is None:
        return None
    return Authn(
        session.user_id, session.sid, session.auth_time, session.amr, None, "interactive" if resumed else "silent"
    )


def _fresh(areq: AuthzRequest, authn: Authn, started_at: int, now: float) -> bool:
    """Signed in during this interaction, or recently enough for `prompt`/`max_age`."""
    if authn.auth_time >= started_at:
        return True
    if "login" in areq.prompt or areq.max_age == 0:
        return False
    return areq.max_age is None or now - authn.auth_time <= areq.max_age


async def _finish(
    provider: OidcProvider,
    eid: str,
    request: Request,
    areq: AuthzRequest,
    started_at: int,
    ix_id: str | None,
) -> Response:
    device = DEVICE_SESSION_HEADER in request.headers or DEVICE_PROOF_HEADER in request.headers
    if device and ix_id is None:
        authn: Authn | None = await _device_authn(provider, eid, request, areq)
    else:
        authn = await _browser_authn(provider, eid, request, ix_id is not None)
    now = time.time()
    if authn is not None and areq.hint_sub is not None and authn.user_id != areq.hint_sub:
        raise Redirected(login_required("the signed-in user is not the one id_token_hint names"))
    if authn is None or not _fresh(areq, authn, started_at, now):
        if "none" in areq.prompt or device:
            raise Redirected(login_required("the user must sign in"))
        ix_id = ix_id or secrets.token_urlsafe(24)
        await provider.store.put_interaction(
            eid, ix_id, {"params": areq.raw, "started_at": started_at}, provider.config.interaction_ttl_s
        )
        target = f"/e/{eid}/login?next=" + quote(f"/e/{eid}/authorize/resume/{ix_id}", safe="")
        if areq.login_hint:
            target += "&login_hint=" + quote(areq.login_hint, safe="")
        return redirect(target)
    return await _issue_code(provider, eid, areq, authn, ix_id)


def acr_for(amr: tuple[str, ...]) -> str:
    """Two or more distinct factors are MFA."""
    return ACR_MFA if len(set(amr)) >= 2 or "mfa" in amr else ACR_1FA


async def _issue_code(
    provider: OidcProvider, eid: str, areq: AuthzRequest, authn: Authn, ix_id: str | None
) -> Response:
    cfg = provider.config
    code = secrets.token_urlsafe(32)
    gid = uuid.uuid4().hex
    client_id = areq.client.client_id
    record = {
        "gid": gid,
        "client_id": client_id,
        "redirect_uri": areq.redirect_uri,
        "code_challenge": areq.code_challenge,
        "sid": authn.sid,
        "dsid": authn.dsid,
    }
    grant = Grant(
        gid=gid,
        state="issued",
        client_id=client_id,
        user_id=authn.user_id,
        sid=authn.sid,
        dsid=authn.dsid or None,
        scope=tuple(areq.scope),
        auth_time=authn.auth_time,
        amr=tuple(authn.amr),
        acr=acr_for(authn.amr),
        nonce=areq.nonce or None,
        claims=areq.claims,
    )
    if not await provider.store.create_code(
        eid, code, record, grant, cfg.code_ttl_s, max(cfg.code_replay_window_s, cfg.code_ttl_s)
    ):
        raise Redirected(login_required("the session has ended"))
    await provider.ports.publisher.publish(
        provider.event(
            AuthorizationGranted,
            eid,
            AuthorizationGrantedPayload(
                client_id=client_id, user_id=authn.user_id, sid=authn.sid, via=authn.via, device_session_id=authn.dsid
            ),
            user_id=authn.user_id,
            client_id=client_id,
            device_session_id=authn.dsid,
        )
    )
    if ix_id is not None:
        await provider.store.drop_interaction(eid, ix_id)
    log.info("authorization_granted", enterprise_id=eid, client_id=client_id, gid=gid, via=authn.via)
    params = {"code": code}
    if areq.state is not None:
        params["state"] = areq.state
    params["iss"] = provider.issuer(eid)
    return redirect(with_query(areq.redirect_uri, params))


def _error_page(exc: ErrorPage) -> Response:
    return html_page("Sign-in request rejected", exc.message, exc.status_code)


async def authorize(provider: OidcProvider, request: Request, eid: str) -> Response:
    """GET and POST /authorize."""
    await provider.enterprise(eid)
    try:
        p = await _raw_params(provider, request)
        client, uri = await _client_and_redirect(provider, eid, p)
    except ErrorPage as exc:
        return _error_page(exc)
    state = p.get("state")
    try:
        areq = await _validate(provider, eid, p, client, uri)
        return await _finish(provider, eid, request, areq, int(time.time()), None)
    except Redirected as exc:
        return _error_redirect(provider, eid, uri, state, exc)


async def resume(provider: OidcProvider, request: Request, eid: str, ix_id: str) -> Response:
    """GET /authorize/resume/{id}: finish a parked request after the login page."""
    await provider.enterprise(eid)
    record = await provider.store.get_interaction(eid, ix_id) if len(ix_id) <= 64 else None
    if record is None:
        return html_page("Sign-in request expired", "Start signing in again from the application.", 400)
    p = Params(values=dict(record["params"]))
    try:
        client, uri = await _client_and_redirect(provider, eid, p)
    except ErrorPage as exc:
        return _error_page(exc)
    try:
        areq = await _validate(provider, eid, p, client, uri)
        return await _finish(provider, eid, request, areq, int(record["started_at"]), ix_id)
    except Redirected as exc:
        return _error_redirect(provider, eid, uri, p.get("state"), exc)
