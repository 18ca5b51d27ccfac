"""Removing a device (portal/removal.py): drained, out of the Swarm, forgotten, the join
tokens rotated; refused whole, changing nothing, for a server holding a slot's data or a
manager; a stranger's node removed by its ID."""

from __future__ import annotations

import types

import pytest
from fastapi.testclient import TestClient
from test_portal_app import (ADMIN_PASSWORD, FakeCluster, _basic, _enroll, _joined, ca,  # noqa: F401
                             clock, settings, store)

from dragonball.portal.api import create_app
from dragonball.portal.removal import NoSuchServer, find

ADMIN = _basic("admin", ADMIN_PASSWORD)


class Pins:
    """The orchestrator Control as removal asks it: each app's slots and their servers."""

    def __init__(self, pins: dict) -> None:
        self.pins = pins   # app -> {unit: server}
        self.store = types.SimpleNamespace(apps=lambda: sorted(self.pins))

    def units_of(self, app):
        return types.SimpleNamespace(pins=self.pins[app])


@pytest.fixture
def cluster():
    return FakeCluster()


@pytest.fixture
def pins():
    return Pins({"notes": {"store-1": "s1", "store-2": "node-3"}})


@pytest.fixture
def client(store, settings, cluster, pins):
    return TestClient(create_app(store, settings, cluster, control_factory=lambda: pins))


def _join(client, store, cluster, i: int) -> dict:
    device = _enroll(client, store.create_code()[0], f"node-{i}", f"10.0.0.{i}").json()
    cluster.add(f"node{i}id", f"node-{i}")
    _joined(client, device, f"node{i}id")
    return device


def test_a_removed_device_is_drained_out_of_the_swarm_forgotten_and_its_token_dead(
        client, store, cluster):
    device = _join(client, store, cluster, 2)
    rotations = cluster.rotations
    cluster.running["node2id"] = 3
    answer = client.post("/api/v1/devices/NODE-2/remove", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"removed": {"name": "node-2", "device_id": device["device_id"],
                                         "node_id": "node2id"},
                             "drained": True, "tokens_rotated": True}
    assert cluster.removed == ["node2id"] and cluster.rotations == rotations + 1
    assert [d.hostname for d in store.devices()] == ["s1"]
    assert _joined(client, device, "node2id").status_code == 401   # its token opens nothing
    assert [e["detail"]["hostname"] for e in store.events()
            if e["kind"] == "device.removed"] == ["node-2"]
    again = _enroll(client, store.create_code()[0], "node-2", "10.0.0.2")
    assert again.status_code == 200     # its name is free for a new code


def test_a_server_holding_a_slot_s_data_or_the_portal_s_own_is_refused_and_nothing_changes(
        client, store, cluster, pins):
    _join(client, store, cluster, 2)
    _join(client, store, cluster, 3)          # node-3: a manager now, and store-2's data
    held = client.post("/api/v1/devices/node-3/remove", headers=ADMIN)
    assert held.status_code == 409
    assert "node-3 holds the data of notes/store-2" in held.json()["error"]
    assert "dragonball move" in held.json()["hint"]
    del pins.pins["notes"]["store-1"]
    own = client.post("/api/v1/devices/s1/remove", headers=ADMIN)   # the first server
    assert own.status_code == 409
    assert "portal's first server: it holds the registry" in own.json()["error"]
    assert cluster.removed == [] and len(store.devices()) == 3
    assert cluster.nodes_by_id["node2id"].role == "manager"


def test_a_manager_hands_its_place_over_then_goes(client, store, cluster):
    """Demoted, removed, and an enrolled worker promoted in its place; the answer says its
    disk still holds the CA keys."""
    _join(client, store, cluster, 2)
    _join(client, store, cluster, 4)
    _join(client, store, cluster, 5)          # a worker: s1, node-2, node-4 are the managers
    assert cluster.nodes_by_id["node5id"].role == "worker"
    answer = client.post("/api/v1/devices/node-2/remove", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["demoted"] is True and body["promoted"] == ["node5id"]
    assert "CA keys" in body["warning"] and "reset" in body["warning"]
    assert cluster.removed == ["node2id"]
    assert cluster.nodes_by_id["node5id"].role == "manager"
    kinds = [e["kind"] for e in store.events()]
    assert "device.demoted" in kinds and "node.promoted" in kinds


def test_a_stranger_is_removed_by_its_node_id_and_unknown_names_are_404(client, store,
                                                                       cluster):
    cluster.add("intruder", "evil")
    assert client.post("/api/v1/devices/intruder/remove", headers=ADMIN).status_code == 200
    assert cluster.removed == ["intruder"]
    missing = client.post("/api/v1/devices/nosuch/remove", headers=ADMIN)
    assert missing.status_code == 404 and "dragonball devices" in missing.json()["hint"]
    assert client.post("/api/v1/devices/node-2/remove").status_code == 401


def test_find_prefers_the_device_and_never_takes_an_enrolled_node_for_a_stranger():
    from dragonball.portal.store import Device
    from dragonball.swarm import Node
    device = Device(7, "web-1", "10.0.0.7", "device", "joined", None, "n7", {}, 0.0, None)
    nodes = [Node("n7", "web-1"), Node("n9", "web-1")]   # a stranger took the same hostname
    assert find("web-1", [device], nodes).device == device
    assert find("7", [device], nodes).node == nodes[0]
    assert find("n9", [device], nodes).device is None
    with pytest.raises(NoSuchServer):
        find("n8", [device], nodes)


def test_a_manager_is_not_removed_through_its_own_portal():
    from dragonball.portal import demotion
    from dragonball.portal.removal import Target
    from dragonball.portal.store import Device
    from dragonball.swarm import Node
    device = Device(7, "s3", "10.0.0.3", "device", "joined", None, "n3", {}, 0.0, 0.0)
    target = Target("s3", device, Node("n3", "s3", role="manager"))
    why = demotion.refusal(target, "S3")
    assert "runs the portal answering you" in why and "--portal" in why
    assert demotion.refusal(target, "s1") is None


class FakeEtcd:
    def __init__(self, members):
        self.list, self.removed = list(members), []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def members(self):
        return self.list

    def remove_member(self, member_id):
        self.removed.append(member_id)
        self.list = [m for m in self.list if m.id != member_id]


def test_the_hand_over_demotes_and_removes_the_etcd_member_once(cluster):
    from dragonball.etcd import Member
    from dragonball.portal import demotion
    from dragonball.portal.removal import Target
    from dragonball.portal.store import Device
    cluster.add("n3", "s3")
    cluster.update_node("n3", promote=True)
    etcd = FakeEtcd([Member("a1", "s1", ("https://10.0.0.1:2380",), (), False),
                     Member("c3", "s3", ("https://10.0.0.3:2380",), (), False)])
    device = Device(7, "s3", "10.0.0.3", "device", "joined", None, "n3", {}, 0.0, 0.0)
    handing = demotion.Demotion(cluster, lambda: etcd, "s1")
    done = handing.hand_over(Target("s3", device, cluster.nodes_by_id["n3"]))
    assert done["demoted"] is True and done["etcd_member_removed"] is True
    assert etcd.removed == ["c3"] and cluster.nodes_by_id["n3"].role == "worker"
    again = handing.hand_over(Target("s3", device, cluster.nodes_by_id["n3"]))  # cut short
    assert again["demoted"] is False and again["etcd_member_removed"] is False
