"""The moving addresses follow the servers (Control.refresh_addresses, run by the portal's
notifier every 30 s): a server that joins after the apply becomes a keepalived peer without
a new apply; nothing else of the app is touched; an unchanged cluster changes nothing."""

from __future__ import annotations

import dataclasses

import pytest

from orchestrator_fakes import NODES, FakeAgents, FakeRegistry, FakeSwarm
from dragonball.orchestrator import address, naming
from dragonball.orchestrator.control import Control
from dragonball.orchestrator.observe import ADDRESS_IMAGE
from dragonball.orchestrator.state import AppStore
from dragonball.portal.store import Store
from dragonball.swarm import Node

TEXT = """app: notes
services:
  web:
    kind: service
    image: notes/web:0.1.0
    replicas: 2
    ports: [{published: 8080, target: 8080}]
    address: 10.0.0.100
"""
DIGESTS = {"notes/web:0.1.0": "sha256:" + "w" * 64, ADDRESS_IMAGE: "sha256:" + "k" * 64}


@pytest.fixture
def control(tmp_path):
    store = Store.open(str(tmp_path / "portal" / "portal.db"))
    now = [0.0]
    made = Control(FakeSwarm(), AppStore(store), FakeAgents(), FakeRegistry(DIGESTS),
                   "10.0.0.5:5000", wait_s=5.0, clock=lambda: now[0],
                   sleep=lambda s: now.__setitem__(0, now[0] + s))
    path = tmp_path / "notes.app.yaml"
    path.write_text(TEXT)
    made.apply(str(path))
    yield made
    store.close()


def test_an_unchanged_cluster_changes_nothing(control):
    before = list(control.engine.mutations())
    assert control.refresh_addresses("notes") == []
    assert control.engine.mutations() == before


def test_a_server_that_joined_later_becomes_a_peer_and_nothing_else_changes(control):
    engine = control.engine
    joined = Node("id-z", "node-z", "10.0.0.99")
    engine._nodes[joined.id] = joined
    services_before = {n: s for n, s in engine.by_name.items()
                       if n != naming.address_service("notes", "web")}
    before = len(engine.mutations())
    assert control.refresh_addresses("notes") == ["web"]
    assert [c[:2] for c in engine.mutations()[before:]] == [
        ("update_service", naming.address_service("notes", "web"))]
    seen = control.observer.observe("notes", [ADDRESS_IMAGE])
    assert [s.op for s in address.plan(control.spec_of("notes"), seen)] == ["keep"]
    assert {n: s for n, s in engine.by_name.items()
            if n != naming.address_service("notes", "web")} == services_before
    assert control.refresh_addresses("notes") == []      # once


def test_an_app_without_an_address_is_left_alone(tmp_path, control):
    path = tmp_path / "plain.app.yaml"
    path.write_text(TEXT.replace("app: notes", "app: plain").replace(
        "    address: 10.0.0.100\n", "").replace("published: 8080", "published: 8081"))
    control.apply(str(path))
    before = len(control.engine.mutations())
    control.engine._nodes["id-z"] = dataclasses.replace(NODES[0], id="id-z", hostname="z")
    assert control.refresh_addresses("plain") == []
    assert len(control.engine.mutations()) == before
