"""`DragonBall-<version>.bin rejoin --portal ADDR --code CODE --ca-fingerprint F` on a
server whose Swarm identity is lost: the other half of `dragonball rejoin SERVER`
(portal/rejoin.py; docs/certificates.md).

The join's own steps (installer/join.py), run again with the new code: the CA pinned
again, enrolled again (the portal answers the same device, with a new token and the
labels its old node had), the dead Swarm state left (`docker swarm leave --force`: an
expired node certificate cannot be renewed), the registry login, `docker swarm join`, and
the report that labels the new node. Notes go into the install's journal (the first note
of a file wins), so `reset` still undoes the install as before.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import types

from dragonball.errors import InstallerError, NotFound
from dragonball.installer import plan
from dragonball.installer.host import Host
from dragonball.installer.join import ENROLLMENT_PATH, DeviceJoin, source_address, swarm_state
from dragonball.installer.journal import Journal
from dragonball.installer.logs import SecretFilter
from dragonball.shared.paths import DATA_DIR
from dragonball.wizard.validators import normalize_portal

log = logging.getLogger(__name__)


class NotInstalled(InstallerError, NotFound):
    """No finished install of DragonBall on this server to rejoin with."""


@dataclasses.dataclass(frozen=True)
class RejoinAnswers:
    """What `rejoin` is given: the same words as a device's install."""

    portal: str
    enrollment_code: str
    ca_fingerprint: str
    address: str
    data_dir: str = DATA_DIR
    role: str = "device"


def rejoin(portal: str, code: str, fingerprint: str, address: str | None = None,
           data_dir: str = DATA_DIR, host=None, progress=None) -> dict:
    """Join the portal's Swarm again as the same device; {node_id, hostname, left}."""
    host = host or Host()
    journal = Journal.load(data_dir)
    if not journal.finished:
        raise NotInstalled(f"DragonBall is not installed on this server (no finished install "
                           f"in {data_dir})", "install it as a device: 'install --role device "
                           "--portal ... --code ... --ca-fingerprint ...'")
    portal = normalize_portal(portal)  # "10.0.0.1" -> "10.0.0.1:8443", as the wizard does
    answers = RejoinAnswers(portal, code, fingerprint, address or source_address(portal),
                            data_dir)
    secrets = SecretFilter()
    secrets.add(code, code.replace("-", ""))
    ctx = plan.InstallContext(answers=answers,
                              facts=types.SimpleNamespace(hostname=socket.gethostname()),
                              journal=journal, host=host,
                              progress=progress or plan.Progress(), secrets=secrets)
    join = DeviceJoin(ctx)
    join.trust_ca()
    host.remove(ENROLLMENT_PATH)  # the old answer's token is dead: enroll with the new code
    join.enroll()
    left = leave_dead_swarm(host, ctx.progress)
    join.registry()
    join.swarm()
    join.report()
    node_id = swarm_state(host).get("NodeID", "")
    log.info("rejoined as node %s", node_id)
    return {"hostname": join.hostname, "node_id": node_id, "left": left}


def leave_dead_swarm(host, progress) -> bool:
    """Leave whatever Swarm state the engine holds (an expired certificate, a removed
    node); whether there was one."""
    state = swarm_state(host, wait_s=5).get("LocalNodeState") or "inactive"
    if state == "inactive":
        return False
    progress.update(f"docker swarm leave --force (this engine's Swarm state: {state})")
    host.run(["docker", "swarm", "leave", "--force"], timeout=90,
             hint="see 'docker info': the engine must answer")
    return True
