"""`dragonball portal standby`: what dragonball-portal.service runs on a device, so that a
server promoted to Swarm manager becomes a portal by itself (docs/portal.md, "On every
manager").

Every 10 s: when this node is a Swarm manager (`docker info`: Swarm.ControlAvailable) and
has no portal settings yet, it asks a portal for its manager bundle with its device token
(`POST /api/v1/devices/{id}/manager`, portal/manager_api.py): the portals it knows are the
one in /etc/dragonball/enrollment.json first, then the Swarm's other managers (any of them
is a portal). It checks the bundle whole (portal/managers.py), writes it (keys 0600, at the
portal's own paths), starts its etcd member (`--initial-cluster-state existing`), has it
promoted from learner once it caught up, writes portal.yaml, and serves: the same serve()
as the first portal, so from then on it is a full portal. A manager that has settings just
serves (a restart, a reboot). A device that is not a manager waits.

Its changes are noted in the install journal under the device's `portal.standby` step, so
`reset` undoes them as it undoes the install. A demotion leaves the portal running: Swarm
decides who manages, and a portal that is no manager still serves from etcd's quorum.
"""

from __future__ import annotations

import json
import logging
import os
import time
import types

import requests

from dragonball.errors import DragonBallError, Failed, InstallerError
from dragonball.installer.host import Host
from dragonball.installer.journal import Journal
from dragonball.installer.portal import etcd as portal_etcd
from dragonball.installer.portal import layout
from dragonball.installer.portal.cluster import docker_json, write_private
from dragonball.installer.undo import UndoLog
from dragonball.portal import managers
from dragonball.portal import settings as settings_mod
from dragonball.shared import device_proof, paths, ports
from dragonball.shared.addresses import host_port
from dragonball import agent_client

log = logging.getLogger(__name__)

INTERVAL_S = 10
STEP_ID = "portal.standby"
ENROLLMENT = f"{paths.ETC}/enrollment.json"


class StandbyError(InstallerError, Failed):
    """This manager could not become a portal yet (tried again in 10 s)."""


# --- pure ----------------------------------------------------------------------------------

def portal_candidates(enrollment: dict, manager_addresses: list, own: str) -> list[str]:
    """The portals to ask ("host:port"): the enrolling one first, then the other managers."""
    swarm = enrollment.get("swarm") if isinstance(enrollment.get("swarm"), dict) else {}
    first = str(swarm.get("manager_address") or "").rsplit(":", 1)[0].strip("[]")
    found = [a for a in dict.fromkeys([first, *manager_addresses]) if a and a != own]
    return [host_port(a, ports.PORTAL) for a in found]


def bundle_files(bundle: dict) -> list[tuple[str, str, int]]:
    """(path, text, mode) of every file a bundle becomes, at the portal's own paths."""
    pairs = {"cluster_ca": (layout.CA_CERT, layout.CA_KEY),
             "clients_ca": (paths.CLIENTS_CA_CERT, paths.CLIENTS_CA_KEY),
             "portal_tls": (layout.PORTAL_CERT, layout.PORTAL_KEY),
             "etcd": (portal_etcd.MEMBER_CERT, portal_etcd.MEMBER_KEY),
             "controller_client": (agent_client.CLIENT_CERT, agent_client.CLIENT_KEY)}
    files = [(key, bundle[name]["key"], 0o600) for name, (_, key) in pairs.items()]
    files += [(cert, bundle[name]["cert"], 0o644) for name, (cert, _) in pairs.items()]
    files += [(portal_etcd.TRUSTED_CA, bundle["clients_ca"]["cert"], 0o644),
              (layout.REGISTRY_CREDENTIALS, bundle["registry_credentials"], 0o600)]
    if bundle.get("ssh_pubkey"):
        files.append((layout.SSH_KEY + ".pub", bundle["ssh_pubkey"].strip() + "\n", 0o644))
    return files


def bundle_settings(bundle: dict, data_dir: str) -> settings_mod.Settings:
    """This manager's settings: the bundle's (its address, the cluster's registry and name),
    with the files at this server's paths."""
    given = settings_mod.parse(json.dumps(bundle["settings"]), "the manager bundle's settings")
    return settings_mod.Settings(
        address=given.address, port=given.port, hostname=given.hostname,
        cluster_name=given.cluster_name, data_dir=data_dir, tls_cert=layout.PORTAL_CERT,
        tls_key=layout.PORTAL_KEY, ca_cert=layout.CA_CERT, registry=given.registry,
        registry_credentials=layout.REGISTRY_CREDENTIALS,
        ssh_pubkey=layout.SSH_KEY + ".pub" if bundle.get("ssh_pubkey") else None,
        bin_name=given.bin_name, state_endpoints=given.state_endpoints,
        state_ca=paths.CLIENTS_CA_CERT, state_cert=agent_client.CLIENT_CERT,
        state_key=agent_client.CLIENT_KEY)


# --- the adapter -----------------------------------------------------------------------------

class _NoUndo:
    def note(self, key: str, entry: dict) -> dict:
        return entry


def undo_log(data_dir: str):
    """Notes into the install journal's portal.standby step (reset undoes them)."""
    try:
        journal = Journal.load(data_dir)
    except DragonBallError:
        return _NoUndo()
    return UndoLog(journal, STEP_ID) if STEP_ID in journal.steps else _NoUndo()


def swarm_info(host) -> dict:
    return docker_json(host, ["docker", "info", "--format", "{{json .Swarm}}"]) or {}


def is_manager(info: dict) -> bool:
    return info.get("LocalNodeState") == "active" and bool(info.get("ControlAvailable"))


def manager_addresses(host) -> list[str]:
    """The Swarm's managers' addresses (asked of this manager's engine)."""
    done = host.run(["docker", "node", "ls", "--filter", "role=manager", "--format",
                     "{{.ID}}"], check=False, timeout=30)
    ids = done.out.split() if done.ok else []
    if not ids:
        return []
    done = host.run(["docker", "node", "inspect", "--format", "{{.Status.Addr}}", *ids],
                    check=False, timeout=30)
    return done.out.split() if done.ok else []


def fetch_bundle(candidates: list, enrollment: dict, ca_file: str,
                 key_pem: bytes | None = None) -> dict:
    """The first bundle a portal gives (POST /api/v1/devices/{id}/manager), the call signed
    with this server's own key `key_pem` (shared/device_proof.py)."""
    failures = []
    path = f"/api/v1/devices/{enrollment['device_id']}/manager"
    with requests.Session() as session:
        session.trust_env = False  # this machine's proxies and CA bundle must not decide
        for portal in candidates:
            headers = {"Authorization": f"Bearer {enrollment['device_token']}"}
            if key_pem:
                headers |= device_proof.proof_headers(key_pem, "POST", path, b"", time.time())
            try:
                answer = session.post(f"https://{portal}{path}", verify=ca_file,
                                      timeout=(10, 60), headers=headers)
            except requests.RequestException as e:
                failures.append(f"{portal}: {type(e).__name__}")
                continue
            if answer.status_code == 200:
                return answer.json()
            failures.append(f"{portal}: {answer.status_code} {answer.text[:200]}")
    raise StandbyError("no portal gave this manager its bundle: " + "; ".join(failures),
                       "it is asked again in 10 s; see the portals' logs")


def become_manager(host, own: str, data_dir: str, progress,
                   config: str = settings_mod.CONFIG_FILE) -> settings_mod.Settings:
    """Fetch, check and write the bundle of this manager (at `own`, its Swarm address),
    start its etcd member; its settings."""
    try:
        enrollment = json.loads(host.read_text(ENROLLMENT) or "")
    except ValueError as e:
        raise StandbyError(f"{ENROLLMENT} is missing or not JSON",
                           "install this server as a device again") from e
    candidates = portal_candidates(enrollment, manager_addresses(host), own)
    bundle = fetch_bundle(candidates, enrollment, host.path(paths.CA_CERT),
                          host.read_bytes(paths.AGENT_KEY))
    problems = managers.check_bundle(bundle, own)
    if problems:
        raise StandbyError("the manager bundle is not usable: " + "; ".join(problems),
                           "the portal and this server may be of different releases")
    settings = bundle_settings(bundle, data_dir)
    undo, ctx = undo_log(data_dir), types.SimpleNamespace(host=host, progress=progress)
    for path, content, mode in bundle_files(bundle):
        write_private(ctx, undo, path, content, mode)
    etcd = bundle["etcd"]
    spec = portal_etcd.MemberSpec(etcd["name"], settings.address, etcd["initial_cluster"],
                                  "existing", data_dir)
    portal_etcd.start_member(host, undo, spec, progress)
    others = [e for e in settings.state_endpoints if e != managers.LOCAL_ENDPOINT]
    portal_etcd.promote_when_caught_up(host, etcd["peer_url"], others or
                                       [managers.LOCAL_ENDPOINT])
    portal_etcd.wait_healthy(host)
    write_private(ctx, undo, config, settings.to_yaml(), 0o600)
    log.info("this manager is a portal now: %s", settings.url)
    return settings


def run(config: str = settings_mod.CONFIG_FILE, data_dir: str = paths.DATA_DIR, host=None,
        serve=None, progress=None, interval: float = INTERVAL_S, sleep=time.sleep) -> None:
    """Wait to be a manager, become a portal, serve (until SIGTERM)."""
    host = host or Host()
    progress = progress or types.SimpleNamespace(update=log.info, warn=log.warning)
    if serve is None:
        from dragonball.portal.serve import serve
    while not os.path.exists(host.path(config)):
        info = swarm_info(host)
        if is_manager(info):
            try:
                become_manager(host, str(info.get("NodeAddr") or ""), data_dir, progress,
                               config)
                break
            except DragonBallError as e:
                log.warning("%s (%s)", e.message, e.hint)
        sleep(interval)
    serve(settings_mod.load(host.path(config)))
