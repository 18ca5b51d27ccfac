"""A client of the portal's REST API, for the `dragonball` CLI on any machine that reaches
the portal (docs/portal.md, "The CLI from any machine").

    client = PortalClient("https://10.0.0.5:8443", ca="/path/ca.crt", token=TOKEN)
    client.devices()

HTTPS with the cluster CA pinned: `verify=` the CA file on the session and
``trust_env = False``, because REQUESTS_CA_BUNDLE and friends would otherwise silently
replace it (MACHINE.md, "Environment traps"); proxies from the environment are ignored for
the same reason: the portal is on the site's own network.

Every failure is a `ClientError` (dragonball.errors) carrying the API's own error text, a hint
and a category: the one the HTTP status says (`CATEGORY_OF_HTTP`: 404 not found, 409 conflict,
400/422 invalid, 401/403/429 denied, 502-504 unavailable; a 500 is what the answer's own
"category" says, failed or internal), so a command run through the API ends with the exit status
its local twin would (README.md, "Exit statuses"). No answer at all is UNAVAILABLE. No token
or password is ever logged: log lines name the method and the path only.

The login (URL, CA path, token) is kept in ``$XDG_CONFIG_HOME/dragonball/portal.json``
(``~/.config`` by default), mode 0600 in a 0700 folder: `save_login`, `load_login`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import os
import pathlib
import time
from urllib.parse import quote, urlsplit

import requests

from dragonball.errors import (CATEGORY_OF_HTTP, Category, ClientError, Conflict, Denied,
                               Failed, Internal, InvalidInput, NotFound, Unavailable)

log = logging.getLogger(__name__)

DEFAULT_PORT = 8443
TIMEOUT_S = 30.0
LOGIN_HINT = "log in again: dragonball login --portal HOST --ca FILE"


class PortalUnreachable(ClientError, Unavailable):
    """No answer, or a TLS peer that is not the portal of this CA (or a 502-504)."""


class PortalAuthError(ClientError, Denied):
    """The portal refuses the credentials (401, 403, 429), or there is no usable login."""


class PortalInvalid(ClientError, InvalidInput):
    """The request itself is wrong: a bad value, a bad spec (400, 422)."""


class PortalNotFound(ClientError, NotFound):
    """The portal has no such app, service or job, or not that call (404)."""


class PortalConflict(ClientError, Conflict):
    """The portal's state forbids the call now: the app is busy with a job (409)."""


class PortalFailed(ClientError, Failed):
    """The portal tried and failed (a 500 that says so), or a call did not end in time."""


class PortalInternal(ClientError, Internal):
    """The portal failed with a defect of its own (a 500 with no DragonBall error)."""


class JobFailed(PortalFailed):
    """A job the portal ran (start, stop, apply) ended failed: its error, hint and category
    (FAILED unless the job says otherwise)."""

    def __init__(self, job: dict) -> None:
        super().__init__(job.get("error") or f"job {job.get('id')} failed",
                         job.get("hint") or "", body=job)
        self.job = job
        if job.get("category") in {c.value for c in Category}:
            self.category = Category(job["category"])

    def to_dict(self) -> dict:
        """As the local command's error: what the job's result says (where a rollout
        failed, the output, what stays healthy) goes with it."""
        result = self.job.get("result")
        return super().to_dict() | (result if isinstance(result, dict) else {})


#: The error of each category an answer can have.
ERROR_OF = {Category.INVALID: PortalInvalid, Category.NOT_FOUND: PortalNotFound,
            Category.CONFLICT: PortalConflict, Category.UNAVAILABLE: PortalUnreachable,
            Category.DENIED: PortalAuthError, Category.FAILED: PortalFailed,
            Category.INTERNAL: PortalInternal}


def portal_url(text: str) -> str:
    """``https://host:port`` from ``HOST``, ``HOST:PORT``, ``[v6]:PORT`` or an https URL."""
    text = text.strip().rstrip("/")
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    problem = _url_problem(parts)
    if problem:
        raise PortalInvalid(f"{text!r} is not a portal address: {problem}",
                            "give HOST or HOST:PORT, e.g. --portal 10.0.0.5 or 10.0.0.5:8443")
    host = parts.hostname
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass
    return f"https://{host}:{parts.port or DEFAULT_PORT}"


def _url_problem(parts) -> str:
    if parts.scheme != "https":
        return "the portal speaks HTTPS only"
    try:
        parts.port
    except ValueError:
        return "the port is not a number from 1 to 65535"
    if not parts.hostname:
        return "no host"
    if parts.path or parts.query or parts.username:
        return "give the host and port only"
    return ""


class PortalClient:
    """The portal's REST API (docs/portal.md): one method per call the CLI makes."""

    def __init__(self, url: str, ca: str, token: str | None = None,
                 basic: tuple[str, str] | None = None, timeout: float = TIMEOUT_S) -> None:
        self.url, self.ca, self.timeout = url.rstrip("/"), ca, timeout
        self.session = requests.Session()
        self.session.trust_env = False  # never REQUESTS_CA_BUNDLE, never a proxy
        self.session.verify = ca
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        elif basic:
            self.session.auth = basic

    def __enter__(self) -> "PortalClient":
        return self

    def __exit__(self, *exc) -> None:
        self.session.close()

    # -- auth, devices, codes ---------------------------------------------------------------
    def create_token(self) -> dict:
        """A new API token (basic auth): {token, expires, expires_at}."""
        return self.call("POST", "/api/v1/tokens", json={})

    def end_token(self) -> dict:
        return self.call("DELETE", "/api/v1/tokens/current")

    def end_all_tokens(self) -> dict:
        """End every token and session of this login's user: {ended}."""
        return self.call("DELETE", "/api/v1/tokens")

    def change_password(self, current: str, new: str) -> dict:
        """A new password; every other session and token ends: {changed, ended}."""
        return self.call("POST", "/api/v1/password", json={"current": current, "new": new})

    def devices(self) -> list[dict]:
        return self.call("GET", "/api/v1/devices")["devices"]

    def certificates(self) -> dict:
        """{certificates, warnings[, note]}: when each certificate ends (docs/certificates.md)."""
        return self.call("GET", "/api/v1/certificates")

    def new_code(self, ttl: str) -> dict:
        """A one-time enrollment code with the join command (``dragonball enroll --json``)."""
        return self.call("POST", "/api/v1/codes", json={"ttl": ttl})

    # -- apps (the contract of portal/apps_api.py) -------------------------------------------
    def apps(self) -> list[str]:
        return self.call("GET", "/api/v1/apps")["apps"]

    def services(self, app: str) -> dict:
        return self.call("GET", f"/api/v1/apps/{_seg(app)}/services")

    def action(self, app: str, name: str, verb: str) -> str:
        """Start a start/stop/restart job; its id."""
        found = self.call("POST", f"/api/v1/apps/{_seg(app)}/services/{_seg(name)}/{verb}",
                          json={})
        return str(found["job"])

    def move(self, app: str, slot: str, server: str, data_lost: bool = False) -> str:
        """Start a move job (a slot's data to `server`); its id."""
        found = self.call("POST", f"/api/v1/apps/{_seg(app)}/slots/{_seg(slot)}/move",
                          json={"to": server, "data_lost": data_lost})
        return str(found["job"])

    def volumes(self) -> list[dict]:
        return self.call("GET", "/api/v1/volumes")["volumes"]

    def image_holdings(self) -> list[dict]:
        return self.call("GET", "/api/v1/images/servers")["servers"]

    def remove_volume(self, server: str, name: str) -> dict:
        return self.call("DELETE", f"/api/v1/volumes/{_seg(server)}/{_seg(name)}")

    def job(self, job_id: str) -> dict:
        return self.call("GET", f"/api/v1/jobs/{_seg(job_id)}")

    def params(self, app: str, name: str) -> dict:
        return self.call("GET", f"/api/v1/apps/{_seg(app)}/services/{_seg(name)}/params")

    def set_params(self, app: str, name: str, values: dict, unset: list) -> dict:
        return self.call("PUT", f"/api/v1/apps/{_seg(app)}/services/{_seg(name)}/params",
                         json={"set": values, "unset": list(unset)})

    def logs(self, app: str, name: str, tail: int) -> dict:
        return self.call("GET", f"/api/v1/apps/{_seg(app)}/services/{_seg(name)}/logs",
                         params={"tail": tail})

    def notifications(self, app: str, limit: int) -> dict:
        return self.call("GET", f"/api/v1/apps/{_seg(app)}/notifications",
                         params={"limit": limit})

    def plan(self, spec: str, file: str) -> dict:
        return self.call("POST", "/api/v1/plan", json={"spec": spec, "file": file})

    def apply(self, spec: str, file: str) -> str:
        return str(self.call("POST", "/api/v1/apply", json={"spec": spec, "file": file})["job"])

    def wait_job(self, job_id: str, on_event=None, timeout: float = 300.0,
                 interval: float = 0.5, clock=time.monotonic, sleep=time.sleep) -> dict:
        """Poll a job until it ends, giving `on_event` each new event once; the final job.

        JobFailed when it ends failed; PortalFailed when it still runs after `timeout` s.
        """
        deadline, seen = clock() + timeout, 0
        while True:
            job = self.job(job_id)
            events = job.get("events") or []
            for event in events[seen:]:
                if on_event:
                    on_event(event)
            seen = max(seen, len(events))
            if job.get("state") == "failed":
                raise JobFailed(job)
            if job.get("state") not in (None, "running", "queued"):
                return job
            if clock() >= deadline:
                raise PortalFailed(f"job {job_id} still runs on the portal after {timeout:.0f} s",
                                  "it goes on there: follow it with --timeout longer, or "
                                  "look at the Services page")
            sleep(interval)

    # -- the one place HTTP happens -----------------------------------------------------------
    def call(self, method: str, path: str, **kwargs) -> dict:
        """One API call: the JSON answer, or the ClientError that says why not."""
        log.debug("%s %s", method, path)
        try:
            response = self.session.request(method, self.url + path, timeout=self.timeout,
                                            **kwargs)
        except requests.exceptions.SSLError as e:
            raise PortalUnreachable(
                f"TLS with {self.url} failed: it is not the portal of the CA {self.ca} "
                f"({_reason(e)})", "check --ca: the cluster CA is /etc/dragonball/ca.crt on "
                "any server of the cluster; check its fingerprint with the portal's") from e
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as e:
            raise PortalUnreachable(
                f"cannot reach the portal at {self.url}: {_reason(e)}",
                "is the portal running ('systemctl status dragonball-portal' on it) and "
                f"is its port open from here? try: curl --cacert {self.ca} "
                f"{self.url}/healthz") from e
        except requests.exceptions.RequestException as e:
            raise PortalUnreachable(f"cannot talk to the portal at {self.url}: {_reason(e)}",
                                    "check --portal and --ca") from e
        except OSError as e:  # requests' own words for a CA file it cannot read
            raise PortalUnreachable(f"cannot use the CA file {self.ca}: {_reason(e)}",
                                    f"give a readable CA file; {LOGIN_HINT}") from e
        return _answer(response, method, path)


def _answer(response, method: str, path: str) -> dict:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code < 400:
        if isinstance(body, dict):
            return body
        raise PortalFailed(f"{method} {path}: the portal answered {response.status_code} "
                           "but not with JSON", "is this address the portal's?")
    body = body if isinstance(body, dict) else {}
    text = str(body.get("error") or response.text[:200].strip() or response.reason)
    raise _error_for(response, text, body)


def category_of_answer(status: int, body: dict) -> Category:
    """The category of an error answer: its HTTP status's, else the answer's own word (a
    500 is FAILED or INTERNAL), else FAILED; a 500 that names none is an unhandled defect."""
    if status in CATEGORY_OF_HTTP:
        return CATEGORY_OF_HTTP[status]
    named = {c.value: c for c in Category}.get(str(body.get("category")))
    if named is not None:
        return named
    return Category.INTERNAL if status == 500 else Category.FAILED


def _error_for(response, text: str, body: dict) -> ClientError:
    status, hint = response.status_code, str(body.get("hint") or "")
    category = category_of_answer(status, body)
    args = dict(status=status, problems=body.get("problems"), body=body)
    if status == 401:
        hint = hint or LOGIN_HINT
    elif status == 429:
        hint = hint or f"wait {response.headers.get('Retry-After', 'a few minutes')} s " \
                       "before trying again"
    elif status == 404 and "error" not in body:
        hint = hint or ("this portal does not have that call: is it an older version than "
                        "this command?")
    elif status >= 500 and category in (Category.FAILED, Category.INTERNAL):
        text = f"the portal failed ({status}): {text}"
        hint = hint or ("see the portal's log: 'journalctl -u dragonball-portal' (or "
                        "/var/log/dragonball/portal.log) on the portal")
    return ERROR_OF[category](text, hint, **args)


def _seg(value: str) -> str:
    """A path segment, quoted: a name never changes which route is called."""
    return quote(str(value), safe="")


def _reason(e: Exception) -> str:
    """The innermost cause's words, not urllib3's nested repr."""
    while e.__cause__ is not None or (e.args and isinstance(e.args[0], Exception)):
        e = e.__cause__ or e.args[0]
    reason = getattr(e, "reason", None)
    return str(reason or e).split("] ", 1)[-1][:300]


# -- the login file --------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Login:
    """What `dragonball login` keeps: where the portal is, its CA, the token."""

    url: str
    ca: str
    token: str
    username: str = "admin"
    expires_at: str = ""

    def client(self, timeout: float = TIMEOUT_S) -> PortalClient:
        return PortalClient(self.url, self.ca, token=self.token, timeout=timeout)


def login_path(environ=os.environ) -> pathlib.Path:
    """``$XDG_CONFIG_HOME/dragonball/portal.json``, ``~/.config/...`` without it."""
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(
        environ.get("HOME") or os.path.expanduser("~"), ".config")
    return pathlib.Path(base) / "dragonball" / "portal.json"


def save_login(login: Login, path: pathlib.Path) -> None:
    """Write `login` 0600 (its folder 0700), atomically: no moment with a readable token."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(dataclasses.asdict(login), f, indent=2)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def saved_login(environ=os.environ) -> Login:
    """The login `dragonball login` saved; PortalAuthError (DENIED) when there is none."""
    found = load_login(login_path(environ))
    if found is None:
        raise PortalAuthError("not logged in to a portal from this machine",
                              "dragonball login --portal HOST --ca FILE (or run this on "
                              "the portal, as root)")
    return found


def load_login(path: pathlib.Path) -> Login | None:
    """The saved login, None when there is none; PortalAuthError when it is unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Login(**{f.name: data[f.name] for f in dataclasses.fields(Login)
                        if f.name in data})
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as e:
        raise PortalAuthError(f"the saved login {path} cannot be read ({e})",
                              f"remove it and {LOGIN_HINT}") from e
