"""The registry HTTP API v2 over TLS with the cluster's CA: the one door to a registry.

Every request passes ``verify=<the CA file>`` and the session ignores the
environment (``trust_env = False``): this machine, and maybe a customer's, sets
REQUESTS_CA_BUNDLE / SSL_CERT_FILE / proxies, which would otherwise silently
replace our CA or send loopback traffic to a proxy. Every requests exception
and unexpected status becomes a `RegistryError` here, with what, where and what
to do (no answer: `RegistryUnreachable`; credentials refused: `RegistryRefused`; an
unusable CA file: `RegistryInputInvalid`; any other refusal: the layer's own, FAILED);
nothing foreign leaks out. The password lives only in the session's
auth: it is never logged, never in a message, never in a process argument.
"""

from __future__ import annotations

import logging
import urllib.parse

import requests
import requests.adapters

from dragonball.errors import Denied, InvalidInput, RegistryError, Unavailable

log = logging.getLogger(__name__)

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
TIMEOUT = (10, 300)  # connect, read: a registry verifies a big blob's digest before answering


class RegistryUnreachable(RegistryError, Unavailable):
    """No registry answers at the address, in time, or with a certificate of the CA."""


class RegistryRefused(RegistryError, Denied):
    """The registry refuses the credentials."""


class RegistryInputInvalid(RegistryError, InvalidInput):
    """What the registry calls were given is unusable: a CA file, a password file, an image
    the archive does not hold."""


class RegistryClient:
    """A few registry API v2 calls for one registry, one user, one CA."""

    def __init__(self, host: str, ca_file: str, username: str, password: str,
                 pool_size: int = 8, pull: tuple[str, str] | None = None) -> None:
        self.host = host
        self._pull = pull  # what servers pull with (pull_auth), when not this client's own
        self.ca_file = str(ca_file)
        self.username = username
        self._base = f"https://{host}"
        self._session = requests.Session()
        self._session.trust_env = False
        self._session.auth = (username, password)
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=pool_size)
        self._session.mount("https://", adapter)

    def __repr__(self) -> str:
        return f"RegistryClient({self.host!r}, user={self.username!r}, ca={self.ca_file!r})"

    def close(self) -> None:
        self._session.close()

    def pull_auth(self) -> dict:
        """The credential an engine pulls from this registry with (X-Registry-Auth): the
        pull account when given, so an agent never receives the portal's own."""
        username, password = self._pull or self._session.auth
        return {"username": username, "password": password, "serveraddress": self.host}

    def __enter__(self) -> "RegistryClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the API calls ---------------------------------------------------------------------
    def ping(self) -> None:
        """Check address, TLS and credentials at once (GET /v2/ must answer 200)."""
        self._request("GET", "/v2/", "reach the registry API", (200,))

    def blob_exists(self, repository: str, digest: str) -> bool:
        answer = self._request("HEAD", f"/v2/{repository}/blobs/{digest}",
                               f"check blob {_short(digest)} in {repository}", (200, 404))
        return answer.status_code == 200

    def tag_digest(self, repository: str, tag: str) -> str | None:
        """The digest of the manifest `repository:tag` names, or None when there is none."""
        answer = self._request("HEAD", f"/v2/{repository}/manifests/{tag}",
                               f"check tag {repository}:{tag}", (200, 404),
                               headers={"Accept": MANIFEST_TYPE})
        return answer.headers.get("Docker-Content-Digest") if answer.status_code == 200 else None

    def mount_blob(self, repository: str, digest: str, source: str) -> str | None:
        """Mount `digest` from `source` into `repository`: None when mounted, else an
        upload URL the registry opened instead (then the blob must be uploaded there)."""
        query = urllib.parse.urlencode({"mount": digest, "from": source})
        answer = self._request("POST", f"/v2/{repository}/blobs/uploads/?{query}",
                               f"mount blob {_short(digest)} from {source} into {repository}",
                               (201, 202))
        return None if answer.status_code == 201 else self._location(answer)

    def start_upload(self, repository: str) -> str:
        answer = self._request("POST", f"/v2/{repository}/blobs/uploads/",
                               f"start an upload to {repository}", (202,))
        return self._location(answer)

    def finish_upload(self, location: str, digest: str, body, size: int) -> None:
        """PUT the whole blob to an upload URL; `body` is read as it is sent, never whole."""
        parts = urllib.parse.urlsplit(location)
        query = urllib.parse.urlencode(urllib.parse.parse_qsl(parts.query) + [("digest", digest)])
        url = urllib.parse.urlunsplit(parts._replace(query=query))
        self._request("PUT", url, f"upload blob {_short(digest)} ({size} bytes)", (201,),
                      data=body, headers={"Content-Type": "application/octet-stream",
                                          "Content-Length": str(size)})

    def put_manifest(self, repository: str, tag: str, data: bytes) -> str:
        """PUT a manifest's exact bytes as `repository:tag`; return the digest the registry gave."""
        answer = self._request("PUT", f"/v2/{repository}/manifests/{tag}",
                               f"put manifest {repository}:{tag}", (201,), data=data,
                               headers={"Content-Type": MANIFEST_TYPE})
        return answer.headers.get("Docker-Content-Digest", "")

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str]:
        """(the manifest's bytes, its Docker-Content-Digest)."""
        answer = self._request("GET", f"/v2/{repository}/manifests/{reference}",
                               f"get manifest {repository}:{reference}", (200,),
                               headers={"Accept": MANIFEST_TYPE})
        return answer.content, answer.headers.get("Docker-Content-Digest", "")

    def catalog(self, limit: int = 1000) -> list[str]:
        """The registry's repositories (GET /v2/_catalog), up to `limit`."""
        answer = self._request("GET", f"/v2/_catalog?n={limit}", "list the repositories",
                               (200,))
        return list(_json(answer).get("repositories") or [])

    def tags(self, repository: str) -> list[str]:
        """The tags of `repository` (GET /v2/<name>/tags/list); [] when it has none."""
        answer = self._request("GET", f"/v2/{repository}/tags/list",
                               f"list the tags of {repository}", (200, 404))
        return list(_json(answer).get("tags") or []) if answer.status_code == 200 else []

    # -- the boundary ----------------------------------------------------------------------
    def _location(self, answer: requests.Response) -> str:
        location = answer.headers.get("Location")
        if not location:
            raise RegistryError(f"registry {self.host} opened an upload without a Location",
                                "is this a Docker registry (distribution 2.x)?")
        return urllib.parse.urljoin(self._base + "/", location)

    def _request(self, method: str, path: str, what: str, expect: tuple,
                 **kwargs) -> requests.Response:
        url = path if path.startswith("https://") else self._base + path
        try:
            answer = self._session.request(method, url, verify=self.ca_file, timeout=TIMEOUT,
                                           allow_redirects=False, **kwargs)
        except requests.exceptions.SSLError as e:
            raise RegistryUnreachable(
                f"cannot {what}: TLS with {self.host} failed ({_reason(e)})",
                f"check that {self.ca_file} is the cluster CA and that the registry's "
                f"certificate names {self.host.rsplit(':', 1)[0]}") from e
        except requests.exceptions.Timeout as e:
            raise RegistryUnreachable(
                f"cannot {what}: {self.host} did not answer in time",
                "check the registry container ('run.sh status') and the network") from e
        except requests.exceptions.ConnectionError as e:
            raise RegistryUnreachable(
                f"cannot {what}: no registry answers at {self.host} ({_reason(e)})",
                "check --registry HOST:PORT and that the registry runs") from e
        except requests.exceptions.RequestException as e:
            raise RegistryUnreachable(f"cannot {what}: {_reason(e)}", "rerun with --debug") from e
        except OSError as e:  # after requests' own errors, which are OSErrors too
            raise RegistryInputInvalid(
                f"cannot {what}: {e.strerror or e} (CA file {self.ca_file})",
                "give --ca the cluster CA's certificate file (PEM)") from e
        log.debug("%s %s -> %s", method, url.split("?")[0], answer.status_code)
        if answer.status_code in expect:
            return answer
        raise self._refused(answer, what)

    def _refused(self, answer: requests.Response, what: str) -> RegistryError:
        if answer.status_code == 401:
            return RegistryRefused(f"registry {self.host} refused the credentials of user "
                                   f"{self.username!r} (HTTP 401) while trying to {what}",
                                   "check --username and --password-file: the password must "
                                   "match the registry's htpasswd line for that user")
        return RegistryError(f"registry {self.host} answered HTTP {answer.status_code} to "
                             f"'{what}': {_registry_errors(answer)}",
                             "read the registry's log (docker logs) for the same request")


def _json(answer: requests.Response) -> dict:
    try:
        body = answer.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise RegistryError(f"the registry answered {answer.request.method} "
                            f"{answer.request.path_url.split('?')[0]} with no JSON object",
                            "is this a Docker registry (distribution 2.x)?")
    return body


def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def _reason(e: Exception) -> str:
    """The useful part of a requests error: urllib3 keeps it as the `reason` of its own."""
    inner = e.args[0] if e.args else e
    return str(getattr(inner, "reason", None) or inner)[:300]


def _registry_errors(answer: requests.Response) -> str:
    """The registry's own error codes and messages ({"errors": [...]}), else the body's start."""
    try:
        errors = answer.json().get("errors") or []
        return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors) or "no detail"
    except ValueError:
        return answer.text[:200] or "no detail"
