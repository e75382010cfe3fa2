"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0), GET and POST.

- A valid `id_token_hint` is one of our ID tokens (pinned algorithms, our issuer; expiry does not
  matter for logout). `alg: none`, foreign or tampered hints are not valid.
- We redirect only with a valid hint and a `post_logout_redirect_uri` registered exactly for the
  hint's client (and `client_id`, when sent, must be that client); `state` is echoed.
- Without a valid hint we never redirect: a confirmation page (a form POSTing a single-use token
  bound to the browser session) ends the session, then a "signed out" page.
- Logging out ends the browser session (`BrowserSessions.end`), revokes every grant of the
  session's sid (so `prompt=none` then fails with login_required and refresh/introspection are
  dead — offline_access tokens too, a deliberate policy for shared hospital devices), and
  queues a back-channel logout for each client of that sid with a `backchannel_logout_uri`.
"""

from __future__ import annotations

import secrets
from functools import partial
from html import escape
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from lanyard.idp.oidc.http import FORM, FORM_LIMITS, Params, html_page, parse_params, redirect, with_query
from lanyard.idp.oidc.jwt import ID_TOKEN_TYP
from lanyard.idp.oidc.revoker import OidcSessionRevoker
from lanyard.idp.oidc.service import OidcProvider, log
from lanyard.runtime.bodies import BodyRefused, read_bytes
from lanyard.runtime.tokens import InvalidToken

_CONFIRM_TTL_S = 600


async def _params(request: Request) -> Params | None:
    """The request's parameters (form body or query); None when the shared parser refuses them."""
    try:
        if request.method == "POST":
            if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM:
                return Params()
            return parse_params(await read_bytes(request, FORM_LIMITS.max_bytes))
        return parse_params(request.url.query[: FORM_LIMITS.max_bytes])
    except BodyRefused:
        return None


async def end_session(provider: OidcProvider, eid: str, sids: list[str], user_id: str | None) -> None:
    """End browser sessions and revoke grants of `sids`; queue back-channel logouts."""
    revoker = OidcSessionRevoker(provider)
    for sid in dict.fromkeys(s for s in sids if s):
        await provider.ports.browser_sessions.end(eid, sid)
        revoked = await revoker.revoke_sid(eid, sid, "logout", partial(provider.ports.backchannel.enqueue_revoked, eid))
        if revoked is None:
            continue
        log.info("logged_out", enterprise_id=eid, sid=sid, clients=len(revoked.client_ids))


def _signed_out() -> Response:
    return html_page("Signed out", "You are signed out of Lanyard. You can close this window.")


async def logout(provider: OidcProvider, request: Request, eid: str) -> Response:
    """GET/POST /logout."""
    await provider.enterprise(eid)
    p = await _params(request)
    if p is None:
        return html_page("Sign-out request rejected", "The request is malformed.", 400)
    cookie = request.cookies.get(provider.config.browser_cookie)
    session = await provider.ports.browser_sessions.get(eid, cookie) if cookie else None

    confirm = p.get("confirm")
    if request.method == "POST" and confirm:
        sid = await provider.store.take_logout(eid, confirm[:128])
        if sid is None:
            return html_page("Sign-out expired", "Start signing out again.", 400)
        if sid:
            await end_session(provider, eid, [sid], session.user_id if session else None)
        return _signed_out()

    if any(n in p.repeated for n in ("id_token_hint", "post_logout_redirect_uri", "state", "client_id")):
        return html_page("Sign-out request rejected", "A parameter was sent more than once.", 400)

    hint: dict[str, Any] | None = None
    if p.get("id_token_hint"):
        try:
            hint = await provider.keys.verify(
                eid, p.get("id_token_hint") or "", issuer=provider.issuer(eid), typs=(ID_TOKEN_TYP,), check_exp=False
            )
        except InvalidToken as exc:
            log.info("logout_hint_rejected", enterprise_id=eid, reason=exc.reason)
            hint = None
    hint_client = None
    if hint is not None:
        aud = hint.get("aud")
        hint_client = aud if isinstance(aud, str) else (aud[0] if isinstance(aud, list) and len(aud) == 1 else None)
        if p.get("client_id") not in (None, hint_client):
            hint = None

    target = p.get("post_logout_redirect_uri")
    if hint is not None:
        if target is not None:
            client = await provider.client(eid, hint_client)
            if client is None or target not in client.post_logout_redirect_uris:
                return await _confirm_page(provider, eid, session, "The return address is not registered.")
        sids = [str(hint.get("sid") or "")] + ([session.sid] if session and session.user_id == hint["sub"] else [])
        await end_session(provider, eid, sids, hint["sub"])
        if target is None:
            return _signed_out()
        state = p.get("state")
        return redirect(with_query(target, {"state": state}) if state is not None else target)

    if session is None:
        return _signed_out()
    return await _confirm_page(provider, eid, session, "Do you want to sign out of Lanyard?")


async def _confirm_page(provider: OidcProvider, eid: str, session: Any, message: str) -> Response:
    token = secrets.token_urlsafe(24)
    await provider.store.put_logout(eid, token, session.sid if session else "", _CONFIRM_TTL_S)
    form = (
        f"<form method=post action='/e/{escape(eid)}/logout'>"
        f"<input type=hidden name=confirm value='{token}'>"
        "<button type=submit>Sign out</button></form>"
    )
    return html_page("Sign out?", message, 200, form)
