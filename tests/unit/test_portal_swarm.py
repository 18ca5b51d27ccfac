"""Manager promotion (pure): three managers once there are three nodes, never more, never
a node that is down or drained."""

from __future__ import annotations

from dragonball.portal.swarm import plan_promotions
from dragonball.swarm import Node


def _node(i: int, manager: bool = False, ready: bool = True, active: bool = True) -> Node:
    return Node(f"n{i}", f"s{i}", ready=ready, role="manager" if manager else "worker",
                availability="active" if active else "drain",
                created=f"2026-01-{i:02d}T00:00:00Z")


def test_nothing_below_three_nodes():
    assert plan_promotions([_node(1, manager=True)]) == []
    assert plan_promotions([_node(1, manager=True), _node(2)]) == []


def test_three_nodes_make_three_managers_oldest_first():
    nodes = [_node(1, manager=True), _node(3), _node(2)]
    assert plan_promotions(nodes) == ["n2", "n3"]
    nodes = [_node(1, manager=True)] + [_node(i) for i in range(2, 11)]
    assert plan_promotions(nodes) == ["n2", "n3"]


def test_never_past_three_and_never_a_demotion():
    assert plan_promotions([_node(i, manager=True) for i in range(1, 4)] + [_node(4)]) == []
    assert plan_promotions([_node(i, manager=True) for i in range(1, 6)]) == []


def test_only_ready_active_workers_are_promoted():
    nodes = [_node(1, manager=True), _node(2, ready=False), _node(3, active=False), _node(4),
             _node(5)]
    assert plan_promotions(nodes) == ["n4", "n5"]
    assert plan_promotions([_node(1, manager=True), _node(2, ready=False), _node(3)]) == ["n3"]
