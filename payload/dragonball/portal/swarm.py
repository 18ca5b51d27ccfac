"""The Swarm as the portal's enrollment sees it: a joined node's labels, the managers.

`plan_promotions` is pure: once the Swarm has 3 enrolled nodes or more, 3 of them are
managers (raft keeps working with one manager down); it never demotes, never goes past 3,
and never promotes a node the portal did not enroll (a manager is root on every server:
a stranger that joined with a leaked join token must never become one). `strangers` names
those nodes; the leading portal drains them (portal/strangers.py).
`wait_ready` and `settle_managers` drive a `Cluster`: the one Swarm adapter
(dragonball.swarm.Swarm, made by portal.wiring) or a fake of its shape in tests.
"""

from __future__ import annotations

import time
from typing import Protocol

from dragonball.errors import Conflict, PortalError
from dragonball.swarm import Node

MANAGERS = 3


class NodeNotInSwarm(PortalError, Conflict):
    """A node named by its ID is not (or not yet) a member of this Swarm."""


class Cluster(Protocol):
    """What the enrollment API needs of the Swarm (a part of dragonball.swarm.Swarm)."""

    def join_token(self) -> str: ...

    def rotate_join_tokens(self) -> None: ...

    def running_on(self, node_id: str) -> int: ...

    def remove_node(self, node_id: str) -> None: ...

    def node(self, node_id: str) -> Node | None: ...

    def nodes(self) -> list[Node]: ...

    def update_node(self, node_id: str, labels: dict | None = None,
                    promote: bool = False, availability: str | None = None,
                    demote: bool = False) -> bool: ...


def enrolled_nodes(devices) -> frozenset[str]:
    """The Swarm node IDs of the devices the portal enrolled (store.Device rows)."""
    return frozenset(d.node_id for d in devices if d.node_id and
                     (d.state == "joined" or d.role == "portal"))


def strangers(nodes: list[Node], enrolled: frozenset[str]) -> list[Node]:
    """The nodes in the Swarm that no enrolled device is (pure)."""
    return [n for n in nodes if n.id not in enrolled]


def plan_promotions(nodes: list[Node], enrolled: frozenset[str],
                    want: int = MANAGERS) -> list[str]:
    """The node IDs to promote so that `want` of the nodes are managers (oldest first).

    Nothing while fewer than `want` enrolled nodes are in the Swarm; only ready, active,
    enrolled workers.
    """
    ours = [n for n in nodes if n.id in enrolled]
    if len(ours) < want:
        return []
    missing = want - sum(1 for n in nodes if n.manager)
    candidates = sorted((n for n in ours if not n.manager and n.ready and n.active),
                        key=lambda n: (n.created, n.id))
    return [n.id for n in candidates[:max(0, missing)]]


def wait_ready(cluster: Cluster, node_id: str, timeout: float = 30.0,
               sleep=time.sleep, clock=time.monotonic) -> bool:
    """Wait until the node is ready: a node that just joined is not, for a moment,
    and only ready workers are promoted (two servers joining at once would
    otherwise each find the other, and itself, not ready, and nobody promoted)."""
    deadline = clock() + timeout
    while True:
        node = cluster.node(node_id)
        if node is not None and node.ready:
            return True
        if clock() >= deadline:
            return False
        sleep(0.5)


def settle_managers(cluster: Cluster, enrolled: frozenset[str],
                    want: int = MANAGERS) -> list[str]:
    """Promote enrolled workers until `want` nodes are managers; the promoted IDs."""
    promoted = []
    for node_id in plan_promotions(cluster.nodes(), enrolled, want):
        cluster.update_node(node_id, promote=True)
        promoted.append(node_id)
    return promoted
