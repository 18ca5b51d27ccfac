"""A client of the portal's REST API, for the `dragonball` CLI on any machine that reaches
the portal (docs/portal.md, "The CLI from any machine").

    client = PortalClient(["https://10.0.0.1:8443", "https://10.0.0.2:8443"],
                          ca="/path/ca.crt", token=TOKEN)
    client.devices()

HTTPS with the cluster CA pinned: `verify=` the CA file on the session and
``trust_env = False``, because REQUESTS_CA_BUNDLE and friends would otherwise silently
replace it (MACHINE.md, "Environment traps"); proxies from the environment are ignored for
the same reason: the portal is on the site's own network.

Every failure is a `ClientError` with the category of the answer's HTTP status
(dragonball.portal_errors): the exit status of the command's local twin. No token or password
is ever logged: log lines name the method, the path and the portal only.

Every Swarm manager serves the portal (docs/portal.md, "Every manager a portal"), so a client
holds a list of portal URLs and each call tries them in order, starting with the one that
answered last: it moves on when a portal cannot be reached (refused, no route, TLS, a connect
timeout), when one answers 502 or 503, or, for a call that changes nothing (GET, PUT, DELETE),
when the answer does not come in time. Never on any other answer: a 401 or a 404 is the
cluster's answer, the same on every portal (its store is replicated, an API token is valid on
all of them). A POST whose answer did not come is not sent again: it may have been done.
`--debug` logs which portal answered. A job lives in the memory of the portal that runs it:
it is followed there alone, and its portal going away ends the wait with that said
(`JobPortalGone`), never a hang.

The login (the portals' URLs, CA path, token) is kept by dragonball.portal_login.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from urllib.parse import quote, urlsplit

import requests

from dragonball.errors import ClientError
from dragonball.portal_errors import (ERROR_OF, LOGIN_HINT, JobFailed, JobPortalGone,
                                      PortalAuthError, PortalConflict, PortalFailed,
                                      PortalInternal, PortalInvalid, PortalNotFound,
                                      PortalUnreachable, answer_of, category_of_answer)

log = logging.getLogger(__name__)

#: The errors (dragonball.portal_errors), named here too: callers know one module.
__all__ = ["ERROR_OF", "JobFailed", "JobPortalGone", "PortalAuthError", "PortalClient",
           "PortalConflict", "PortalFailed", "PortalInternal", "PortalInvalid",
           "PortalNotFound", "PortalUnreachable", "category_of_answer", "portal_url"]

DEFAULT_PORT = 8443
TIMEOUT_S = 30.0
#: A portal that does not take the connection within this is passed over for the next one.
CONNECT_TIMEOUT_S = 5.0
#: Answers that say "this portal cannot serve now, another may": the next one is tried.
FAILOVER_STATUSES = (502, 503)
#: Methods sent again to the next portal when the answer did not come in time.
IDEMPOTENT = ("GET", "HEAD", "PUT", "DELETE")
#: How long a job's portal may not answer before the job is said lost with it.
JOB_GRACE_S = 15.0


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
    """The portal's REST API (docs/portal.md): one method per call the CLI makes.

    `url`: one portal's URL, or every manager's (tried in order: the module's docstring).
    `self.url` is the one that answered last, where the next call starts."""

    def __init__(self, url: str | list[str], ca: str, token: str | None = None,
                 basic: tuple[str, str] | None = None, timeout: float = TIMEOUT_S,
                 connect_timeout: float = CONNECT_TIMEOUT_S) -> None:
        urls = [url] if isinstance(url, str) else list(url)
        self.urls = list(dict.fromkeys(u.rstrip("/") for u in urls))
        if not self.urls:
            raise PortalInvalid("no portal address given", LOGIN_HINT)
        self.url, self.ca, self.timeout = self.urls[0], ca, timeout
        self.connect_timeout = connect_timeout
        self.job_urls: dict[str, str] = {}  # job id -> the portal that runs it
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
        return self.device_list()["devices"]

    def device_list(self) -> dict:
        """{devices, strangers[, note]}: strangers are Swarm nodes no device is."""
        return self.call("GET", "/api/v1/devices")

    def remove_device(self, name: str) -> dict:
        """Drain, take out of the Swarm, forget (portal/removal.py); never sent twice."""
        return self.call("POST", f"/api/v1/devices/{quote(name, safe='')}/remove")

    def certificates(self) -> dict:
        """{certificates, warnings[, note]}: when each certificate ends (docs/certificates.md)."""
        return self.call("GET", "/api/v1/certificates")

    def new_code(self, ttl: str) -> dict:
        """A one-time enrollment code with the join command (``dragonball enroll --json``)."""
        return self.call("POST", "/api/v1/codes", json={"ttl": ttl})

    def portals(self) -> list[str]:
        """Every Swarm manager's portal URL, the answering one first."""
        return [str(u) for u in self.call("GET", "/api/v1/portals").get("portals") or []]

    # -- apps (the contract of portal/apps_api.py) -------------------------------------------
    def apps(self) -> list[str]:
        return self.call("GET", "/api/v1/apps")["apps"]

    def services(self, app: str) -> dict:
        return self.call("GET", f"/api/v1/apps/{_seg(app)}/services")

    def action(self, app: str, name: str, verb: str) -> str:
        """Start a start/stop/restart job; its id."""
        found = self.call("POST", f"/api/v1/apps/{_seg(app)}/services/{_seg(name)}/{verb}",
                          json={})
        return self._job_started(found)

    def move(self, app: str, slot: str, server: str, data_lost: bool = False) -> str:
        """Start a move job (a slot's data to `server`); its id."""
        found = self.call("POST", f"/api/v1/apps/{_seg(app)}/slots/{_seg(slot)}/move",
                          json={"to": server, "data_lost": data_lost})
        return self._job_started(found)

    def remove_app(self, app: str, purge_data: str | None = None) -> str:
        """Start a job taking the app away (services, network, folders, its record; its
        volumes only when `purge_data` is its name typed again); its id."""
        found = self.call("DELETE", f"/api/v1/apps/{_seg(app)}",
                          params={} if purge_data is None else {"purge_data": purge_data})
        return self._job_started(found)

    def volumes(self) -> list[dict]:
        return self.call("GET", "/api/v1/volumes")["volumes"]

    def image_holdings(self) -> list[dict]:
        return self.call("GET", "/api/v1/images/servers")["servers"]

    def remove_volume(self, server: str, name: str) -> dict:
        return self.call("DELETE", f"/api/v1/volumes/{_seg(server)}/{_seg(name)}")

    def job(self, job_id: str) -> dict:
        """The job, asked of the portal that runs it (jobs live in its memory)."""
        url = self.job_urls.get(str(job_id))
        return self.call("GET", f"/api/v1/jobs/{_seg(job_id)}", only=url)

    def _job_started(self, found: dict) -> str:
        job_id = str(found["job"])
        self.job_urls[job_id] = self.url
        return job_id

    def params(self, app: str, name: str) -> dict:
        return self.call("GET", f"/api/v1/apps/{_seg(app)}/services/{_seg(name)}/params")

    def set_params(self, app: str, name: str, values: dict, unset: list,
                   spec: tuple[str, str] | None = None) -> dict:
        """`spec` ((text, file)): for an app not applied yet, the spec it will be applied
        with (the values are checked against it and kept for its first apply)."""
        body = {"set": values, "unset": list(unset)}
        if spec is not None:
            body |= {"spec": spec[0], "file": spec[1]}
        return self.call("PUT", f"/api/v1/apps/{_seg(app)}/services/{_seg(name)}/params",
                         json=body)

    def logs(self, app: str, name: str, tail: int) -> dict:
        return self.call("GET", f"/api/v1/apps/{_seg(app)}/services/{_seg(name)}/logs",
                         params={"tail": tail})

    def notifications(self, app: str, limit: int) -> dict:
        return self.call("GET", f"/api/v1/apps/{_seg(app)}/notifications",
                         params={"limit": limit})

    def plan(self, spec: str, file: str) -> dict:
        return self.call("POST", "/api/v1/plan", json={"spec": spec, "file": file})

    def apply(self, spec: str, file: str) -> str:
        return self._job_started(self.call("POST", "/api/v1/apply",
                                           json={"spec": spec, "file": file}))

    def wait_job(self, job_id: str, on_event=None, timeout: float = 300.0,
                 interval: float = 0.5, clock=time.monotonic, sleep=time.sleep) -> dict:
        """Poll a job until it ends, giving `on_event` each new event once; the final job.

        JobFailed when it ends failed; PortalFailed when it still runs after `timeout` s;
        JobPortalGone when the job's portal has not answered for JOB_GRACE_S.
        """
        deadline, seen, silent_since = clock() + timeout, 0, None
        while True:
            try:
                job = self.job(job_id)
                silent_since = None
            except PortalUnreachable as e:
                silent_since = clock() if silent_since is None else silent_since
                if clock() - silent_since >= JOB_GRACE_S or clock() >= deadline:
                    raise JobPortalGone(job_id, self.job_urls.get(str(job_id), self.url),
                                        e.message) from e
                sleep(interval)
                continue
            except PortalNotFound as e:  # its portal restarted: jobs live in memory
                raise JobPortalGone(job_id, self.job_urls.get(str(job_id), self.url),
                                    "it no longer knows the job: it restarted") from e
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
    def call(self, method: str, path: str, only: str | None = None, **kwargs) -> dict:
        """One API call: the JSON answer, or the ClientError that says why not.

        Each portal in turn, from the one that answered last, until one answers with
        anything but 502/503; `only`: that portal alone (a job's)."""
        order = [only] if only else self._order()
        errors: list[tuple[str, ClientError]] = []
        for url in order:
            try:
                response = self._send(url, method, path, **kwargs)
            except _Passed as e:
                log.info("%s %s: %s did not answer (%s)%s", method, path, url, e.error.message,
                         ", trying the next portal" if url != order[-1] else "")
                errors.append((url, e.error))
                continue
            if response.status_code in FAILOVER_STATUSES and url != order[-1]:
                log.info("%s %s: %s answered %d, trying the next portal", method, path, url,
                         response.status_code)
                errors.append((url, PortalUnreachable(f"{url} answered "
                                                      f"{response.status_code}")))
                continue
            log.debug("%s %s: answered %d by %s", method, path, response.status_code, url)
            if not only:
                self.url = url
            return answer_of(response, method, path)
        raise _none_answered(errors, self.ca)

    def _order(self) -> list[str]:
        """Every portal, the one that answered last first, then the others in order."""
        return [self.url] + [u for u in self.urls if u != self.url]

    def _send(self, url: str, method: str, path: str, **kwargs):
        """The response of `url`; _Passed when the next portal should be tried instead."""
        try:
            return self.session.request(method, url + path,
                                        timeout=(self.connect_timeout, self.timeout), **kwargs)
        except requests.exceptions.SSLError as e:
            raise _Passed(PortalUnreachable(
                f"TLS with {url} failed: it is not the portal of the CA {self.ca} "
                f"({_reason(e)})", "check --ca: the cluster CA is /etc/dragonball/ca.crt on "
                "any server of the cluster; check its fingerprint with the portal's")) from e
        except requests.exceptions.ReadTimeout as e:
            error = PortalUnreachable(
                f"the portal at {url} did not answer {method} {path} within "
                f"{self.timeout:.0f} s", "it may still be doing it: look at its state "
                "(`dragonball status`) before trying again")
            if method.upper() not in IDEMPOTENT:
                raise error from e  # it may have been done: never sent twice
            raise _Passed(error) from e
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as e:
            raise _Passed(PortalUnreachable(
                f"cannot reach the portal at {url}: {_reason(e)}",
                "is the portal running ('systemctl status dragonball-portal' on it) and "
                f"is its port open from here? try: curl --cacert {self.ca} {url}/healthz")) from e
        except requests.exceptions.RequestException as e:
            raise PortalUnreachable(f"cannot talk to the portal at {url}: {_reason(e)}",
                                    "check --portal and --ca") from e
        except OSError as e:  # requests' own words for a CA file it cannot read
            raise PortalUnreachable(f"cannot use the CA file {self.ca}: {_reason(e)}",
                                    f"give a readable CA file; {LOGIN_HINT}") from e


class _Passed(Exception):
    """A portal passed over (carries why): the next one is tried."""

    def __init__(self, error: ClientError) -> None:
        super().__init__(error.message)
        self.error = error


def _none_answered(errors: list, ca: str) -> ClientError:
    """The error when no portal answered: the one's own, or each one's reason."""
    if len(errors) == 1:
        return errors[0][1]
    listed = "; ".join(f"{url}: {e.message}" for url, e in errors)
    return PortalUnreachable(f"no portal of the cluster answers ({listed})",
                             "are the managers running? try: curl --cacert "
                             f"{ca} {errors[0][0]}/healthz; `dragonball login` again with a "
                             "manager's address if they moved")


def _seg(value: str) -> str:
    """A path segment, quoted: a name never changes which route is called."""
    return quote(str(value), safe="")


def _reason(e: Exception) -> str:
    """The innermost cause's words, not urllib3's nested repr."""
    while e.__cause__ is not None or (e.args and isinstance(e.args[0], Exception)):
        e = e.__cause__ or e.args[0]
    reason = getattr(e, "reason", None)
    return str(reason or e).split("] ", 1)[-1][:300]
