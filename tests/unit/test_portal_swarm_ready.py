"""A node that just joined is not ready for a moment: promotions wait for it."""

from __future__ import annotations

from dragonball.portal.swarm import Cluster, settle_managers, wait_ready
from dragonball.swarm import Node


class SlowCluster(Cluster):
    """Nodes that turn ready after `polls` looks, as a fresh Swarm node does."""

    def __init__(self, polls: int) -> None:
        self.polls, self.promoted = polls, []
        self.ids = ["n1", "n2", "n3"]

    def _node(self, node_id: str) -> Node:
        ready = node_id == "n1" or self.polls <= 0
        manager = node_id == "n1" or node_id in self.promoted
        return Node(node_id, node_id, ready=ready, role="manager" if manager else "worker",
                    created=node_id)

    def node(self, node_id):
        self.polls -= 1
        return self._node(node_id)

    def nodes(self):
        return [self._node(i) for i in self.ids]

    def update_node(self, node_id, labels=None, promote=False, availability=None):
        if promote:
            self.promoted.append(node_id)


def test_wait_ready_polls_until_the_node_is_ready_then_both_workers_are_promoted():
    cluster, slept = SlowCluster(polls=3), []
    assert wait_ready(cluster, "n3", sleep=slept.append)
    assert len(slept) == 2
    assert settle_managers(cluster, frozenset(cluster.ids)) == ["n2", "n3"]


def test_wait_ready_gives_up_at_the_timeout():
    now = [0.0]
    cluster = SlowCluster(polls=10**6)
    assert not wait_ready(cluster, "n3", timeout=5, sleep=lambda s: now.__setitem__(0, now[0] + s),
                          clock=lambda: now[0])
