"""Joining a portal's cluster (role device): the joining side of docs/enrollment.md.

Before any change to this server (the wizard's `PortalChecks`, run by the install
command while it reads the answers; `precheck` for other callers): the portal
answers, its CA matches the fingerprint the person was given, and the portal accepts
the code for this hostname. Then the device steps (a device's in installer/roles.py),
each idempotent, each noting what it changes for `reset` before changing it:

    join.ca        the pinned CA in /etc/dragonball/ca.crt
    join.enroll    the portal's answer in /etc/dragonball/enrollment.json (0600)
    join.ssh_key   the portal's ssh public key in root's authorized_keys
    join.registry  /etc/docker/certs.d/<registry>/ca.crt, docker login --password-stdin;
                   a registry that does not answer (its server, s1, is down) is a warning, not
                   a failure: tasks start from the images images.load loaded (pinned by ID)
    join.swarm     docker swarm join (already in this Swarm: done)
    join.report    POST /api/v1/devices/{id}/joined with the device token; the portal
                   labels the node and promotes managers (3 once there are 3 servers)

Every manager serves the portal: the answer `portal` may name them all ("a:8443,b:8443",
what `dragonball enroll` prints), and each remote call tries them in order (`each_portal`),
moving on when one cannot be reached or answers 502/503, never on a refusal (a wrong code is
wrong on every portal). The CA is pinned by its fingerprint: every manager serves the same
cluster CA, and one that presents another stops the join. enrollment.json records them all.

The HTTP side is `enrollment_api`; programs run through the install's `Host` (argv
lists, the frozen runtime's LD_LIBRARY_PATH undone).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import tempfile
import time

from dragonball.errors import InstallerError
from dragonball.installer import plan
from dragonball.installer.apply import write_file
from dragonball.installer.enrollment_api import (Enrollment, JoinError, PortalApi,
                                                 PortalGone, ca_fingerprint, check_pinned,
                                                 enrollment_json)
from dragonball.installer.host import Host
from dragonball.installer.steps import Step
from dragonball.installer.undo import undoer
from dragonball.shared import fingerprints, paths
from dragonball.wizard.model import Checks

log = logging.getLogger(__name__)

CA_PATH = paths.CA_CERT
ENROLLMENT_PATH = f"{paths.ETC}/enrollment.json"
CERTS_D = "/etc/docker/certs.d"
SWARM_WAIT_S = 90
REGISTRY_LOGIN_S = 60
#: docker login keeps the credential in $HOME/.docker: root's, whatever sudo kept of HOME.
ROOT_HOME = {"HOME": "/root"}
MASK = "********"

__all__ = ["CA_PATH", "ENROLLMENT_PATH", "DeviceJoin", "Enrollment", "JoinError",
           "PortalApi", "PortalChecks", "device_steps", "each_portal", "precheck",
           "wizard_checks"]


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
           address: str | None) -> Enrollment:
    """POST /api/v1/enroll to the first of `portals` that answers, verified with the pinned
    CA; `address` None: the one this server reaches that portal from."""
    def one(portal: str) -> Enrollment:
        with PortalApi(portal, path) as api:
            return api.enroll(code, hostname, address or source_address(portal))
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


# --- the device steps ------------------------------------------------------------------------

class DeviceJoin:
    """The device steps of one install; they share the pinned CA and the portal's answer.

    Both are read back from /etc/dragonball on a re-run whose earlier steps are done.
    """

    def __init__(self, ctx) -> None:
        self.ctx, self.host, self.answers = ctx, ctx.host, ctx.answers
        # The name Swarm shows (the kernel's), as the wizard's code check sent it: the
        # portal binds the code to the first name it is sent with.
        self.hostname = ctx.facts.hostname
        self._ca: bytes | None = None
        self._enrollment: Enrollment | None = None

    def steps(self) -> list[Step]:
        """Every step of the join, in order."""
        return self.enroll_steps() + self.swarm_steps()

    def enroll_steps(self) -> list[Step]:
        """Up to the registry login: this server trusted and enrolled, not in the Swarm yet."""
        return [Step("join.ca", "trust the cluster CA (pinned by its fingerprint)",
                     self.trust_ca),
                Step("join.enroll", "enroll this server on the portal", self.enroll),
                Step("join.ssh_key", "the portal's ssh key in root's authorized_keys",
                     self.ssh_key),
                Step("join.registry", "trust the portal's registry and log in to it",
                     self.registry)]

    def swarm_steps(self) -> list[Step]:
        """Into the Swarm, then told to the portal (which labels and promotes the node)."""
        return [Step("join.swarm", "join the cluster's Swarm", self.swarm),
                Step("join.report", "report to the portal that this server joined",
                     self.report)]

    # --- what the steps share ---------------------------------------------------------

    def ca(self) -> bytes:
        if self._ca is None:
            kept = self.host.read_bytes(CA_PATH)
            pinned = fingerprints.normalize(self.answers.ca_fingerprint)
            if kept is not None and _fingerprint_or_none(kept) == pinned:
                self._ca = kept
            else:
                self._ca = fetch_pinned_ca(self.answers.portal, self.answers.ca_fingerprint)
        return self._ca

    def enrollment(self) -> Enrollment:
        if self._enrollment is None:
            found = saved_enrollment(self.host, self.ca())
            if found is None:
                self.ctx.progress.update(f"enrolling {self.hostname} on "
                                         f"{self.answers.portal.replace(',', ', ')}")
                found = enroll(self.answers.portal, self.ca(), self.answers.enrollment_code,
                               self.hostname, self.answers.address)
            if self.ctx.secrets is not None:
                code = self.answers.enrollment_code
                self.ctx.secrets.add(code, code.replace("-", ""))
                for secret in (found.join_token, found.registry_password, found.device_token):
                    self.ctx.secrets.add(secret)
            self._enrollment = found
        return self._enrollment

    # --- the steps ------------------------------------------------------------------------

    def trust_ca(self) -> dict:
        undo = self.ctx.undo("join.ca")
        self._ca = fetch_pinned_ca(self.answers.portal, self.answers.ca_fingerprint)
        write_file(self.host, undo, CA_PATH, self._ca.decode(), 0o644)
        return undo.entries()

    def enroll(self) -> dict:
        undo = self.ctx.undo("join.enroll")
        write_file(self.host, undo, ENROLLMENT_PATH,
                   enrollment_json(self.enrollment(), portal_list(self.answers.portal)), 0o600)
        return undo.entries()

    def ssh_key(self) -> dict:
        key = self.enrollment().portal_ssh_pubkey
        if not key:
            return {}
        return plan.authorized_key_step(self.ctx, key, "join.ssh_key").action()

    def registry(self) -> dict:
        """Trust the registry and log in. A registry that does not answer (its server is
        down) does not stop the join: tasks start from the images images.load loaded."""
        found, undo = self.enrollment(), self.ctx.undo("join.registry")
        address = found.registry_address
        write_file(self.host, undo, f"{CERTS_D}/{address}/ca.crt", self.ca().decode(), 0o644)
        undo.note(f"login:{address}", {"kind": "docker_login", "registry": address})
        self.ctx.progress.update(f"docker login {address}")
        try:
            done = self.host.run(["docker", "login", "--username", found.registry_username,
                                  "--password-stdin", address],
                                 stdin=found.registry_password.encode(), env=ROOT_HOME,
                                 check=False, timeout=REGISTRY_LOGIN_S)
            failed = "" if done.ok else done.describe()
        except InstallerError as e:  # it did not finish in time
            failed = e.message
        if failed:
            text = registry_warning(address, failed)
            self.ctx.progress.warn(text)
            undo.note("registry:not_logged_in", {"kind": "join_note", "text": text})
        return undo.entries()

    def swarm(self) -> dict:
        found, undo = self.enrollment(), self.ctx.undo("join.swarm")
        state = swarm_state(self.host)
        if state.get("LocalNodeState") == "active":
            check_same_swarm(state, found.manager_address)
            return undo.entries()
        undo.note("swarm", {"kind": "swarm_join", "manager": found.manager_address})
        self.ctx.progress.update(f"docker swarm join {found.manager_address}")
        # The token is an argument (docker reads it nowhere else): kept out of every
        # message this step makes, as the log's filter keeps it out of the log.
        try:
            done = self.host.run(["docker", "swarm", "join", "--token", found.join_token,
                                  "--advertise-addr", self.answers.address,
                                  found.manager_address], check=False, timeout=SWARM_WAIT_S)
            detail = done.describe()
        except InstallerError as e:  # the program did not finish in time
            detail = e.message
        state = swarm_state(self.host)  # a join that timed out goes on in the background
        if state.get("LocalNodeState") != "active":
            raise JoinError(f"this server did not join the Swarm at {found.manager_address}: "
                            f"{detail.replace(found.join_token, MASK)}", "check that 2377/tcp, "
                            "7946/tcp+udp and 4789/udp are open between this server and the "
                            "portal, then run the install again")
        return undo.entries()

    def report(self) -> dict:
        found = self.enrollment()
        node_id = swarm_state(self.host).get("NodeID")
        if not node_id:
            raise JoinError("this server has no Swarm node ID after joining",
                            "see 'docker info'; then run the install again")
        def one(portal: str) -> None:
            with PortalApi(portal, path) as api:
                api.joined(found.device_id, found.device_token, node_id)
        with ca_file(self.ca()) as path:
            each_portal(self.portals(), one)
        return {}

    def portals(self) -> list[str]:
        """The portals given, then every other one the portal listed ("host:port")."""
        listed = [u.removeprefix("https://") for u in self.enrollment().portals]
        return portal_list([*portal_list(self.answers.portal), *listed])


def registry_warning(address: str, detail: str) -> str:
    """What the install says when the registry does not answer (pure)."""
    return (f"the registry at {address} did not take the login ({detail.strip()[:200]}): "
            "this server joins without it, its tasks start from the images this .bin "
            f"loaded; once the registry answers: docker login {address} (check with curl "
            f"--cacert {CA_PATH} https://{address}/v2/, 401 is fine)")


def _fingerprint_or_none(pem: bytes) -> str | None:
    try:
        return ca_fingerprint(pem)
    except JoinError:
        return None


def swarm_state(host, wait_s: float = SWARM_WAIT_S) -> dict:
    """`docker info`'s Swarm section, once it is not "pending" (a join going on)."""
    deadline = time.monotonic() + wait_s
    while True:
        done = host.run(["docker", "info", "--format", "{{json .Swarm}}"], timeout=30)
        try:
            state = json.loads(done.out or "{}")
        except ValueError as e:
            raise JoinError(f"docker info printed no Swarm state: {done.out.strip()[:200]}") from e
        if state.get("LocalNodeState") != "pending" or time.monotonic() >= deadline:
            return state
        time.sleep(1)


def check_same_swarm(state: dict, manager_address: str) -> None:
    """Pass when this active node's managers include the portal's; JoinError otherwise."""
    managers = [m.get("Addr", "") for m in state.get("RemoteManagers") or []]
    host = manager_address.rsplit(":", 1)[0]
    if any(m == manager_address or m.rsplit(":", 1)[0] == host for m in managers):
        return
    raise JoinError(f"this server is already in another Swarm (managers: "
                    f"{', '.join(managers) or 'unknown'}), not the portal's at {manager_address}",
                    "if that Swarm is no longer used, leave it with 'docker swarm leave "
                    "--force', then run the install again")


def device_steps(ctx) -> list[Step]:
    """Every step of the join, in order (installer/roles.py puts agent.params before
    join.swarm)."""
    return DeviceJoin(ctx).steps()


# --- undo ------------------------------------------------------------------------------------

@undoer("docker_login")
def undo_docker_login(host, entry: dict) -> None:
    if host.which("docker"):
        host.run(["docker", "logout", entry["registry"]], check=False, env=ROOT_HOME)


@undoer("join_note")
def undo_join_note(host, entry: dict) -> None:
    """A note in the journal (a registry not logged in to): nothing was changed."""


@undoer("swarm_join")
def undo_swarm_join(host, entry: dict) -> None:
    """Leave the Swarm this step joined (nothing to do once the engine is gone)."""
    if not host.which("docker"):
        return
    done = host.run(["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"], check=False)
    if done.ok and done.out.strip() not in ("", "inactive"):
        host.run(["docker", "swarm", "leave", "--force"], timeout=SWARM_WAIT_S)
