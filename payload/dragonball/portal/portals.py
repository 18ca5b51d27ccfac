"""Where the portal is: every Swarm manager serves it (docs/portal.md, "Every manager a
portal"), so the clients and the join are told all of them, not the one they asked.

    GET /api/v1/portals    {"portals": ["https://10.0.0.1:8443", ...]}   the admin

The list comes from the Swarm's node list at each call (a manager promoted or lost shows at
once): the answering portal first, then the other managers, ready ones before those that are
down (a down manager may come back; it is tried last). A manager's address is its
``ManagerStatus.Addr``: ``Status.Addr`` of a manager can read 0.0.0.0 once another manager
leads (moby issue 35437). A Swarm that does not answer gives this portal alone: a list
that is short is still right, a call that fails would stop an enrollment for nothing.

`portal_urls` and `join_portals` are pure over the nodes; `known_portals` and
`join_arguments` ask the Swarm. The enrollment answer carries the same list (portal.api),
and the printed join command names every manager (portal.enrollment).
"""

from __future__ import annotations

import ipaddress
import logging

from dragonball.shared import ports
from dragonball.shared.addresses import host_port
from dragonball.swarm import Node, SwarmError

log = logging.getLogger(__name__)


def node_address(node: Node) -> str:
    """A manager's own address: ManagerStatus.Addr's host, else Status.Addr; "" when
    neither names a usable address (0.0.0.0, loopback, empty)."""
    for text in (node.manager_addr.rpartition(":")[0] if node.manager_addr else "",
                 node.address):
        host = text.strip("[]")
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            continue
        if not (ip.is_unspecified or ip.is_loopback):
            return str(ip)
    return ""


def manager_addresses(nodes: list[Node], own: str) -> list[str]:
    """Every manager's address (pure): `own` first, then the ready ones, then the others,
    each group in address order; no address twice."""
    found = [(not n.ready, address) for n in nodes if n.manager
             for address in [node_address(n)] if address and address != own]
    rest = [address for _, address in sorted(set(found))]
    return [own] + [a for i, a in enumerate(rest) if a not in rest[:i]]


def portal_urls(nodes: list[Node], own_address: str, own_port: int = ports.PORTAL) -> list[str]:
    """The portal URL of every manager (pure): this portal's (its own port) first."""
    addresses = manager_addresses(nodes, own_address)
    return [f"https://{host_port(own_address, own_port)}"] + [
        f"https://{host_port(a, ports.PORTAL)}" for a in addresses[1:]]


def join_portals(nodes: list[Node], own_argument: str, own_address: str) -> list[str]:
    """What a join command's ``--portal`` lists (pure): this portal's own argument (with its
    port when not 8443) first, then every other manager's address."""
    return [own_argument] + manager_addresses(nodes, own_address)[1:]


def _nodes(swarm) -> list[Node]:
    try:
        return swarm.nodes()
    except SwarmError as e:
        log.warning("the Swarm's managers cannot be listed (%s): this portal alone is named",
                    e.message)
        return []


def known_portals(swarm, settings) -> list[str]:
    """Every manager's portal URL, this one's first (this one alone when Swarm is mute)."""
    return portal_urls(_nodes(swarm), settings.address, settings.port)


def join_arguments(settings, swarm=None) -> list[str]:
    """The ``--portal`` list of a join command; `swarm` defaults to the local engine's."""
    if swarm is None:
        from dragonball.swarm import Swarm
        swarm = Swarm(settings.docker_socket)
    return join_portals(_nodes(swarm), settings.portal_argument, settings.address)


def mount(app, swarm, settings) -> None:
    """Add GET /api/v1/portals over `swarm` (the portal's Cluster adapter) to the FastAPI
    `app`. FastAPI is imported here only: `dragonball enroll` uses this module without it."""
    from fastapi import Depends
    from fastapi.responses import JSONResponse

    from dragonball.portal import auth as auth_mod

    # No annotations: this module's are strings (__future__), and FastAPI would look their
    # names up in the module's globals, where these local imports are not.
    @app.get("/api/v1/portals", response_class=JSONResponse)
    def portals(admin=Depends(auth_mod.require_admin)):
        """Every manager's portal URL, the answering one first (`dragonball login`)."""
        return JSONResponse({"portals": known_portals(swarm, settings)})
