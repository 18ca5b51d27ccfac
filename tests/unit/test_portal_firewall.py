"""The portal's firewall members through its API (portal/firewall.py, docs/security.md "The
network"): an enroll sends the managers the list with the new device before it answers; a
removal sends every server the list without the removed device before it answers."""

from __future__ import annotations

import types

import pytest
from fastapi.testclient import TestClient
from test_firewall import FakeAgents
from test_portal_app import (ADMIN_PASSWORD, FakeCluster, _basic, _enroll, _joined, ca,  # noqa: F401
                             clock, settings, store)

from dragonball.portal import firewall as portal_firewall
from dragonball.portal.api import create_app

ADMIN = _basic("admin", ADMIN_PASSWORD)


@pytest.fixture
def agents():
    return FakeAgents()


@pytest.fixture
def cluster():
    return FakeCluster()


@pytest.fixture
def client(store, settings, agents, cluster):
    sync = portal_firewall.MembersSync(store.devices, lambda: [settings.address],
                                       lambda: agents)
    no_slots = types.SimpleNamespace(store=types.SimpleNamespace(apps=lambda: []))
    app = create_app(store, settings, cluster, control_factory=lambda: no_slots,
                     firewall=sync)
    assert app.state.firewall is sync
    return TestClient(app)


def test_an_enroll_opens_the_managers_to_the_new_device_before_it_answers(client, store,
                                                                          agents):
    answer = _enroll(client, store.create_code()[0], "node-2", "10.0.0.2")
    assert answer.status_code == 200, answer.text
    managers = {portal_firewall.fw.host_of(u) for u in answer.json()["portals"]}
    sent = {address: members for address, members, _ in agents.calls}
    assert set(sent) == managers and "10.0.0.1" in managers
    assert all("10.0.0.2" in members for members in sent.values())
    assert {t for _, _, t in agents.calls} == {portal_firewall.ENROLL_TIMEOUT_S}


def test_a_removal_takes_the_address_off_every_server_before_it_answers(client, store,
                                                                        agents, cluster):
    enrolled = [_enroll(client, store.create_code()[0], f"node-{i}", f"10.0.0.{i}").json()
                for i in (2, 3)]
    cluster.add("node2id", "node-2")
    assert _joined(client, enrolled[0], "node2id").status_code == 200   # node-3: enrolled
    agents.calls.clear()
    answer = client.post("/api/v1/devices/node-2/remove", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    sent = {address: members for address, members, _ in agents.calls}
    assert set(sent) == {"10.0.0.1"}                        # the joined servers left
    assert all("10.0.0.2" not in m and "10.0.0.3" in m for m in sent.values())


def test_an_agent_that_does_not_answer_does_not_stop_the_enroll(store, settings):
    agents = FakeAgents(down={"10.0.0.1"})
    sync = portal_firewall.MembersSync(store.devices, lambda: [settings.address],
                                       lambda: agents)
    client = TestClient(create_app(store, settings, FakeCluster(), firewall=sync))
    answer = _enroll(client, store.create_code()[0], "node-2", "10.0.0.2")
    assert answer.status_code == 200, answer.text
    assert "10.0.0.1" not in sync.sent   # tried again at the leading portal's next round
