"""The joining side's calls to the portals, before any change to this server (docs/enrollment.md).

Every manager serves the portal: `portals` may name them all ("a:8443,b:8443"), and each call
tries them in order (`each_portal`), moving on when one cannot be reached or answers 502/503,
never on a refusal (a wrong code is wrong on every portal). The wizard's remote checks
(`PortalChecks`) and `precheck` fetch the CA, pin it by its fingerprint (every manager serves
the same cluster CA; one that presents another stops the join) and enroll, so a bad answer
is said while the person can still fix it; nothing here writes to the server.
dragonball.installer.join's device steps use the same calls.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import tempfile

from dragonball.installer.enrollment_api import (Enrollment, JoinError, PortalApi,
                                                 PortalGone, ca_fingerprint, check_pinned)
from dragonball.installer.host import Host
from dragonball.shared import paths
from dragonball.wizard.model import Checks

log = logging.getLogger(__name__)

ENROLLMENT_PATH = f"{paths.ETC}/enrollment.json"


def portal_list(portals) -> list[str]:
    """["host:port", ...] of the answer "host:port[,host:port...]" (or a list already)."""
    items = portals.split(",") if isinstance(portals, str) else list(portals)
    return list(dict.fromkeys(p.strip() for p in items if p.strip()))


def each_portal(portals, call):
    """`call(portal)` of the first portal that answers, in order. One that cannot be
    reached or serve now (PortalGone) passes to the next; any other JoinError (a refusal,
    another CA) stops at once: it would be the same on every portal, or is a warning."""
    gone: list[tuple[str, JoinError]] = []
    listed = portal_list(portals)
    for portal in listed:
        try:
            return call(portal)
        except PortalGone as e:
            if portal != listed[-1]:
                log.warning("%s; trying the next portal", e.message)
            gone.append((portal, e))
    if len(gone) == 1:
        raise gone[0][1]
    raise JoinError("no portal answers: " + "; ".join(e.message for _, e in gone),
                    "check that the managers run and that this server reaches their port "
                    "8443 (and 2377 for the Swarm); then run the install again")


# --- before any change: the wizard's checks and the precheck -------------------------------

@contextlib.contextmanager
def ca_file(ca_pem: bytes):
    """The pinned CA in a private temporary file, for `verify=` before /etc has it."""
    with tempfile.TemporaryDirectory(prefix="dragonball-ca-") as folder:
        path = os.path.join(folder, "ca.crt")
        with open(path, "wb") as f:
            f.write(ca_pem)
        yield path


def source_address(portal: str) -> str:
    """The address this server reaches `portal` from (a UDP socket's choice: nothing is sent)."""
    host, _, port = portal.rpartition(":")
    try:
        family = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_DGRAM)[0]
        with socket.socket(family[0], socket.SOCK_DGRAM) as sock:
            sock.connect(family[4])
            return sock.getsockname()[0]
    except OSError as e:
        raise JoinError(f"cannot reach the portal at {portal}: {e.strerror or e}",
                        "check the address; this server has no route to it") from e


class PortalChecks:
    """The wizard's remote checks (`dragonball.wizard.Checks`) before any change.

    `check_portal` fetches the portal's CA (so the portal answers over TLS),
    `check_fingerprint` pins it, `check_code` enrolls with the pinned CA for this
    hostname, so a wrong, used or expired code, a hostname taken or a rate limit is
    said while the person can still fix the answer. Nothing is written: the device
    steps enroll again (the portal answers the same device, with a new device token)
    and write. When an earlier run kept the portal's answer on `host`, the code is not
    sent again. Each check raises JoinError (the wizard shows its message) or True.
    """

    def __init__(self, hostname: str, address: str | None = None, host=None) -> None:
        self.hostname, self.address, self.host = hostname, address, host
        self._cas: dict[str, bytes] = {}     # portal -> its CA, as fetched
        self._pinned: dict[str, bytes] = {}  # portal -> its CA, fingerprint checked

    def check_portal(self, portal: str) -> bool:
        ca = each_portal(portal, _fetch_ca)
        ca_fingerprint(ca)  # it is a certificate, or JoinError
        self._cas[portal] = ca
        return True

    def check_fingerprint(self, portal: str, fingerprint: str) -> bool:
        if portal not in self._cas:
            self.check_portal(portal)
        check_pinned(self._cas[portal], fingerprint, portal)
        self._pinned[portal] = self._cas[portal]
        return True

    def check_code(self, portal: str, code: str) -> bool:
        if portal not in self._pinned:
            log.info("the code is checked once the CA is pinned (before any change)")
            return True
        if self.host is not None and saved_enrollment(self.host, self._pinned[portal]):
            # An earlier run enrolled (the code may be spent since): enrolling again would
            # replace the device token that run kept.
            return True
        enroll(portal, self._pinned[portal], code, self.hostname, self.address)
        return True

    def checks(self) -> Checks:
        return Checks(check_portal=self.check_portal, check_fingerprint=self.check_fingerprint,
                      check_code=self.check_code)


def wizard_checks() -> Checks:
    """The wizard's remote checks of a device's answers (installer/install.py, collect)."""
    return PortalChecks(socket.gethostname(), host=Host()).checks()


def enroll(portals, ca_pem: bytes, code: str, hostname: str,
           address: str | None, csr: bytes | None = None) -> Enrollment:
    """POST /api/v1/enroll to the first of `portals` that answers, verified with the pinned
    CA; `address` None: the one this server reaches that portal from; `csr`: this server's
    agent key's signing request (the install's enrollment; a check sends none)."""
    def one(portal: str) -> Enrollment:
        with PortalApi(portal, path) as api:
            return api.enroll(code, hostname, address or source_address(portal), csr)
    with ca_file(ca_pem) as path:
        return each_portal(portals, one)


def _fetch_ca(portal: str) -> bytes:
    with PortalApi(portal) as api:
        return api.fetch_ca()


def fetch_pinned_ca(portals, fingerprint: str) -> bytes:
    """The cluster CA from the first of `portals` that answers, once its fingerprint is the
    one given; JoinError otherwise (another CA: refused, the next portal is not tried)."""
    def one(portal: str) -> bytes:
        ca = _fetch_ca(portal)
        check_pinned(ca, fingerprint, portal)
        return ca
    return each_portal(portals, one)


def precheck(answers, hostname: str, host) -> Enrollment:
    """Everything a device's install depends on remotely, before any change: the portal
    answers, its CA is the pinned one, it accepts the code for this hostname. An
    earlier run's saved answer stands in for the code (spent once the device
    reported it joined)."""
    ca = fetch_pinned_ca(answers.portal, answers.ca_fingerprint)
    saved = saved_enrollment(host, ca)
    if saved is not None:
        return saved
    return enroll(answers.portal, ca, answers.enrollment_code, hostname, answers.address)


def saved_enrollment(host, ca_pem: bytes) -> Enrollment | None:
    """The answer an earlier run kept in ENROLLMENT_PATH, if it came from this CA's portal."""
    text = host.read_text(ENROLLMENT_PATH)
    if not text:
        return None
    try:
        saved = Enrollment.from_document(json.loads(text))
    except (ValueError, JoinError):
        log.warning("%s is unreadable: enrolling again", ENROLLMENT_PATH)
        return None
    same = ca_fingerprint(saved.ca_pem.encode()) == ca_fingerprint(ca_pem)
    return saved if same else None
