"""`dragonball rejoin SERVER` on the portal: a server whose Swarm identity is lost (its node
certificate expired while it was off, or its node was removed) comes back as the same
device (docs/certificates.md, "A server off past its certificate").

The portal removes the old node from the Swarm (it can never come back with that identity:
Swarm refuses an expired certificate, and a removed node for good), keeps its labels (the
device's, placement's and the stateful slots' pins) for the node to come, binds the device
to a new one-time code, and prints the command to run on that server:
`sudo ./DragonBall-<version>.bin rejoin --portal ADDR --code CODE --ca-fingerprint F`
(installer/rejoin.py), which leaves the dead Swarm there and joins again through the
ordinary enrollment. The device keeps its id and name.
"""

from __future__ import annotations

import shlex

from dragonball.errors import Conflict, NotFound, PortalError
from dragonball.portal.enrollment import join_instructions
from dragonball.portal.store import Device, Store


class ServerUnknown(PortalError, NotFound):
    """No device of the cluster has this name or id."""


class RejoinRefused(PortalError, Conflict):
    """The server cannot or need not rejoin (the portal itself, a node that is Ready)."""


def find_device(devices: list[Device], server: str) -> Device:
    """The device named `server` (hostname, any case, or id) (pure)."""
    for device in devices:
        if device.hostname.lower() == server.lower() or str(device.id) == server:
            return device
    names = ", ".join(d.hostname for d in devices) or "none"
    raise ServerUnknown(f"no server {server!r} in this cluster (servers: {names})",
                        "see 'dragonball devices'")


def check_rejoin(device: Device, node, force: bool) -> None:
    """Refuse the portal itself and, without `force`, a node that is Ready (pure)."""
    if device.role == "portal":
        raise RejoinRefused(f"{device.hostname} is the portal: it does not rejoin",
                            "a portal whose own Swarm certificate expired: docs/certificates.md")
    if node is not None and node.ready and not force:
        raise RejoinRefused(f"{device.hostname} is Ready in the Swarm: its certificate renews "
                            "itself, nothing to do", "--force makes it rejoin all the same "
                            "(its tasks move while it does)")


def rejoin(store: Store, swarm, settings, server: str, ttl_s: float, fingerprint: str,
           force: bool = False, actor: str = "admin") -> dict:
    """Remove the server's old node, bind it to a new code: the instructions to print."""
    device = find_device(store.devices(), server)
    node = swarm.node(device.node_id) if device.node_id else None
    check_rejoin(device, node, force)
    labels = {**device.labels, **(dict(node.labels) if node is not None else {})}
    if node is not None:
        swarm.remove_node(node.id)
    code, record = store.create_code(ttl_s, actor=actor)
    with store.write() as db:
        db.execute("UPDATE devices SET code_id = ?, state = 'enrolled', node_id = NULL, "
                   "token_hash = NULL, labels = ? WHERE id = ?",
                   (record.id, _json(labels), device.id))
    store.record("device.rejoin", actor, None, {"device_id": device.id,
                 "hostname": device.hostname, "old_node_id": device.node_id})
    info = join_instructions(settings, code, record.expires, fingerprint)
    argv = ["sudo", f"./{settings.bin_name}", "rejoin", "--portal", settings.portal_argument,
            "--code", code, "--ca-fingerprint", fingerprint]
    return info | {"server": device.hostname, "device_id": device.id,
                   "removed_node": node.id if node is not None else None,
                   "command": argv, "command_line": shlex.join(argv)}


def _json(labels: dict) -> str:
    import json
    return json.dumps(labels)
