"""The Swarm's domain types from the Engine API's JSON (captured documents in
tests/unit/data/swarm), and engine timestamps."""

from __future__ import annotations

import datetime
import json
import pathlib

import pytest

from dragonball.swarm import Node, ServiceState, Task, parse_time
from dragonball.swarm.model import node_of, service_of, task_of

DATA = pathlib.Path(__file__).parent / "data" / "swarm"
UTC = datetime.timezone.utc


def read(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def test_a_node():
    assert node_of(read("node.json")) == Node(
        "abc", "s2", "10.0.0.2", ready=True, role="manager", availability="active",
        leader=True, reachability="reachable", labels={"zone": "a"}, manager_addr="10.0.0.2:2377",
        created="2026-01-01T00:00:00.123456789Z")


def test_a_worker_that_is_down_and_drained():
    data = read("node.json")
    data["Spec"] = {"Role": "worker", "Availability": "drain"}
    data["Status"] = {"State": "down"}
    del data["ManagerStatus"]
    node = node_of(data)
    assert (node.manager, node.ready, node.active, node.leader, node.labels) == (
        False, False, False, False, {})


@pytest.mark.parametrize("status_addr, manager_addr, expected", [
    ("0.0.0.0", "10.0.0.2:2377", "10.0.0.2"),      # moby 35437: another manager leads
    ("127.0.0.1", "[fd00::2]:2377", "fd00::2"),
    ("10.0.0.7", "10.0.0.2:2377", "10.0.0.7"),     # a usable Status.Addr stays
    ("0.0.0.0", "", "0.0.0.0"),                     # a worker: nothing better known
])
def test_a_managers_unusable_status_address_gives_way_to_its_manager_address(
        status_addr, manager_addr, expected):
    """The agents are called at Node.address and check it against their certificate."""
    data = read("node.json")
    data["Status"]["Addr"] = status_addr
    data["ManagerStatus"]["Addr"] = manager_addr
    assert node_of(data).address == expected


def test_a_service_with_its_counts():
    assert service_of(read("service.json")) == ServiceState(
        "notes_api", read("service.json")["Spec"]["Labels"],
        "10.0.0.5:5000/notes/api@sha256:aaaa", replicas=2, spec_hash="0123456789abcdef",
        update_state="updating", running=1, desired=2, id="svc1")


def test_a_service_inspected_has_no_counts_and_a_global_one_no_replicas():
    data = read("service.json")
    del data["ServiceStatus"], data["UpdateStatus"]
    data["Spec"]["Mode"] = {"Global": {}}
    state = service_of(data)
    assert (state.running, state.desired, state.replicas, state.update_state) == (
        None, None, None, None)


def test_a_task():
    task = task_of(read("task.json"))
    assert task == Task(
        "t1", 2, "abc", "failed", "running", error="task: non-zero exit (1)",
        message="started", container_id="c1",
        timestamp=datetime.datetime(2025, 1, 1, 0, 0, 5, 123456, tzinfo=UTC),
        created=datetime.datetime(2025, 1, 1, 0, 0, 1, 500000, tzinfo=UTC), service_id="svc1")
    assert task.reason == "task: non-zero exit (1)" and not task.up


def test_a_new_task_has_no_container_yet():
    data = read("task.json")
    data["Status"] = {"State": "pending", "Timestamp": "2025-01-01T00:00:05Z"}
    task = task_of(data)
    assert (task.container_id, task.error, task.reason) == ("", "", "pending")


@pytest.mark.parametrize("text, micro", [
    ("2025-01-01T00:00:05.123456789Z", 123456), ("2025-01-01T00:00:05.1Z", 100000),
    ("2025-01-01T00:00:05Z", 0), ("2025-01-01T00:00:05.5+00:00", 500000)])
def test_parse_time_reads_engine_timestamps(text, micro):
    value = parse_time(text)
    assert value.tzinfo is not None
    assert value.replace(microsecond=0) == datetime.datetime(2025, 1, 1, 0, 0, 5, tzinfo=UTC)
    assert value.microsecond == micro
