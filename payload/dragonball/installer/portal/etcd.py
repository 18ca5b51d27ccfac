"""portal.etcd: etcd, where the portal's committed state is replicated (docs/portal-ha.md),
as the container `dragonball-etcd` on every Swarm manager; on the portal, a new cluster of
one member named by its hostname. A manager promoted later starts the same container with
`--initial-cluster-state existing` (installer/standby.py, `start_member`).

    dragonball-etcd   image dragonball/etcd:<version> (loaded from the .bin by images.load),
                      restart always, host network: clients on https://<address>:2379 and
                      https://127.0.0.1:2379, peers on https://<address>:2380
    data              <data_dir>/etcd (0700)
    certificates      /etc/dragonball/etcd, read-only: the member's certificate (serverAuth
                      and clientAuth, from the controllers' CA: address, 127.0.0.1,
                      hostname) for its clients and its peers alike, and that CA, the only
                      one it trusts for either (--client-cert-auth, --peer-client-cert-auth)

Why a container and not a Swarm service: as for the registry (installer/portal/__init__.py),
etcd must run whatever the Swarm's state, on these managers exactly, and a member is an
identity (its data, its peer URL) rather than a replica. No secret is in its argv or
environment: the flags name files. Its undo (reset): the container, the data, the
certificates (kinds portal_container, portal_tree, portal_file).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time

from dragonball import __version__, agent_client, pki
from dragonball.errors import DragonBallError, InstallerError
from dragonball.etcd import Etcd, EtcdFailed
from dragonball.installer.apply import missing_dirs
from dragonball.installer.portal.clients import (
    keep_or_issue, make_clients_ca, make_controller_client)
from dragonball.installer.portal.cluster import docker_json, write_private
from dragonball.installer.portal.layout import CONFIG_LABEL, LABEL, hostname_of
from dragonball.portal import managers
from dragonball.shared import paths

log = logging.getLogger(__name__)

CONTAINER = "dragonball-etcd"
REPOSITORY = "dragonball/etcd"
ETCD_DIR = paths.ETCD_CONFIG_DIR
MEMBER_CERT, MEMBER_KEY = f"{ETCD_DIR}/member.crt", f"{ETCD_DIR}/member.key"
TRUSTED_CA = f"{ETCD_DIR}/clients-ca.crt"
CLUSTER_TOKEN = "dragonball"
WAIT_S = 90


def image_ref(version: str = __version__) -> str:
    """The etcd image's name in the engine and the .bin (builder.platform_images.etcd_ref)."""
    return f"{REPOSITORY}:{version}"


def data_path(data_dir: str) -> str:
    return os.path.join(data_dir, "etcd")


@dataclasses.dataclass(frozen=True)
class MemberSpec:
    """One etcd member as it is started: its name, address, cluster and data folder."""

    name: str
    address: str
    initial_cluster: str
    state: str = "new"            # "new" (the portal's cluster of one) or "existing"
    data_dir: str = paths.DATA_DIR


def etcd_flags(spec: MemberSpec) -> list[str]:
    """etcd's command line (pure): files only, no secret."""
    peer, client = managers.peer_url(spec.address), managers.client_url(spec.address)
    return ["--name", spec.name, "--data-dir", data_path(spec.data_dir),
            "--listen-client-urls", f"{client},{managers.LOCAL_ENDPOINT}",
            "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", spec.initial_cluster,
            "--initial-cluster-state", spec.state, "--initial-cluster-token", CLUSTER_TOKEN,
            "--client-cert-auth", f"--trusted-ca-file={TRUSTED_CA}",
            f"--cert-file={MEMBER_CERT}", f"--key-file={MEMBER_KEY}",
            "--peer-client-cert-auth", f"--peer-trusted-ca-file={TRUSTED_CA}",
            f"--peer-cert-file={MEMBER_CERT}", f"--peer-key-file={MEMBER_KEY}"]


def run_argv(image: str, spec: MemberSpec, config_hash: str) -> list[str]:
    """`docker run` of dragonball-etcd (pure)."""
    data = data_path(spec.data_dir)
    return ["docker", "run", "--detach", "--name", CONTAINER, "--restart", "always",
            "--network", "host", "--label", f"{LABEL}=etcd",
            "--label", f"{CONFIG_LABEL}={config_hash}",
            "--log-opt", "max-size=10m", "--log-opt", "max-file=3",
            "--volume", f"{data}:{data}", "--volume", f"{ETCD_DIR}:{ETCD_DIR}:ro",
            image, *etcd_flags(spec)]


def config_hash(image_id: str, spec: MemberSpec) -> str:
    """What the container was made from; the initial cluster is left out: etcd reads it
    only for a new data folder, so a re-run that words it otherwise changes nothing."""
    text = json.dumps(run_argv(image_id, dataclasses.replace(spec, initial_cluster=""), ""))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def client(host, endpoints: list | None = None, timeout: float = 5.0) -> Etcd:
    """An etcd client with the controllers' certificate (the portal's)."""
    return Etcd(endpoints or [managers.LOCAL_ENDPOINT], host.path(paths.CLIENTS_CA_CERT),
                host.path(agent_client.CLIENT_CERT), host.path(agent_client.CLIENT_KEY),
                timeout=timeout)


# --- the adapter: certificates, container, health --------------------------------------------

def make_certificates(ctx, undo, address: str, hostname: str) -> None:
    """The controllers' CA and client certificate, the member's certificate, and the CA
    beside it in /etc/dragonball/etcd (kept while they fit)."""
    clients_ca = make_clients_ca(ctx, undo)
    make_controller_client(ctx, undo, clients_ca)
    ips, dns = managers.certificate_names(address, hostname)
    keep_or_issue(ctx, undo, MEMBER_CERT, MEMBER_KEY, clients_ca, (ips, dns),
                  lambda: pki.issue_peer_cert(clients_ca, f"etcd {hostname}", ips=ips,
                                              dns_names=dns))
    write_private(ctx, undo, TRUSTED_CA, clients_ca.cert_pem.decode(), 0o644)


def start_member(host, undo, spec: MemberSpec, progress) -> None:
    """dragonball-etcd running as `spec` says: kept when it runs from this image and
    configuration, made again otherwise (its data stays)."""
    image = image_ref()
    done = host.run(["docker", "image", "inspect", "--format", "{{.Id}}", image],
                    check=False, timeout=60)
    if not done.ok:
        raise InstallerError(f"the engine has no {image} image",
                             "it comes with the .bin (images.load): run the install again "
                             "with a .bin of this release")
    wanted = config_hash(done.out.strip(), spec)
    data = data_path(spec.data_dir)
    if not host.exists(data):
        undo.note(f"tree:{data}", {"kind": "portal_tree", "path": data,
                                   "created_dirs": missing_dirs(host, data)})
    host.make_dirs(data, mode=0o700)
    os.chmod(host.path(data), 0o700)
    current = docker_json(host, ["docker", "inspect", "--format", "{{json .}}", CONTAINER])
    labels = ((current or {}).get("Config") or {}).get("Labels") or {}
    if current and labels.get(CONFIG_LABEL) == wanted:
        if not (current.get("State") or {}).get("Running"):
            host.run(["docker", "start", CONTAINER], timeout=120)
        return
    undo.note("container:etcd", {"kind": "portal_container", "name": CONTAINER})
    if current:
        host.run(["docker", "rm", "--force", CONTAINER], timeout=120)
    progress.update(f"docker run {CONTAINER} ({spec.state} cluster)")
    host.run(run_argv(image, spec, wanted), timeout=120)


def wait_answers(host, check, what: str, timeout: float = WAIT_S, endpoints: list | None = None,
                 sleep=time.sleep, clock=time.monotonic) -> None:
    """Until `check(etcd client)` is true; InstallerError with the container's last lines."""
    deadline, last = clock() + timeout, ""
    with client(host, endpoints) as etcd:
        while True:
            try:
                if check(etcd):
                    return
            except DragonBallError as e:
                last = e.message
            if clock() > deadline:
                logs = host.run(["docker", "logs", "--tail", "20", CONTAINER], check=False)
                tail = " / ".join((logs.out + logs.err).strip().splitlines()[-5:])
                raise InstallerError(f"etcd {what} after {timeout:.0f} s"
                                     f"{' (' + last[-200:] + ')' if last else ''}",
                                     f"its last lines: {tail or '(none)'}")
            sleep(1.0)


def wait_healthy(host, timeout: float = WAIT_S) -> None:
    """Until etcd's /health says true (a member with a leader: a quorum)."""
    wait_answers(host, lambda etcd: etcd.health(), "is not healthy", timeout)


# --- the step ---------------------------------------------------------------------------------

def start_portal_etcd(ctx) -> dict:
    """portal.etcd: the portal's own member, a new cluster of one."""
    host, undo = ctx.host, ctx.undo("portal.etcd")
    address, name = ctx.answers.address, hostname_of(ctx)
    make_certificates(ctx, undo, address, name)
    spec = MemberSpec(name, address, f"{name}={managers.peer_url(address)}", "new",
                      ctx.data_dir)
    start_member(host, undo, spec, ctx.progress)
    ctx.progress.update(f"waiting for etcd on {managers.LOCAL_ENDPOINT}")
    wait_healthy(host)
    return undo.entries()


def promote_when_caught_up(host, peer_url: str, endpoints: list,
                           timeout: float = WAIT_S) -> None:
    """A learner member (this manager's, `peer_url`) made a voting one once it caught up,
    asked of the members at `endpoints` (a learner serves no such request itself);
    nothing when it votes already."""
    def promoted(etcd) -> bool:
        member = next((m for m in etcd.members() if peer_url in m.peer_urls), None)
        if member is None:
            raise EtcdFailed(f"no member with the peer URL {peer_url}")
        if member.learner:
            etcd.promote_member(member.id)  # EtcdError while it is behind: tried again
        return True
    wait_answers(host, promoted, f"did not take {peer_url} as a voting member", timeout,
                 endpoints)
