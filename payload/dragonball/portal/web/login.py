"""Login and logout (the only pages open without a session) and the CLI's API tokens.

    GET  /login                  the form
    POST /login                  username, password, next -> a session cookie, 303 to next
    POST /logout                 ends the session (CSRF token required), 303 to /login
    POST /api/v1/tokens          an API token for the CLI (basic auth or a session, never
                                 a token): {token, expires_at}
    DELETE /api/v1/tokens/current  ends the bearer token the call carries
    DELETE /api/v1/tokens        ends every token and session of the caller's user
    POST /api/v1/password        {current, new}: a new password; every other session and
                                 token of the user ends (the caller's own stays)
    GET  /api/v1/openapi.json    the OpenAPI document (authenticated like the rest)
"""

from __future__ import annotations

import datetime
import logging

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from dragonball.portal import auth as auth_mod
from dragonball.portal.answers import error_response
from dragonball.portal.auth import (Forbidden, NotAuthenticated, Principal, RateLimited,
                                    read_form, require_admin)
from dragonball.portal.errors import RequestInvalid
from dragonball.portal.web.pages import render
from dragonball.shared import passwords

log = logging.getLogger(__name__)

router = APIRouter()


def safe_next(target: str | None) -> str:
    """Where to go after login: a path of this portal only (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login", include_in_schema=False)
def login_page(request: Request, next: str = "/") -> Response:
    secret = request.cookies.get(auth_mod.COOKIE)
    if secret and request.app.state.auth.store.session(secret):
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "login.html", next=safe_next(next), error=None, username="admin")


@router.post("/login", include_in_schema=False)
async def login(request: Request) -> Response:
    form = await read_form(request)
    target = safe_next(form.get("next"))
    username = form.get("username", "").strip()
    auth = request.app.state.auth
    try:
        if request.headers.get("sec-fetch-site") == "cross-site":
            raise Forbidden("a login from another site is refused")
        opened = await run_in_threadpool(auth.login, username, form.get("password", ""),
                                         auth_mod.client_address(request))
        if opened is None:
            raise NotAuthenticated("wrong user name or password")
    except (Forbidden, NotAuthenticated, RateLimited) as e:
        retry = {"Retry-After": str(e.retry_after)} if isinstance(e, RateLimited) else None
        return render(request, "login.html", status_code=e.http_status, next=target,
                      username=username, error=e.message, headers=retry)
    response = RedirectResponse(target, status_code=303)
    auth_mod.set_session_cookie(response, opened[0], auth)
    return response


@router.post("/logout", include_in_schema=False)
def logout(request: Request, principal: Principal = Depends(require_admin)) -> Response:
    secret = request.cookies.get(auth_mod.COOKIE)
    if principal.via == "session" and secret:
        request.app.state.auth.store.end_session(secret, auth_mod.client_address(request))
        log.info("%s logged out", principal.username)
    response = RedirectResponse("/login", status_code=303)
    auth_mod.clear_session_cookie(response)
    return response


@router.post("/api/v1/tokens", tags=["auth"])
def new_token(request: Request, principal: Principal = Depends(require_admin)) -> Response:
    """An API token for the CLI: send it as ``Authorization: Bearer <token>``."""
    token, session = request.app.state.auth.new_token(principal,
                                                       auth_mod.client_address(request))
    expires_at = datetime.datetime.fromtimestamp(session.expires, datetime.timezone.utc)
    return JSONResponse({"token": token, "expires": session.expires,
                         "expires_at": expires_at.isoformat(timespec="seconds")})


@router.delete("/api/v1/tokens/current", tags=["auth"])
def end_token(request: Request, principal: Principal = Depends(require_admin)) -> Response:
    """End the API token this call carries (a logout for the CLI)."""
    if principal.via != "token":
        return error_response(RequestInvalid("this call needs the token itself: "
                                             "'Authorization: Bearer <token>'"))
    token = request.headers["authorization"].partition(" ")[2].strip()
    request.app.state.auth.store.end_session(token, auth_mod.client_address(request))
    return JSONResponse({"ended": True})


@router.delete("/api/v1/tokens", tags=["auth"])
def end_all(request: Request, principal: Principal = Depends(require_admin)) -> Response:
    """End every API token and browser session of the caller's user (logout everywhere)."""
    ended = request.app.state.auth.store.end_sessions(principal.username,
                                                      auth_mod.client_address(request))
    log.info("%s ended every session and token (%d)", principal.username, ended)
    response = JSONResponse({"ended": ended})
    auth_mod.clear_session_cookie(response)
    return response


class PasswordChange(BaseModel):
    current: str = Field(min_length=1, max_length=1024)
    new: str = Field(min_length=1, max_length=1024)


@router.post("/api/v1/password", tags=["auth"])
def change_password(body: PasswordChange, request: Request,
                    principal: Principal = Depends(require_admin)) -> Response:
    """A new password for the caller's user, the current one checked (rate-limited like a
    login). Every other session and token ends; the one this call came with stays."""
    verdict = passwords.verdict(body.new, (request.app.state.settings.hostname,))
    if verdict is not True:
        return error_response(RequestInvalid(f"new: {verdict}", "choose another password"))
    if body.new == body.current:
        return error_response(RequestInvalid("new: the same as the current password",
                                             "choose another password"))
    ended = request.app.state.auth.change_password(
        principal, body.current, body.new, auth_mod.client_address(request),
        own_secret(request, principal))
    return JSONResponse({"changed": True, "ended": ended})


def own_secret(request: Request, principal: Principal) -> str | None:
    """The secret of the session or token `principal` came with (None: basic auth)."""
    if principal.via == "token":
        return request.headers["authorization"].partition(" ")[2].strip()
    return request.cookies.get(auth_mod.COOKIE) if principal.via == "session" else None


@router.get("/api/v1/openapi.json", include_in_schema=False)
def openapi(request: Request, principal: Principal = Depends(require_admin)) -> Response:
    return JSONResponse(request.app.openapi())
