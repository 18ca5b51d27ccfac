"""Manager promotion (pure): three managers once there are three enrolled nodes, never
more, never a node that is down, drained or a stranger (joined with a leaked token)."""

from __future__ import annotations

from dragonball.portal.store import Device
from dragonball.portal.swarm import enrolled_nodes, plan_promotions, strangers
from dragonball.swarm import Node

ALL = frozenset(f"n{i}" for i in range(1, 20))


def _node(i: int, manager: bool = False, ready: bool = True, active: bool = True) -> Node:
    return Node(f"n{i}", f"s{i}", ready=ready, role="manager" if manager else "worker",
                availability="active" if active else "drain",
                created=f"2026-01-{i:02d}T00:00:00Z")


def test_nothing_below_three_nodes():
    assert plan_promotions([_node(1, manager=True)], ALL) == []
    assert plan_promotions([_node(1, manager=True), _node(2)], ALL) == []


def test_three_nodes_make_three_managers_oldest_first():
    nodes = [_node(1, manager=True), _node(3), _node(2)]
    assert plan_promotions(nodes, ALL) == ["n2", "n3"]
    nodes = [_node(1, manager=True)] + [_node(i) for i in range(2, 11)]
    assert plan_promotions(nodes, ALL) == ["n2", "n3"]


def test_never_past_three_and_never_a_demotion():
    assert plan_promotions([_node(i, manager=True) for i in range(1, 4)] + [_node(4)], ALL) == []
    assert plan_promotions([_node(i, manager=True) for i in range(1, 6)], ALL) == []


def test_only_ready_active_workers_are_promoted():
    nodes = [_node(1, manager=True), _node(2, ready=False), _node(3, active=False), _node(4),
             _node(5)]
    assert plan_promotions(nodes, ALL) == ["n4", "n5"]
    assert plan_promotions([_node(1, manager=True), _node(2, ready=False), _node(3)], ALL) == ["n3"]


def test_a_stranger_is_never_promoted_nor_counted():
    nodes = [_node(1, manager=True), _node(2), _node(3)]   # n2 is a stranger: oldest worker
    assert plan_promotions(nodes, frozenset({"n1", "n3"})) == []
    assert plan_promotions(nodes + [_node(4)], frozenset({"n1", "n3", "n4"})) == ["n3", "n4"]
    assert strangers(nodes, frozenset({"n1", "n3"})) == [nodes[1]]


def test_the_enrolled_nodes_are_the_joined_devices_and_the_portals():
    def device(node_id, state, role="device"):
        return Device(1, "h", "10.0.0.1", role, state, None, node_id, {}, 0.0, None)
    devices = [device("n1", "enrolled", "portal"), device("n2", "joined"),
               device("n3", "enrolled"), device(None, "joined")]
    assert enrolled_nodes(devices) == {"n1", "n2"}
