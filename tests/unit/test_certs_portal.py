"""The portal's side of certificates: GET /api/v1/certificates and the dashboard's alerts
(fake sources), `dragonball rejoin SERVER` on a real store with a played Swarm, and the
renewed certificate loaded into the serving TLS context."""

from __future__ import annotations

import threading
import time

import pytest

from dragonball.portal import rejoin as rejoin_mod
from dragonball.portal.serve import watch_certificate
from dragonball.swarm.model import Node
from portal_web_fakes import login, make_client, make_settings
from test_portal_app import FakeCluster

WARNING = {"level": "error", "subject": "s2: Swarm node certificate",
           "text": "may have expired", "hint": "run 'dragonball rejoin s2' on the portal",
           "days_left": -1.0}


@pytest.fixture
def portal(portal_store, tmp_path):
    client, fake = make_client(portal_store, make_settings(tmp_path), FakeCluster())
    fake.certificate_report = {"certificates": [{"name": "portal TLS"}], "warnings": [WARNING]}
    login(client)
    return client, fake


def test_the_api_gives_the_report_to_the_admin_only(portal):
    client, _ = portal
    assert client.get("/api/v1/certificates").json()["warnings"] == [WARNING]
    client.post("/logout", headers={"X-CSRF-Token": "x"})
    client.cookies.clear()
    assert client.get("/api/v1/certificates").status_code == 401


def test_the_dashboard_shows_a_certificate_warning_as_an_alert(portal):
    client, _ = portal
    html = client.get("/dashboard/health").text
    assert "s2: Swarm node certificate" in html and "dragonball rejoin s2" in html


# --- dragonball rejoin SERVER ------------------------------------------------------------

class Swarm:
    def __init__(self, nodes):
        self.nodes_by_id = {n.id: n for n in nodes}
        self.removed: list = []

    def node(self, node_id):
        return self.nodes_by_id.get(node_id)

    def remove_node(self, node_id):
        self.removed.append(node_id)
        self.nodes_by_id.pop(node_id, None)


def _joined_device(store, swarm_labels=None):
    code, _ = store.create_code(3600)
    device, _ = store.enroll(code, "s2", "10.0.0.2")
    store.mark_joined(device.id, "old-node")
    return device


def test_rejoin_removes_the_down_node_keeps_its_labels_and_the_device(portal_store, tmp_path):
    store, settings = portal_store, make_settings(tmp_path)
    device = _joined_device(store)
    node = Node("old-node", "s2", ready=False,
                labels={"io.dragonball.device-id": str(device.id), "notes.store-1": "true"})
    swarm = Swarm([node])
    info = rejoin_mod.rejoin(store, swarm, settings, "S2", 3600, "SHA256:" + "ab" * 32)
    assert swarm.removed == ["old-node"]
    assert info["command"][:3] == ["sudo", "./DragonBall-0.1.0.bin", "rejoin"]
    assert info["command"][-4:] == ["--code", info["code"], "--ca-fingerprint",
                                    "SHA256:" + "ab" * 32]
    assert store.device(device.id).state == "enrolled"
    again, token = store.enroll(info["code"], "s2", "10.0.0.2")  # what the server does
    assert again.id == device.id and token
    assert again.labels["notes.store-1"] == "true"                # the slot's pin comes back
    assert store.mark_joined(device.id, "new-node").node_id == "new-node"


def test_rejoin_refuses_a_ready_node_and_the_portal_and_names_the_servers(portal_store,
                                                                         tmp_path):
    store, settings = portal_store, make_settings(tmp_path)
    _joined_device(store)
    swarm = Swarm([Node("old-node", "s2", ready=True)])
    with pytest.raises(rejoin_mod.RejoinRefused, match="Ready"):
        rejoin_mod.rejoin(store, swarm, settings, "s2", 3600, "SHA256:x")
    assert swarm.removed == []
    with pytest.raises(rejoin_mod.RejoinRefused, match="is the portal"):
        rejoin_mod.rejoin(store, swarm, settings, "s1", 3600, "SHA256:x")
    with pytest.raises(rejoin_mod.ServerUnknown, match="servers: s1, s2"):
        rejoin_mod.rejoin(store, swarm, settings, "s9", 3600, "SHA256:x")
    info = rejoin_mod.rejoin(store, swarm, settings, "s2", 3600, "SHA256:x", force=True)
    assert info["removed_node"] == "old-node"


# --- the serving portal loads a renewed certificate ---------------------------------------

class Context:
    def __init__(self):
        self.loaded: list = []

    def load_cert_chain(self, cert, key):
        self.loaded.append((cert, key))


class Config:
    def __init__(self, cert, key):
        self.ssl_certfile, self.ssl_keyfile, self.ssl = cert, key, Context()


def test_a_renewed_certificate_file_is_loaded_into_the_tls_context(tmp_path):
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    cert.write_text("old"), key.write_text("old")
    config, stop = Config(str(cert), str(key)), threading.Event()
    watcher = threading.Thread(target=watch_certificate, args=(config, stop, 0.02))
    watcher.start()
    try:
        time.sleep(0.1)
        assert config.ssl.loaded == []            # nothing changed: nothing loaded
        cert.write_text("renewed")
        deadline = time.monotonic() + 5
        while not config.ssl.loaded and time.monotonic() < deadline:
            time.sleep(0.02)
        assert config.ssl.loaded == [(str(cert), str(key))]
    finally:
        stop.set()
        watcher.join()
