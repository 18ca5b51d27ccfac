"""Remove a device: `dragonball devices remove NAME`, the Devices page's Remove.

    POST /api/v1/devices/{name}/remove     admin; NAME: a hostname, a device ID, or the
         -> {removed, drained, tokens_rotated}  node ID of a stranger (portal/strangers.py)

In order: refused whole if the server holds the data of a slot (`dragonball move` it
first, `--data-lost` for a server gone for good); a Swarm manager first hands its place
over (portal/demotion.py: demoted, its etcd member removed, refused whole when that cannot
be done safely, and an enrolled worker promoted in its place afterwards); then drained
(its tasks move, for up to DRAIN_WAIT_S), taken out of the Swarm (`docker node rm --force`: its node
certificate joins nothing again), forgotten by the portal (its device token opens nothing,
its name is free for a new code), and the Swarm's join tokens rotated (the ones it was
given join nothing), and its address dropped from every server's firewall members at once
(portal/firewall.py: a removed device reaches no cluster port). A POST, not a DELETE: the
portal client never sends it twice.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from dragonball.errors import Conflict, DragonBallError, NotFound, PortalError
from dragonball.portal import auth as auth_mod
from dragonball.portal import demotion as demotion_mod
from dragonball.portal.answers import error_response
from dragonball.portal.strangers import stranger_rows
from dragonball.portal.store import Device, Store
from dragonball.portal.swarm import enrolled_nodes, settle_managers
from dragonball.swarm import Node, SwarmError

DRAIN_WAIT_S = 15.0
log = logging.getLogger("dragonball.portal")


class RemovalRefused(PortalError, Conflict):
    """This server cannot be removed as it is now (409)."""


class NoSuchServer(PortalError, NotFound):
    """No device and no Swarm node has this name."""


@dataclasses.dataclass(frozen=True)
class Target:
    """What a remove names: an enrolled device (and its node), or a stranger's node."""

    name: str
    device: Device | None
    node: Node | None


def find(name: str, devices: list[Device], nodes: list[Node]) -> Target:
    """The device or stranger `name` names (pure): hostname (any case), device ID, or node
    ID; NoSuchServer otherwise."""
    by_node = {n.id: n for n in nodes}
    for d in devices:
        if d.hostname.lower() == name.lower() or str(d.id) == name or d.node_id == name:
            return Target(d.hostname, d, by_node.get(d.node_id or ""))
    enrolled = {d.node_id for d in devices}
    for n in nodes:
        if n.id not in enrolled and (n.id == name or n.hostname.lower() == name.lower()):
            return Target(n.hostname or n.id, None, n)
    raise NoSuchServer(f"no device and no Swarm node is named {name!r}",
                       "see 'dragonball devices' for the names (a hostname, an ID, or a "
                       "stranger's node ID)")


def refusal(target: Target, data: list[str], own_hostname: str | None = None
            ) -> RemovalRefused | None:
    """Why `target` cannot be removed now (pure): the slots whose data it holds; for a
    manager, what portal/demotion.refusal says (`own_hostname`: this portal's server; None:
    this portal cannot hand a manager's place over, so a manager is refused)."""
    if data:
        return RemovalRefused(
            f"{target.name} holds the data of {', '.join(sorted(data))}",
            "move each first: 'dragonball move SLOT --to SERVER' (add --data-lost when "
            f"{target.name} is gone for good), then remove it")
    if demotion_mod.is_manager(target):
        why = demotion_mod.refusal(target, own_hostname) if own_hostname is not None else \
            "this portal cannot hand a manager's place over"
        if why:
            return RemovalRefused(
                f"{target.name} is a Swarm manager and cannot be removed now: {why}",
                "see docs/security.md, 'Removing a manager'")
    return None


def remove(target: Target, store: Store, cluster, actor: str, client: str | None,
           clock: Callable[[], float] = time.monotonic, sleep=time.sleep) -> dict:
    """Drain, take out of the Swarm, forget, rotate the tokens: what was done."""
    drained = False
    if target.node is not None:
        cluster.update_node(target.node.id, availability="drain")
        deadline = clock() + DRAIN_WAIT_S
        while cluster.running_on(target.node.id) and clock() < deadline:
            sleep(0.5)
        drained = not cluster.running_on(target.node.id)
        cluster.remove_node(target.node.id)
    if target.device is not None:
        store.remove_device(target.device.id, actor, client)
    else:
        store.record("node.removed", actor, client,
                     {"node_id": target.node.id, "hostname": target.node.hostname})
    rotated = True
    try:
        cluster.rotate_join_tokens()
        store.record("swarm.tokens_rotated", "portal", None, {})
    except SwarmError as e:
        log.error("rotating the Swarm's join tokens failed: %s", e.message)
        rotated = False
    log.info("%s removed by %s (node %s)", target.name, actor,
             target.node.id if target.node else "none")
    return {"removed": {"name": target.name,
                        "device_id": target.device.id if target.device else None,
                        "node_id": target.node.id if target.node else None},
            "drained": drained, "tokens_rotated": rotated}


def slots_on(control_factory, server: str) -> list[str]:
    """The slots (`notes/store-2`) whose data is pinned to `server`, every app's."""
    control = control_factory()
    return [f"{app}/{unit}" for app in control.store.apps()
            for unit, pinned in control.units_of(app).pins.items() if pinned == server]


class DeviceAdmin:
    """The strangers and the removal, as the API and the Devices page both use them
    (``app.state.device_admin``)."""

    def __init__(self, store: Store, cluster, control_factory: Callable,
                 changed: Callable[[], object] = lambda: None) -> None:
        """`changed()`: told once a server is removed (the firewall's members go at once)."""
        self.store, self.cluster, self.control_factory = store, cluster, control_factory
        self.changed = changed
        #: hands a manager's place over (portal/demotion.py); None: managers are refused
        self.demotion: demotion_mod.Demotion | None = None

    def strangers(self) -> list[dict]:
        """The Swarm's nodes no device is (portal/strangers.py); SwarmError if unknown."""
        return stranger_rows(self.cluster.nodes(), self.store.devices())

    def remove(self, name: str, actor: str, client: str | None) -> dict:
        """Checked whole, then done (see the module's doc); a DragonBallError says why not."""
        target = find(name, self.store.devices(), self.cluster.nodes())
        demotion = self.demotion
        refused = refusal(target, slots_on(self.control_factory, target.name),
                          demotion.own_hostname if demotion else None)
        if refused is not None:
            raise refused
        handed = None
        if demotion is not None and demotion_mod.is_manager(target):
            handed = demotion.hand_over(target)
            self.store.record("device.demoted", actor, client,
                              {"hostname": target.name, **{k: v for k, v in handed.items()
                                                           if k != "warning"}})
            target = find(name, self.store.devices(), self.cluster.nodes())  # a worker now
        done = remove(target, self.store, self.cluster, actor, client)
        self.changed()
        if handed is not None:
            promoted = settle_managers(self.cluster, enrolled_nodes(self.store.devices()))
            for node_id in promoted:
                self.store.record("node.promoted", "portal", None, {"node_id": node_id})
            done.update(demoted=handed["demoted"],
                        etcd_member_removed=handed["etcd_member_removed"],
                        promoted=promoted, warning=handed["warning"])
        return done


def mount(app: FastAPI, store: Store, cluster,
          changed: Callable[[], object] = lambda: None) -> None:
    admin_of = DeviceAdmin(store, cluster, lambda: app.state.control_factory(), changed)
    app.state.device_admin = admin_of

    @app.post("/api/v1/devices/{name}/remove")
    def remove_device(name: str, request: Request,
                      admin: auth_mod.Principal = Depends(auth_mod.require_admin)) -> Response:
        client = request.client.host if request.client else None
        try:
            return JSONResponse(admin_of.remove(name, admin.username, client))
        except DragonBallError as e:
            return error_response(e)
