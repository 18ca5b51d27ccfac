"""The Swarm as the portal sees it: the join token, the nodes, promotions and labels.

`plan_promotions` is pure: once the Swarm has 3 nodes or more, 3 of them are managers
(raft keeps working with one manager down); it never demotes and never goes past 3.
`DockerSwarm` is the only code that talks to the engine: the docker SDK over the
local unix socket (the portal is a manager), created lazily with a pinned API
version so creating it does not connect (MACHINE.md).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

from dragonball.errors import Conflict, PortalError, Unavailable

log = logging.getLogger(__name__)

MANAGERS = 3
API_VERSION = "1.41"  # Docker 20.10, the oldest engine we bundle or accept
TIMEOUT_S = 15


class SwarmError(PortalError, Unavailable):
    """The portal's Docker engine cannot answer a Swarm request."""


class NodeNotInSwarm(PortalError, Conflict):
    """A node named by its ID is not (or not yet) a member of this Swarm."""


@dataclasses.dataclass(frozen=True)
class Node:
    id: str
    hostname: str
    manager: bool
    ready: bool       # Status.State == "ready"
    active: bool      # Spec.Availability == "active"
    created: str      # CreatedAt: RFC 3339, sorts in time order


def node_from_api(data: dict) -> Node:
    spec, status = data.get("Spec", {}), data.get("Status", {})
    return Node(id=data["ID"], hostname=data.get("Description", {}).get("Hostname", ""),
                manager=spec.get("Role") == "manager", ready=status.get("State") == "ready",
                active=spec.get("Availability", "active") == "active",
                created=data.get("CreatedAt", ""))


def plan_promotions(nodes: list[Node], want: int = MANAGERS) -> list[str]:
    """The node IDs to promote so that `want` of the nodes are managers (oldest first).

    Nothing while the Swarm has fewer than `want` nodes; only ready, active workers.
    """
    if len(nodes) < want:
        return []
    missing = want - sum(1 for n in nodes if n.manager)
    candidates = sorted((n for n in nodes if not n.manager and n.ready and n.active),
                        key=lambda n: (n.created, n.id))
    return [n.id for n in candidates[:max(0, missing)]]


class Cluster:
    """What the API needs of the Swarm; tests give a fake of this shape."""

    def join_token(self) -> str:
        raise NotImplementedError

    def node(self, node_id: str) -> Node | None:
        raise NotImplementedError

    def nodes(self) -> list[Node]:
        raise NotImplementedError

    def update_node(self, node_id: str, labels: dict | None = None,
                    promote: bool = False) -> None:
        raise NotImplementedError


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


def settle_managers(cluster: Cluster, want: int = MANAGERS) -> list[str]:
    """Promote workers until `want` nodes are managers; return the promoted IDs."""
    promoted = []
    for node_id in plan_promotions(cluster.nodes(), want):
        cluster.update_node(node_id, promote=True)
        promoted.append(node_id)
    return promoted


UPDATE_PATIENCE_S = 30.0
# Both pass by themselves: another update bumped the node's version in between, or the
# node is being promoted and raft does not list it as a manager yet (two servers that
# join at once: the first one's report promotes both while the second one reports).
_TRANSIENT = ("update out of sequence", "can't find manager in raft memberlist")


def transient_update_error(message: str) -> bool:
    """Whether a node update failed for a reason that passes by itself (pure)."""
    return any(fragment in message for fragment in _TRANSIENT)


class DockerSwarm(Cluster):
    """The local engine's Swarm through the docker SDK (unix socket)."""

    def __init__(self, socket_path: str = "/var/run/docker.sock") -> None:
        self._url = f"unix://{socket_path}"
        self._client = None
        self._lock = threading.Lock()

    def _api(self):
        with self._lock:
            if self._client is None:
                import docker  # imported here: only the serving portal needs it
                self._client = docker.DockerClient(base_url=self._url, version=API_VERSION,
                                                   timeout=TIMEOUT_S)
            return self._client.api

    def _call(self, what: str, call):
        import docker
        try:
            return call(self._api())
        except docker.errors.NotFound:
            return None
        except (docker.errors.DockerException, OSError) as e:
            raise SwarmError(f"the Docker engine could not {what}: {e}",
                             "check that Docker runs on the portal and that it is a Swarm "
                             "manager ('docker node ls')") from e

    def join_token(self) -> str:
        info = self._call("give the Swarm's join token", lambda api: api.inspect_swarm())
        if not info:
            raise SwarmError("this engine is not a Swarm manager",
                             "run the portal install again: it initializes the Swarm")
        return info["JoinTokens"]["Worker"]

    def node(self, node_id: str) -> Node | None:
        data = self._call(f"inspect node {node_id}", lambda api: api.inspect_node(node_id))
        return node_from_api(data) if data else None

    def nodes(self) -> list[Node]:
        return [node_from_api(n) for n in self._call("list the Swarm's nodes",
                                                     lambda api: api.nodes()) or []]

    def update_node(self, node_id: str, labels: dict | None = None,
                    promote: bool = False) -> None:
        import docker
        deadline = time.monotonic() + UPDATE_PATIENCE_S
        while True:
            data = self._call(f"inspect node {node_id}", lambda api: api.inspect_node(node_id))
            if data is None:
                raise NodeNotInSwarm(f"node {node_id} is not in this Swarm")
            spec = dict(data["Spec"])
            spec["Labels"] = {**(spec.get("Labels") or {}), **(labels or {})}
            if promote:
                spec["Role"] = "manager"
            if spec == data["Spec"]:
                return
            try:
                self._api().update_node(node_id, data["Version"]["Index"], spec)
                log.info("node %s updated (labels %s%s)", node_id, sorted(labels or {}),
                         ", promoted to manager" if promote else "")
                return
            except docker.errors.APIError as e:
                if not transient_update_error(str(e)) or time.monotonic() >= deadline:
                    raise SwarmError(f"the Docker engine could not update node {node_id}: {e}",
                                     "see 'docker node inspect' on the portal") from e
                log.info("node %s: %s; trying again", node_id, e)
                time.sleep(0.5)
