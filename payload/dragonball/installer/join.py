"""Joining a portal's cluster (role device): the joining side of docs/enrollment.md.

Before any change to this server (the wizard's `PortalChecks`, run by the install
command while it reads the answers; `precheck` for other callers): the portal
answers, its CA matches the fingerprint the person was given, and the portal accepts
the code for this hostname. Then the device steps (a device's in installer/roles.py),
each idempotent, each noting what it changes for `reset` before changing it:

    join.ca        the pinned CA in /etc/dragonball/ca.crt
    join.enroll    this server's agent identity (a key made here, never sent; the portal
                   signs its request for the address and hostname it enrolled) in
                   /etc/dragonball/agent/identity/ (key 0600), and the portal's answer in
                   /etc/dragonball/enrollment.json (0600)
    join.registry  /etc/docker/certs.d/<registry>/ca.crt, docker login --password-stdin;
                   a registry that does not answer (its server, s1, is down) is a warning, not
                   a failure: tasks start from the images images.load loaded (pinned by ID)
    join.swarm     POST /swarm/join to this server's engine, the join token in the body,
                   never in a program's argv (already in this Swarm: done)
    join.report    POST /api/v1/devices/{id}/joined with the device token and the versions
                   this server runs; the portal labels the node (with those versions) and
                   promotes managers (3 once there are 3 servers)

Every manager serves the portal: the answer `portal` may name them all ("a:8443,b:8443",
what `dragonball enroll` prints); the calls to them, tried in order, and the checks before
any change are in `join_portals`. enrollment.json records every portal.

No ssh key of the portal goes into root's authorized_keys any more (nothing used it, and a
manager reaches every server through Swarm already): a device installed by an earlier
release keeps the line its journal recorded until `reset` takes it away.

The HTTP side is `enrollment_api`; programs run through the install's `Host` (argv
lists, the frozen runtime's LD_LIBRARY_PATH undone), the Swarm join through its engine API
(`host.engine`): no secret is ever an argument (the registry password goes on stdin).
"""

from __future__ import annotations

import json
import logging
import time

import dragonball
from dragonball import pki
from dragonball.errors import InstallerError
from dragonball.installer.apply import write_file
from dragonball.installer.enrollment_api import (Enrollment, JoinError, PortalApi,
                                                 ca_fingerprint, enrollment_json)
from dragonball.installer.join_portals import (ENROLLMENT_PATH, PortalChecks, ca_file,
                                               each_portal, enroll, fetch_pinned_ca,
                                               portal_list, precheck, saved_enrollment,
                                               source_address, wizard_checks)
from dragonball.installer.portal.cluster import write_private
from dragonball.installer.steps import Step
from dragonball.installer import overlay as overlay_probe
from dragonball.installer.undo import undoer
from dragonball.release import installed
from dragonball.shared import fingerprints, paths

log = logging.getLogger(__name__)

CA_PATH = paths.CA_CERT
CERTS_D = "/etc/docker/certs.d"
SWARM_WAIT_S = 90
REGISTRY_LOGIN_S = 60
#: docker login keeps the credential in $HOME/.docker: root's, whatever sudo kept of HOME.
ROOT_HOME = {"HOME": "/root"}
MASK = "********"

# The calls to the portals before any change live in join_portals; they are this module's
# API too (the install command, rejoin and the tests reach them here).
__all__ = ["CA_PATH", "ENROLLMENT_PATH", "DeviceJoin", "Enrollment", "JoinError",
           "PortalApi", "PortalChecks", "ca_file", "device_steps", "each_portal", "enroll",
           "fetch_pinned_ca", "precheck", "saved_enrollment", "source_address",
           "wizard_checks"]


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
        self._identity_key: bytes | None = None  # made for this enrollment, not written yet

    def steps(self) -> list[Step]:
        """Every step of the join, in order."""
        return self.enroll_steps() + self.swarm_steps()

    def enroll_steps(self) -> list[Step]:
        """Up to the registry login: this server trusted and enrolled, not in the Swarm yet."""
        return [Step("join.ca", "trust the cluster CA (pinned by its fingerprint)",
                     self.trust_ca),
                Step("join.enroll", "enroll this server on the portal", self.enroll),
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
                # this server's agent identity: its key made here, never sent anywhere
                key = pki.new_key_pem()
                found = enroll(self.answers.portal, self.ca(), self.answers.enrollment_code,
                               self.hostname, self.answers.address,
                               csr=pki.csr_pem(key, self.hostname))
                if not found.agent_cert:
                    raise JoinError("the portal's enrollment answer holds no certificate for "
                                    "this server's agent", "the portal and this .bin may be "
                                    "of different releases: use the .bin the portal was "
                                    "installed from")
                self._identity_key = key
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
        """The portal's answer kept, and this server's agent identity beside it (written
        first: a kept answer means the identity is there)."""
        undo = self.ctx.undo("join.enroll")
        found = self.enrollment()
        if self._identity_key is not None:
            write_private(self.ctx, undo, paths.AGENT_KEY, self._identity_key.decode())
            write_private(self.ctx, undo, paths.AGENT_CERT, found.agent_cert, 0o644)
        write_file(self.host, undo, ENROLLMENT_PATH,
                   enrollment_json(self.enrollment(), portal_list(self.answers.portal)), 0o600)
        return undo.entries()

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
        self.ctx.progress.update(f"joining the Swarm at {found.manager_address}")
        # Through the engine's API, the token in the request's body: as an argument of
        # `docker swarm join` any user of this server could read it while the join ran.
        detail = ""
        try:
            self.host.engine.join_swarm(found.manager_address, found.join_token,
                                        self.answers.address, timeout=SWARM_WAIT_S)
        except InstallerError as e:  # refused, unreachable, or not finished in time
            detail = e.message
        state = swarm_state(self.host)  # a join that timed out goes on in the background
        if state.get("LocalNodeState") != "active":
            raise join_failed(found.manager_address, found.join_token, detail or
                              f"the engine took the join, yet its Swarm state is "
                              f"'{state.get('LocalNodeState') or 'unknown'}'")
        return undo.entries()

    def report(self) -> dict:
        found = self.enrollment()
        node_id = swarm_state(self.host).get("NodeID")
        if not node_id:
            raise JoinError("this server has no Swarm node ID after joining",
                            "see 'docker info'; then run the install again")
        capable = overlay_probe.probe(self.host)
        versions = running_versions(self.host)

        def one(portal: str) -> None:
            with PortalApi(portal, path) as api:
                api.joined(found.device_id, found.device_token, node_id, capable,
                           key_pem=self.host.read_bytes(paths.AGENT_KEY), versions=versions)
        with ca_file(self.ca()) as path:
            each_portal(self.portals(), one)
        return {}

    def portals(self) -> list[str]:
        """The portals given, then every other one the portal listed ("host:port")."""
        listed = [u.removeprefix("https://") for u in self.enrollment().portals]
        return portal_list([*portal_list(self.answers.portal), *listed])


def running_versions(host) -> dict:
    """What this server runs, for its node's labels: DragonBall's version and the release
    release.record wrote down (None before that step, or from a runtime not in a .bin)."""
    record = installed.read(installed.CURRENT, host.path(installed.RELEASE_DIR))
    return {"version": dragonball.__version__,
            "release": {"name": record["name"], "version": record["version"]}
            if record else None}


def registry_warning(address: str, detail: str) -> str:
    """What the install says when the registry does not answer (pure)."""
    return (f"the registry at {address} did not take the login ({detail.strip()[:200]}): "
            "this server joins without it, its tasks start from the images this .bin "
            f"loaded; once the registry answers: docker login {address} (check with curl "
            f"--cacert {CA_PATH} https://{address}/v2/, 401 is fine)")


def join_failed(manager: str, token: str, detail: str) -> JoinError:
    """The Swarm join's failure (pure): what the engine said, the join token masked."""
    return JoinError(f"this server did not join the Swarm at {manager}: "
                     f"{detail.replace(token, MASK)}", "check that 2377/tcp, 7946/tcp+udp and "
                     "4789/udp are open between this server and the portal, then run the "
                     "install again")


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
