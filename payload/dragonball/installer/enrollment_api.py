"""The portal's enrollment API as a joining server calls it (docs/enrollment.md).

`PortalApi` is the one door: a requests session that ignores the environment
(trust_env False: this machine, and maybe a customer's, sets REQUESTS_CA_BUNDLE and
proxies, which would silently replace our CA), the CA fetched once without
verification and compared with the pinned fingerprint by the caller, every later
call verified with that CA. Every requests exception and refusal becomes a
`JoinError` saying what, where and what to do; secrets (the code, tokens, the
registry password) never reach a log or a message. `Enrollment` is the portal's
answer, read and checked once.
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import logging
import re
import time
import warnings

import requests
import urllib3

from dragonball.errors import Failed, InstallerError
from dragonball.shared import device_proof, fingerprints

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 30
_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$")
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


class JoinError(InstallerError, Failed):
    """Joining the portal's cluster failed, or the portal refused this server."""


class PortalGone(JoinError):
    """This portal cannot be reached or cannot serve now (502, 503): the next manager's
    portal is tried (join_portals.each_portal). A refusal is a JoinError: it is the cluster's."""


#: Answers that say "this portal cannot serve now, another manager's may".
UNAVAILABLE = (502, 503)


# --- the CA fingerprint ------------------------------------------------------------------

def ca_fingerprint(ca_pem: bytes) -> str:
    """`SHA256:<hex of sha256(DER)>` of a PEM certificate; JoinError when it is not one."""
    try:
        return fingerprints.of_certificate(ca_pem)
    except ValueError as e:
        raise JoinError("the portal's /api/v1/ca did not answer with a PEM certificate",
                        "check the address is the portal's (port 8443 by default)") from e


def check_pinned(ca_pem: bytes, expected: str, portal: str) -> None:
    """Refuse a CA whose fingerprint is not the one the person was given."""
    actual = ca_fingerprint(ca_pem)
    if actual != fingerprints.normalize(expected):
        raise JoinError(
            f"the portal at {portal} presented a CA whose fingerprint is {actual}, but this "
            f"server was told to trust {expected}: refusing to send it the enrollment code",
            "compare with the fingerprint 'dragonball enroll' printed on the portal; if they "
            "differ, this is not your portal (or someone is in between)")


# --- what the portal answers ---------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Enrollment:
    """The portal's answer to POST /api/v1/enroll; secrets are kept out of repr()."""

    device_id: str
    ca_pem: str
    join_token: str = dataclasses.field(repr=False)
    manager_address: str
    swarm_role: str
    registry_address: str
    registry_username: str
    registry_password: str = dataclasses.field(repr=False)
    device_token: str = dataclasses.field(repr=False)
    portal_ssh_pubkey: str | None = None
    labels: dict = dataclasses.field(default_factory=dict)
    portals: tuple = ()  # every manager's portal URL the portal listed (older ones: none)
    agent_cert: str | None = None  # this server's agent certificate, when it sent a CSR
    document: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_document(cls, doc: object) -> Enrollment:
        """Read the answer's JSON; JoinError naming every field missing or mistyped."""
        doc = doc if isinstance(doc, dict) else {}
        swarm = doc.get("swarm") if isinstance(doc.get("swarm"), dict) else {}
        registry = doc.get("registry") if isinstance(doc.get("registry"), dict) else {}
        token = doc.get("device_token", doc.get("token"))
        values = {"device_id": doc.get("device_id"), "ca_pem": doc.get("ca_pem"),
                  "join_token": swarm.get("join_token"),
                  "manager_address": swarm.get("manager_address"),
                  "swarm_role": swarm.get("role", "worker"),
                  "registry_address": registry.get("address"),
                  "registry_username": registry.get("username"),
                  "registry_password": registry.get("password"), "device_token": token}
        wrong = sorted(k for k, v in values.items() if not isinstance(v, (str, int)) or v == "")
        if wrong:
            raise JoinError(f"the portal's enrollment answer lacks {', '.join(wrong)}",
                            "the portal and this .bin may be of different releases: use the "
                            ".bin the portal was installed from")
        if not _HOST_PORT.match(str(values["registry_address"])):
            raise JoinError(f"the portal's registry address {values['registry_address']!r} "
                            "is not HOST:PORT", "the portal and this .bin may be of different "
                            "releases: use the .bin the portal was installed from")
        labels = doc.get("labels") if isinstance(doc.get("labels"), dict) else {}
        pubkey = doc.get("portal_ssh_pubkey")
        listed = doc.get("portals") if isinstance(doc.get("portals"), list) else []
        cert = doc.get("agent_cert")
        return cls(**{k: str(v) for k, v in values.items()},
                   agent_cert=cert if isinstance(cert, str) and cert else None,
                   portal_ssh_pubkey=pubkey if isinstance(pubkey, str) and pubkey else None,
                   labels={str(k): str(v) for k, v in labels.items()},
                   portals=tuple(str(u) for u in listed if isinstance(u, str)), document=doc)


# --- the portal's API ----------------------------------------------------------------------

def _reason(error: Exception) -> str:
    """Why a connection failed, in a few words (`Connection refused`, `timed out`)."""
    text = str(error)
    found = _ERRNO.search(text)
    if found:
        return found.group(1).strip()
    if "timed out" in text.lower() or isinstance(error, requests.Timeout):
        return "timed out"
    return text.split(": ")[-1][:200]


def _error_text(answer: requests.Response) -> str:
    try:
        doc = answer.json()
    except ValueError:
        return answer.text.strip()[:200]
    detail = doc.get("error", doc.get("detail")) if isinstance(doc, dict) else doc
    return str(detail)[:300] if detail else ""


def http_date_seconds(value: str | None) -> float | None:
    """An HTTP Date header as epoch seconds; None when absent or malformed (pure)."""
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


class PortalApi:
    """The few calls a joining server makes to the portal at `portal` ("host:port")."""

    def __init__(self, portal: str, ca_file: str | None = None) -> None:
        self.portal = portal
        self.ca_file = ca_file  # None: only the unverified CA fetch is allowed
        self._base = f"https://{portal}"
        self._session = requests.Session()
        self._session.trust_env = False

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> PortalApi:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def fetch_ca(self) -> bytes:
        """GET /api/v1/ca without verification: the caller must compare its fingerprint."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
            answer = self._request("GET", "/api/v1/ca", "fetch the cluster CA", verify=False)
        self._check_serving(answer, "fetch the cluster CA")
        if answer.status_code != 200:
            raise JoinError(f"{self._base}/api/v1/ca answered {answer.status_code}, not the "
                            "cluster CA", "check the address is the portal's (port 8443 by "
                            "default) and that its install finished")
        return answer.content

    def clock(self) -> float | None:
        """The portal's clock (epoch seconds, from the Date header of GET /healthz), or None.

        Unverified like the CA fetch: a time is no secret, and a forged one can only make
        the clock check complain.
        """
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
            answer = self._request("GET", "/healthz", "read the portal's clock", verify=False)
        return http_date_seconds(answer.headers.get("Date"))

    def enroll(self, code: str, hostname: str, address: str,
               csr: bytes | None = None) -> Enrollment:
        """POST /api/v1/enroll (with `csr`, the signing request of this server's agent key:
        the answer's agent_cert); JoinError saying why the portal refused, if it did."""
        body = {"code": code, "hostname": hostname, "address": address}
        if csr is not None:
            body["csr"] = csr.decode()
        answer = self._request("POST", "/api/v1/enroll", "enroll this server", json=body)
        self._check_serving(answer, "enroll this server")
        if answer.status_code == 200:
            try:
                return Enrollment.from_document(answer.json())
            except ValueError as e:
                raise JoinError("the portal's enrollment answer is not JSON") from e
        raise self._refusal(answer, hostname)

    def joined(self, device_id: str, device_token: str, node_id: str,
               overlay_encryption: bool | None = None, key_pem: bytes | None = None,
               versions: dict | None = None) -> None:
        """POST /api/v1/devices/{id}/joined with the device token, signed with this server's
        own key `key_pem` (shared/device_proof.py), whether this server's kernel can
        encrypt overlay networks (installer/overlay.py), and `versions`: {"version":
        DragonBall's, "release": {"name", "version"} or None}, which the portal puts on
        this server's node (shared/node_labels.py)."""
        body = {"node_id": node_id}
        if overlay_encryption is not None:
            body["overlay_encryption"] = overlay_encryption
        body |= {k: v for k, v in (versions or {}).items() if v is not None}
        path, data = f"/api/v1/devices/{device_id}/joined", json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {device_token}",
                   "Content-Type": "application/json"}
        if key_pem:
            headers |= device_proof.proof_headers(key_pem, "POST", path, data, time.time())
        answer = self._request("POST", path, "report this server joined", data=data,
                               headers=headers)
        self._check_serving(answer, "report this server joined")
        if answer.status_code not in (200, 204):
            raise JoinError(f"the portal refused the report that this server joined "
                            f"({answer.status_code}: {_error_text(answer)})",
                            "run the install again; if it fails the same way, run "
                            "'dragonball enroll' on the portal and use the new code")

    def _check_serving(self, answer: requests.Response, what: str) -> None:
        """PortalGone when the portal answered that it cannot serve now (502, 503)."""
        if answer.status_code in UNAVAILABLE:
            raise PortalGone(f"the portal at {self.portal} cannot {what} now "
                             f"({answer.status_code}: {_error_text(answer)})",
                             "another manager's portal may: give every manager's address "
                             "(--portal A,B,C, as 'dragonball enroll' prints it)")

    def _refusal(self, answer: requests.Response, hostname: str) -> JoinError:
        """What the portal refused and what to do; its own advice, when it gave one, is
        not said twice."""
        said = _error_text(answer)
        status = answer.status_code
        if status == 401:
            found = (f"the portal refused the enrollment code: {said or 'unknown code'}",
                     "codes are one-time and expire: run 'dragonball enroll' on the portal "
                     "for a new one, and give it here")
        elif status == 409:
            found = (f"the portal refused the name {hostname!r}: "
                     f"{said or 'another device has it'}",
                     "give this server a name of its own (hostnamectl set-hostname NAME), "
                     "or remove the old device on the portal first")
        elif status == 429:
            found = (f"the portal refuses codes from this server for now: "
                     f"{said or 'too many wrong codes'}", "wait 10 minutes, then try again "
                     "with the exact code the portal printed")
        else:
            found = (f"the portal answered {status} to the enrollment"
                     f"{': ' + said if said else ''}",
                     "see the portal's log (journalctl -u dragonball-portal on the portal)")
        message, hint = found
        return JoinError(message, "" if status in (401, 409, 429) and ": " in said else hint)

    def _request(self, method: str, path: str, what: str, verify: bool | str | None = None,
                 **kwargs) -> requests.Response:
        if verify is None:
            if self.ca_file is None:
                raise JoinError(f"cannot {what}: the portal's CA is not pinned yet")
            verify = self.ca_file
        url = self._base + path
        try:
            return self._session.request(method, url, verify=verify, timeout=(
                CONNECT_TIMEOUT_S, READ_TIMEOUT_S), allow_redirects=False, **kwargs)
        except requests.exceptions.SSLError as e:
            raise PortalGone(f"cannot {what}: the portal at {self.portal} did not prove it "
                            f"holds a certificate of the pinned CA ({_reason(e)})",
                            "check the address is the portal's own; if it is, the portal's "
                            "certificate does not name it: use the address the portal "
                            "printed") from e
        except requests.exceptions.ConnectionError as e:  # refused, unreachable, timed out
            raise PortalGone(f"cannot reach the portal at {self.portal}: {_reason(e)}",
                            "check the address and port (default 8443), that the portal runs "
                            "(systemctl status dragonball-portal on it) and that no firewall "
                            "between the two servers blocks the port") from e
        except requests.exceptions.Timeout as e:
            raise PortalGone(f"the portal at {self.portal} did not answer within "
                            f"{READ_TIMEOUT_S} s when asked to {what}",
                            "check the portal server is not overloaded; then try again") from e
        except requests.exceptions.RequestException as e:
            raise JoinError(f"cannot {what} at {url}: {_reason(e)}") from e


def enrollment_json(enrollment: Enrollment, given: list[str] = ()) -> str:
    """The file kept in /etc/dragonball/enrollment.json: the portal's answer as it came, its
    "portals" those it listed and then those the join was given ("host:port"), as URLs."""
    portals = list(dict.fromkeys([*enrollment.portals, *(f"https://{p}" for p in given)]))
    document = enrollment.document | ({"portals": portals} if portals else {})
    return json.dumps(document, indent=1, sort_keys=True) + "\n"
