"""Strangers (portal/strangers.py): a Swarm node no device is, joined with a leaked token,
is never promoted, drained and told once; a device joining meanwhile ends active; the join
tokens are rotated once nobody waits to join."""

from __future__ import annotations

from test_portal_app import (ADMIN_PASSWORD, _basic, _enroll, _joined, ca,  # noqa: F401
                             client, clock, cluster, settings, store)

from dragonball.portal import strangers


def test_the_join_tokens_are_rotated_once_nobody_waits_to_join(client, store, cluster):
    first = _enroll(client, store.create_code()[0], "node-2", "10.0.0.2").json()
    second = _enroll(client, store.create_code()[0], "node-3", "10.0.0.3").json()
    cluster.add("node2id", "node-2")
    _joined(client, first, "node2id")
    assert cluster.rotations == 0    # node-3 holds the token and has not joined yet
    cluster.add("node3id", "node-3")
    _joined(client, second, "node3id")
    assert cluster.rotations == 1
    assert [e["kind"] for e in store.events()].count("swarm.tokens_rotated") == 1


def test_a_stranger_that_joined_with_a_leaked_token_is_never_promoted_and_is_drained(
        client, store, cluster):
    cluster.add("intruder", "evil")           # joined the Swarm directly, before anyone
    for i, node_id in ((2, "node2id"), (3, "node3id")):
        device = _enroll(client, store.create_code()[0], f"node-{i}", f"10.0.0.{i}").json()
        cluster.add(node_id, f"node-{i}")
        _joined(client, device, node_id)
    assert cluster.managers == {"portalnode", "node2id", "node3id"}
    listed = client.get("/api/v1/devices", headers=_basic("admin", ADMIN_PASSWORD)).json()
    assert [(s["node_id"], s["hostname"]) for s in listed["strangers"]] == [("intruder", "evil")]
    watch = strangers.Watch(cluster, store.devices,
                            lambda kind, detail: store.record(kind, "portal", None, detail))
    assert watch.round() == ["intruder"]
    assert cluster.nodes_by_id["intruder"].availability == "drain"
    assert [n.availability for i, n in cluster.nodes_by_id.items() if i != "intruder"] \
        == ["active"] * 3
    assert watch.round() == []               # once drained, and told once
    assert [e["detail"]["node_id"] for e in store.events() if e["kind"] == "node.stranger"] \
        == ["intruder"]
    assert all(cluster.nodes_by_id[n].labels.get("io.dragonball.enrolled") == "true"
               for n in ("node2id", "node3id"))
    assert "io.dragonball.enrolled" not in cluster.nodes_by_id["intruder"].labels


def test_the_watch_labels_enrolled_nodes_of_an_older_cluster_and_unlabels_strangers(
        store, cluster):
    cluster.add("forged", "evil", labels={"io.dragonball.enrolled": "true"})
    strangers.Watch(cluster, store.devices, lambda kind, detail: None).round()
    assert cluster.nodes_by_id["portalnode"].labels == {"io.dragonball.enrolled": "true"}
    assert cluster.nodes_by_id["forged"].labels == {}


def test_a_joining_device_is_left_alone_and_one_drained_meanwhile_ends_active(
        client, store, cluster):
    device = _enroll(client, store.create_code()[0], "node-2", "10.0.0.2").json()
    cluster.add("node2id", "node-2")
    now = [0.0]
    patient = strangers.Watch(cluster, store.devices, lambda kind, detail: None,
                              store.pending_joins, clock=lambda: now[0])
    assert patient.round() == []              # node-2 has not reported yet: it may be it
    now[0] = strangers.GRACE_S + 1
    assert patient.round() == ["node2id"]     # too long: drained (no task ran meanwhile)
    _joined(client, device, "node2id")
    assert cluster.nodes_by_id["node2id"].availability == "active"
    assert patient.round() == []
