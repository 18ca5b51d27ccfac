"""Who may use the portal: login sessions (browsers), HTTP basic and API tokens (CLI), CSRF.

One FastAPI dependency, `require_admin`, guards every page and every API call but login,
/healthz, the CA and a device's enroll/joined (docs/portal.md, "Auth"). It accepts, in
this order:

- ``Authorization: Bearer <token>``: an API token (``POST /api/v1/tokens``), a session of
  kind "token" in the store;
- ``Authorization: Basic``: the admin's user name and password (scrypt), rate-limited per
  client address like the login form (api.Limiter, ``login.refused`` events);
- the session cookie `COOKIE`: a session of kind "session" made by the login form.

A request none of them opens raises `NotAuthenticated`; `install` maps it to 401 JSON for
``/api/``, to ``HX-Redirect: /login`` for htmx and to a 303 to /login for pages. The three
errors here are the portal layer's DENIED (exit 6 for a command): 401, 403 and 429 for HTTP.

CSRF: a state-changing request (POST, PUT, PATCH, DELETE) that a session cookie opened
must carry that session's token, in the form field ``csrf_token`` or the header
``X-CSRF-Token`` (htmx sends it from ``hx-headers`` on <body>). A browser attaches basic
credentials it remembers by itself too, so a state-changing request opened by basic auth
must not have a body a cross-site form can send (it must be JSON, or have none). A
request a browser marks ``Sec-Fetch-Site: cross-site`` never changes anything. Bearer
tokens are never sent by a browser on its own.
"""

from __future__ import annotations

import base64
import dataclasses
import hmac
import logging
from urllib.parse import parse_qsl, quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from dragonball.errors import Denied, DragonBallError, PortalError
from dragonball.portal.answers import error_response
from dragonball.portal.bodylimit import BodyLimit
from dragonball.portal.store import Session, Store

log = logging.getLogger(__name__)

COOKIE = "__Host-dragonball-session"  # __Host-: Secure, Path=/, no Domain, by the browser
CSRF_FIELD, CSRF_HEADER = "csrf_token", "X-CSRF-Token"
SESSION_IDLE_S = 30 * 60
SESSION_ABSOLUTE_S = 12 * 3600
TOKEN_S = 30 * 24 * 3600
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")
REALM = "DragonBall portal"


class NotAuthenticated(PortalError, Denied):
    """No session, token or password opened this request (401: it asks for credentials)."""

    http_refinement = 401

    def __init__(self, message: str = "log in first", hint: str = "") -> None:
        super().__init__(message, hint)


class Forbidden(PortalError, Denied):
    """Authenticated, but the request is refused (a CSRF check failed)."""


class RateLimited(PortalError, Denied):
    """Too many failed logins from this client address (429, with Retry-After)."""

    http_refinement = 429

    def __init__(self, client: str, retry_after: int) -> None:
        super().__init__(f"too many failed logins from {client}: try again in {retry_after} s")
        self.retry_after = retry_after


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who a request is from, and how it proved it ("session", "token" or "basic")."""

    username: str
    via: str
    session: Session | None = None

    @property
    def csrf_token(self) -> str:
        return self.session.csrf_token if self.session else ""


@dataclasses.dataclass
class Auth:
    """The portal's authentication over its store; `install` puts it on ``app.state.auth``.

    `limiter` is api.Limiter for ``login.refused`` (attempt / retry_after).
    """

    store: Store
    limiter: object
    session_idle_s: float = SESSION_IDLE_S
    session_absolute_s: float = SESSION_ABSOLUTE_S
    token_s: float = TOKEN_S

    def check_password(self, username: str, password: str, client: str) -> bool:
        """The admin's password, rate-limited per client: RateLimited when over the limit.

        The attempt takes its place among the client's failures before the (slow) check,
        so concurrent guesses cannot all pass the limit; a right password gives it back."""
        with self.limiter.attempt(client) as slot:
            if slot is None:
                raise RateLimited(client, self.limiter.retry_after(client) or 1)
            if self.store.check_admin(username, password):
                self.store.rehash_admin(username, password)  # a hash of an older cost
                return True
            slot.failed("wrong user name or password")
        log.warning("admin login from %s refused", client)
        return False

    def login(self, username: str, password: str, client: str) -> tuple[str, Session] | None:
        """A new browser session for the right password: (cookie value, session); else None."""
        if not self.check_password(username, password, client):
            return None
        log.info("%s logged in from %s", username, client)
        return self.store.create_session(username, "session", self.session_idle_s,
                                         self.session_absolute_s, client)

    def new_token(self, principal: Principal, client: str) -> tuple[str, Session]:
        """A new API token for the CLI (no idle timeout short of its lifetime), for a
        password or a browser session only: a token cannot make tokens, so a stolen one
        ends when it expires or is revoked, whatever it did meanwhile."""
        if principal.via == "token":
            raise Forbidden("an API token cannot make tokens: log in with the password "
                            "('dragonball login')")
        return self.store.create_session(principal.username, "token", self.token_s,
                                         self.token_s, client)

    def change_password(self, principal: Principal, current: str, new: str, client: str,
                        keep_secret: str | None) -> int:
        """Set a new password once the current one is checked (rate-limited like a login);
        every other session and token of the user ends. How many ended."""
        if not self.check_password(principal.username, current, client):
            raise Forbidden("the current password is wrong")
        ended = self.store.change_admin_password(principal.username, new, client, keep_secret)
        log.info("%s changed the password from %s: %d other session(s) ended",
                 principal.username, client, ended)
        return ended

    def principal(self, request: Request) -> Principal:
        """Who `request` is from; NotAuthenticated, RateLimited or Forbidden otherwise."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            found = self._session(value.strip())
            if found is None or found.kind != "token":
                raise NotAuthenticated("this API token is unknown or expired: make a new "
                                       "one (POST /api/v1/tokens with the admin password)")
            return _checked(request, Principal(found.username, "token", found))
        if scheme.lower() == "basic":
            return _checked(request, self._basic(request, value))
        secret = request.cookies.get(COOKIE)
        found = self._session(secret) if secret else None
        if found is None or found.kind != "session":
            raise NotAuthenticated("log in first" if not secret else
                                   "your session has ended: log in again")
        return _checked(request, Principal(found.username, "session", found))

    def _session(self, secret: str) -> Session | None:
        """The session or token of `secret`. One this copy does not know may have been made
        a moment ago on another manager's portal: catch up with the replicated state once
        (one etcd read) and look again, so a token works on every portal at once."""
        found = self.store.session(secret)
        if found is not None:
            return found
        try:
            if not self.store.catch_up():
                return None
        except DragonBallError as e:  # the state is out of reach: this copy answers
            log.warning("cannot catch up with the replicated state: %s", e.message)
            return None
        return self.store.session(secret)

    def _basic(self, request: Request, value: str) -> Principal:
        credentials = basic_credentials(value)
        if credentials is None:
            raise NotAuthenticated("malformed HTTP basic credentials")
        if not self.check_password(*credentials, client=client_address(request)):
            raise NotAuthenticated("wrong user name or password")
        return Principal(credentials[0], "basic")


def basic_credentials(value: str) -> tuple[str, str] | None:
    """(user, password) of a Basic credential's base64 part, None when malformed."""
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _checked(request: Request, principal: Principal) -> Principal:
    """`principal`, once the CSRF rules (module docstring) allow this request."""
    if request.method not in UNSAFE_METHODS:
        return principal
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise Forbidden("a request from another site cannot change anything here")
    if principal.via == "basic":
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type in FORM_TYPES:
            raise Forbidden("with basic auth, send JSON (Content-Type: application/json)")
    if principal.via == "session":
        sent = request.headers.get(CSRF_HEADER) or getattr(request.state, "csrf_form", "")
        if not hmac.compare_digest(sent.encode(), principal.csrf_token.encode()):
            raise Forbidden("the form is out of date or not from this portal (CSRF token "
                            "missing or wrong): reload the page and try again")
    return principal


async def read_form(request: Request, limit: int = 64 * 1024) -> dict[str, str]:
    """An urlencoded form body as a dict (the last value of a repeated field wins).

    Parsed with the standard library: the portal's forms are small urlencoded ones and
    never upload files, so no multipart parser is frozen into the runtime. The form's
    ``csrf_token`` is kept on ``request.state`` for `require_admin`.
    """
    body = await request.body()
    if len(body) > limit:
        return {}
    try:
        form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except (UnicodeDecodeError, ValueError):
        return {}
    request.state.csrf_form = form.get(CSRF_FIELD, "")
    return form


async def require_admin(request: Request) -> Principal:
    """The FastAPI dependency every guarded route takes: who the caller is (module doc)."""
    content_type = request.headers.get("content-type", "")
    if request.method in UNSAFE_METHODS and content_type.startswith(FORM_TYPES[0]):
        await read_form(request)  # the csrf_token field; the route reads the cached body
    # In a worker thread: scrypt (~80 ms) and SQLite must not hold the event loop.
    return await run_in_threadpool(request.app.state.auth.principal, request)


def set_session_cookie(response: Response, secret: str, auth: Auth) -> None:
    response.set_cookie(COOKIE, secret, max_age=int(auth.session_absolute_s), path="/",
                        secure=True, httponly=True, samesite="strict")


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")


def login_url(request: Request) -> str:
    """/login, with where to come back to after it (a path of this portal only)."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/login" if target in ("/", "/login") else f"/login?next={quote(target, safe='')}"


def install(app, store: Store, limiter) -> Auth:
    """Put an `Auth` on `app` and map its exceptions to answers (JSON for /api, pages else)."""
    auth = Auth(store, limiter)
    app.state.auth = auth
    app.add_middleware(BodyLimit)  # inside web's security headers: a 413 carries them too

    @app.exception_handler(NotAuthenticated)
    async def _not_authenticated(request: Request, exc: NotAuthenticated) -> Response:
        if _wants_json(request):
            return error_response(exc, {"WWW-Authenticate": f'Basic realm="{REALM}"'})
        if request.headers.get("hx-request"):
            return Response(status_code=exc.http_status,
                            headers={"HX-Redirect": login_url(request)})
        return RedirectResponse(login_url(request), status_code=303)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        log.warning("%s %s from %s refused: %s", request.method, request.url.path,
                    client_address(request), exc.message)
        if _wants_json(request):
            return error_response(exc)
        return Response(exc.message, status_code=exc.http_status, media_type="text/plain")

    @app.exception_handler(RateLimited)
    async def _limited(request: Request, exc: RateLimited) -> Response:
        return error_response(exc, {"Retry-After": str(exc.retry_after)})
    return auth


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")
