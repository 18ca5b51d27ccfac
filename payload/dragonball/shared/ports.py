"""Every network port DragonBall uses on a server: the one place these numbers live.

Swarm's ports are Docker's own (docs.docker.com, "swarm mode routing"); the rest are
ours. Which ports a server needs free depends on its role: the portal runs the
registry and the portal itself; every server runs the agent and Swarm, and any server may
become a Swarm manager, which runs etcd (the portal's replicated state) and a portal.
"""

from __future__ import annotations

import dataclasses

SWARM_MANAGEMENT = 2377  # tcp: cluster management, raft between managers
SWARM_GOSSIP = 7946      # tcp and udp: node discovery, gossip
SWARM_VXLAN = 4789       # udp: overlay network data (VXLAN)
REGISTRY = 5000          # tcp: the private registry, TLS, on the portal
PORTAL = 8443            # tcp: the portal's web UI and REST API, TLS
AGENT = 9443             # tcp: the per-node agent, mutual TLS
ETCD_CLIENT = 2379       # tcp: etcd's clients (the managers' portals), mutual TLS
ETCD_PEER = 2380         # tcp: etcd's members among themselves (Raft), mutual TLS

ROLES = ("portal", "device")


@dataclasses.dataclass(frozen=True)
class Port:
    """One port a server listens on: ``2377/tcp``."""

    number: int
    protocol: str  # "tcp" or "udp"
    purpose: str

    def __str__(self) -> str:
        return f"{self.number}/{self.protocol}"


_EVERY_SERVER = (
    Port(SWARM_MANAGEMENT, "tcp", "Swarm management"),  # any server may become a manager
    Port(SWARM_GOSSIP, "tcp", "Swarm gossip"),
    Port(SWARM_GOSSIP, "udp", "Swarm gossip"),
    Port(SWARM_VXLAN, "udp", "Swarm overlay (VXLAN)"),
    Port(AGENT, "tcp", "DragonBall agent"),
    Port(ETCD_CLIENT, "tcp", "etcd clients (on a manager)"),  # any server may become one
    Port(ETCD_PEER, "tcp", "etcd peers (on a manager)"),
    Port(PORTAL, "tcp", "DragonBall portal (on a manager)"),  # every manager serves it
)
_PORTAL_ONLY = (
    Port(REGISTRY, "tcp", "DragonBall registry"),
)


def ports_for(role: str) -> tuple[Port, ...]:
    """The ports a server of `role` ("portal" or "device") must find free, by number."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    ports = _EVERY_SERVER + (_PORTAL_ONLY if role == "portal" else ())
    return tuple(sorted(ports, key=lambda p: (p.number, p.protocol)))
