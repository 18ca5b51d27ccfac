"""The portal API through FastAPI's TestClient: every status of docs/enrollment.md, the rate
limit, manager promotion on joined, admin auth, and no secret in the logs."""

from __future__ import annotations

import base64
import dataclasses
import json
import logging

import pytest
from fastapi.testclient import TestClient

from dragonball import pki
from dragonball.portal import settings as settings_mod
from dragonball.portal.api import create_app
from dragonball.portal.store import Store, StoreError
from dragonball.portal.swarm import Cluster
from dragonball.shared import codes
from dragonball.swarm import Node, SwarmError

ADMIN_PASSWORD = "Very-Long-Passphrase-42"
JOIN_TOKEN = "SWMTKN-1-" + "a" * 50 + "-" + "b" * 25
REGISTRY_PASSWORD = pki.new_secret()       # the pull account's, which devices get
PORTAL_REGISTRY_PASSWORD = pki.new_secret()  # the portal's own (push, delete): never sent


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class FakeCluster(Cluster):
    """A Swarm of nodes in memory: the portal's node is a manager."""

    def __init__(self) -> None:
        self.nodes_by_id = {"portalnode": Node("portalnode", "s1", role="manager",
                                               created="2026-01-01")}
        self.labels: dict = {}
        self.down = False
        self.updates = 0
        self.rotations = 0
        self.running: dict = {}   # node ID -> tasks running there
        self.removed: list = []

    def add(self, node_id: str, hostname: str, ready: bool = True, labels=None) -> None:
        self.nodes_by_id[node_id] = Node(node_id, hostname, ready=ready, labels=labels or {},
                                         created=f"2026-01-0{len(self.nodes_by_id) + 1}")

    def _check(self) -> None:
        if self.down:
            raise SwarmError("the engine is down")

    def join_token(self) -> str:
        self._check()
        return JOIN_TOKEN

    def rotate_join_tokens(self) -> None:
        self._check()
        self.rotations += 1

    def running_on(self, node_id) -> int:
        n = self.nodes_by_id.get(node_id)
        return 0 if n is None or n.availability == "drain" else self.running.get(node_id, 0)

    def remove_node(self, node_id) -> None:
        self.removed.append(node_id)
        self.nodes_by_id.pop(node_id, None)

    def node(self, node_id):
        self._check()
        return self.nodes_by_id.get(node_id)

    def nodes(self):
        self._check()
        return list(self.nodes_by_id.values())

    def update_node(self, node_id, labels=None, promote=False, availability=None,
                    demote=False):
        self._check()
        self.updates += 1
        self.labels.setdefault(node_id, {}).update(labels or {})
        n = self.nodes_by_id[node_id]
        if labels:
            merged = {k: v for k, v in {**n.labels, **labels}.items() if v is not None}
            n = dataclasses.replace(n, labels=merged)
        if promote:
            n = dataclasses.replace(n, role="manager")
        if demote:
            n = dataclasses.replace(n, role="worker")
        if availability:
            n = dataclasses.replace(n, availability=availability)
        changed = n != self.nodes_by_id[node_id]
        self.nodes_by_id[node_id] = n
        return changed

    @property
    def managers(self) -> set:
        return {n.id for n in self.nodes_by_id.values() if n.manager}


@pytest.fixture
def ca():
    return pki.create_ca()


@pytest.fixture
def settings(tmp_path, ca):
    etc = tmp_path / "etc"
    pki.write_private(etc / "ca.crt", ca.cert_pem, 0o644)
    pki.write_private(etc / "ca.key", ca.key_pem)  # it signs the devices' identities
    pki.write_private(etc / "registry.json", json.dumps(
        {"username": "dragonball", "password": PORTAL_REGISTRY_PASSWORD,
         "pull": {"username": "pull", "password": REGISTRY_PASSWORD}}).encode())
    (etc / "id_ed25519.pub").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx dragonball-portal\n")
    return settings_mod.Settings(
        address="10.0.0.1", tls_cert=str(etc / "server.crt"), tls_key=str(etc / "server.key"),
        ca_cert=str(etc / "ca.crt"), registry="10.0.0.1:5000",
        registry_credentials=str(etc / "registry.json"), hostname="s1", cluster_name="plant",
        data_dir=str(tmp_path / "data"), ssh_pubkey=str(etc / "id_ed25519.pub"))


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(settings, clock):
    s = Store.open(settings.db_path, clock=clock)
    s.set_admin_password(ADMIN_PASSWORD)
    s.add_portal("s1", "10.0.0.1", "portalnode")
    yield s
    s.close()


@pytest.fixture
def cluster():
    return FakeCluster()


@pytest.fixture
def client(store, settings, cluster):
    return TestClient(create_app(store, settings, cluster))


def _enroll(client, code, hostname="node-2", address="10.0.0.2"):
    return client.post("/api/v1/enroll", json={"code": code, "hostname": hostname,
                                               "address": address})


def _basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_healthz(client):
    answer = client.get("/healthz")
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}


def test_the_ca_is_served_as_pem_without_auth(client, ca):
    answer = client.get("/api/v1/ca")
    assert answer.status_code == 200
    assert answer.content == ca.cert_pem
    assert answer.headers["content-type"] == "application/x-pem-file"


def test_enroll_gives_what_the_contract_lists(client, store, ca, settings):
    code, _ = store.create_code()
    answer = _enroll(client, code)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) >= {"device_id", "device_token", "ca_pem", "swarm", "registry", "labels"}
    assert "portal_ssh_pubkey" not in body   # no key of the portal in a device's root
    assert body["ca_pem"] == ca.cert_pem.decode()
    assert body["swarm"] == {"join_token": JOIN_TOKEN, "manager_address": "10.0.0.1:2377",
                             "role": "worker"}
    # the pull account: a device's root can pull, never push or delete
    assert body["registry"] == {"address": "10.0.0.1:5000", "username": "pull",
                                "password": REGISTRY_PASSWORD}
    assert PORTAL_REGISTRY_PASSWORD not in answer.text
    assert body["labels"] == {"io.dragonball.device-id": str(body["device_id"]),
                              "io.dragonball.role": "device", "io.dragonball.enrolled": "true"}
    assert store.device(body["device_id"]).state == "enrolled"


def test_an_unknown_code_is_401(client):
    answer = _enroll(client, codes.new_code())
    assert answer.status_code == 401
    assert "unknown enrollment code" in answer.json()["error"]


def test_an_expired_code_is_401(client, store, clock):
    code, _ = store.create_code(60)
    clock.now += 61
    answer = _enroll(client, code)
    assert answer.status_code == 401 and "expired" in answer.json()["error"]


def test_a_used_code_is_401(client, store, cluster):
    code, _ = store.create_code()
    body = _enroll(client, code).json()
    cluster.add("node2id", "node-2")
    assert _joined(client, body, "node2id").status_code == 200
    answer = _enroll(client, code)
    assert answer.status_code == 401 and "used already" in answer.json()["error"]


def test_a_code_works_again_for_the_same_server_until_it_joined(client, store):
    code, _ = store.create_code()
    first = _enroll(client, code).json()
    again = _enroll(client, code)
    assert again.status_code == 200
    assert again.json()["device_id"] == first["device_id"]
    assert again.json()["device_token"] != first["device_token"]


def test_a_taken_hostname_is_409(client, store):
    answer = _enroll(client, store.create_code()[0], hostname="s1")  # the portal's own name
    assert answer.status_code == 409
    assert "s1" in answer.json()["error"]


@pytest.mark.parametrize("body", [
    {"code": "x", "hostname": "node-2"},
    {"code": "x", "hostname": "not a hostname", "address": "10.0.0.2"},
    {"code": "x", "hostname": "node-2", "address": "10.0.0.999"},
])
def test_a_malformed_request_is_422_without_echoing_the_code(client, body):
    answer = client.post("/api/v1/enroll", json=body)
    assert answer.status_code == 422
    assert answer.json()["error"].startswith("invalid request")
    assert "input" not in answer.text


def test_a_store_without_quorum_answers_a_clear_503_never_a_bare_500(client, store,
                                                                      monkeypatch):
    code, _ = store.create_code()

    def no_quorum(*args, **kwargs):
        raise StoreError("cannot write the portal's state: no quorum. Nothing changed on "
                         "this portal", "bring a second manager back")
    monkeypatch.setattr(store, "enroll", no_quorum)
    answer = _enroll(client, code)
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"].startswith("cannot write the portal's state: no quorum")
    assert answer.json()["hint"] == "bring a second manager back"


def test_ten_failed_codes_from_one_address_give_429(client, store, clock):
    good, _ = store.create_code()
    for _ in range(10):
        assert _enroll(client, codes.new_code()).status_code == 401
    limited = _enroll(client, good)  # even a good code, from that address
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 601
    clock.now += 601
    assert _enroll(client, good).status_code == 200


def test_the_limit_is_per_address(store, settings, cluster):
    app = create_app(store, settings, cluster)
    bad = TestClient(app, client=("10.0.0.66", 5555))
    good = TestClient(app, client=("10.0.0.2", 5555))
    for _ in range(10):
        assert _enroll(bad, codes.new_code()).status_code == 401
    assert _enroll(bad, codes.new_code()).status_code == 429
    assert _enroll(good, store.create_code()[0]).status_code == 200


def test_a_down_engine_is_503_and_the_server_can_enroll_again(client, store, cluster):
    code, _ = store.create_code()
    cluster.down = True
    assert _enroll(client, code).status_code == 503
    cluster.down = False
    assert _enroll(client, code).status_code == 200


def _joined(client, enrolled: dict, node_id: str, token: str | None = None):
    return client.post(f"/api/v1/devices/{enrolled['device_id']}/joined",
                       json={"node_id": node_id},
                       headers={"Authorization": f"Bearer {token or enrolled['device_token']}"})


def test_joined_labels_the_node_marks_the_device_and_consumes_the_code(client, store, cluster):
    code, _ = store.create_code()
    enrolled = _enroll(client, code).json()
    cluster.add("node2id", "node-2")
    answer = _joined(client, enrolled, "node2id")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"device_id": enrolled["device_id"], "state": "joined",
                             "node_id": "node2id", "promoted": []}
    assert cluster.labels["node2id"] == enrolled["labels"]
    assert store.device(enrolled["device_id"]).state == "joined"
    assert store.codes()[-1].used is not None
    assert _joined(client, enrolled, "node2id").status_code == 200  # idempotent


@pytest.mark.parametrize("said,label", [(True, "true"), (False, "false")])
def test_joined_labels_what_the_kernel_said_of_overlay_encryption(client, store, cluster,
                                                                  said, label):
    enrolled = _enroll(client, store.create_code()[0]).json()
    cluster.add("node2id", "node-2")
    answer = client.post(f"/api/v1/devices/{enrolled['device_id']}/joined",
                         json={"node_id": "node2id", "overlay_encryption": said},
                         headers={"Authorization": f"Bearer {enrolled['device_token']}"})
    assert answer.status_code == 200, answer.text
    assert cluster.labels["node2id"] == {**enrolled["labels"],
                                         "io.dragonball.overlay-encryption": label}
    bad = client.post(f"/api/v1/devices/{enrolled['device_id']}/joined",
                      json={"node_id": "node2id", "overlay_encryption": "maybe"},
                      headers={"Authorization": f"Bearer {enrolled['device_token']}"})
    assert bad.status_code in (400, 422)


def test_joined_needs_the_devices_own_token(client, store, cluster):
    one = _enroll(client, store.create_code()[0], "node-2", "10.0.0.2").json()
    two = _enroll(client, store.create_code()[0], "node-3", "10.0.0.3").json()
    cluster.add("node2id", "node-2")
    no_token = client.post(f"/api/v1/devices/{one['device_id']}/joined", json={"node_id": "x"})
    assert no_token.status_code == 401
    assert _joined(client, one, "node2id", token="wrong").status_code == 401
    assert _joined(client, one, "node2id", token=two["device_token"]).status_code == 403


def test_joined_with_a_node_not_in_the_swarm_is_409(client, store):
    enrolled = _enroll(client, store.create_code()[0]).json()
    answer = _joined(client, enrolled, "nosuchnode")
    assert answer.status_code == 409 and "not in this Swarm" in answer.json()["error"]
    assert store.device(enrolled["device_id"]).state == "enrolled"


def test_three_servers_make_three_managers(client, store, cluster):
    first = _enroll(client, store.create_code()[0], "node-2", "10.0.0.2").json()
    cluster.add("node2id", "node-2")
    assert _joined(client, first, "node2id").json()["promoted"] == []
    assert cluster.managers == {"portalnode"}
    second = _enroll(client, store.create_code()[0], "node-3", "10.0.0.3").json()
    cluster.add("node3id", "node-3")
    assert _joined(client, second, "node3id").json()["promoted"] == ["node2id", "node3id"]
    assert cluster.managers == {"portalnode", "node2id", "node3id"}
    third = _enroll(client, store.create_code()[0], "node-4", "10.0.0.4").json()
    cluster.add("node4id", "node-4")
    assert _joined(client, third, "node4id").json()["promoted"] == []
    assert len(cluster.managers) == 3
    assert [e["detail"]["node_id"] for e in store.events() if e["kind"] == "node.promoted"] \
        == ["node3id", "node2id"]  # newest first
    assert cluster.rotations == 3    # after each join: nobody else was waiting to join


def test_devices_needs_the_admin_password(client):
    assert client.get("/api/v1/devices").status_code == 401
    wrong = client.get("/api/v1/devices", headers=_basic("admin", "nope"))
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"].startswith("Basic")
    right = client.get("/api/v1/devices", headers=_basic("admin", ADMIN_PASSWORD))
    assert right.status_code == 200
    assert [d["hostname"] for d in right.json()["devices"]] == ["s1"]
    assert "token_hash" not in right.text


def test_joined_labels_the_versions_the_server_runs_and_the_list_shows_them(client, store,
                                                                           cluster):
    enrolled = _enroll(client, store.create_code()[0]).json()
    cluster.add("node2id", "node-2")
    answer = client.post(f"/api/v1/devices/{enrolled['device_id']}/joined",
                         json={"node_id": "node2id", "version": "0.9.1",
                               "release": {"name": "notes", "version": "0.2.0"}},
                         headers={"Authorization": f"Bearer {enrolled['device_token']}"})
    assert answer.status_code == 200, answer.text
    assert cluster.labels["node2id"] == {**enrolled["labels"],
                                         "io.dragonball.version": "0.9.1",
                                         "io.dragonball.release": "notes 0.2.0"}
    listing = client.get("/api/v1/devices", headers=_basic("admin", ADMIN_PASSWORD)).json()
    running = {d["hostname"]: (d["version"], d["release"]) for d in listing["devices"]}
    # the portal's own node has no label here (it labels itself when it serves): unknown
    assert running == {"s1": (None, None),
                       "node-2": ("0.9.1", {"name": "notes", "version": "0.2.0"})}


@pytest.mark.parametrize("body", [{"version": "0.9 1"}, {"version": ""},
                                  {"release": {"name": "notes"}},
                                  {"release": {"name": "a" * 65, "version": "1"}}])
def test_joined_refuses_versions_that_cannot_be_labels(client, store, cluster, body):
    enrolled = _enroll(client, store.create_code()[0]).json()
    cluster.add("node2id", "node-2")
    answer = client.post(f"/api/v1/devices/{enrolled['device_id']}/joined",
                         json={"node_id": "node2id", **body},
                         headers={"Authorization": f"Bearer {enrolled['device_token']}"})
    assert answer.status_code in (400, 422)
    assert "node2id" not in cluster.labels


def test_the_devices_list_without_the_swarm_says_the_versions_are_unknown(client, cluster):
    cluster.down = True
    listing = client.get("/api/v1/devices", headers=_basic("admin", ADMIN_PASSWORD)).json()
    assert [(d["version"], d["release"]) for d in listing["devices"]] == [(None, None)]
    assert "versions" in listing["note"]


def test_failed_logins_are_rate_limited(client):
    for _ in range(10):
        assert client.get("/api/v1/devices", headers=_basic("admin", "nope")).status_code == 401
    assert client.get("/api/v1/devices",
                      headers=_basic("admin", ADMIN_PASSWORD)).status_code == 429


def test_the_openapi_document_is_served_to_the_admin_and_no_cdn_page(client):
    assert client.get("/api/v1/openapi.json").status_code == 401
    document = client.get("/api/v1/openapi.json", headers=_basic("admin", ADMIN_PASSWORD))
    assert document.status_code == 200 and "/api/v1/enroll" in document.json()["paths"]
    assert client.get("/docs").status_code == 404


def test_no_secret_reaches_the_logs_or_the_events(client, store, cluster, caplog):
    caplog.set_level(logging.DEBUG)
    code, _ = store.create_code()
    enrolled = _enroll(client, code).json()
    _enroll(client, codes.new_code())
    cluster.add("node2id", "node-2")
    _joined(client, enrolled, "node2id")
    client.get("/api/v1/devices", headers=_basic("admin", ADMIN_PASSWORD))
    client.get("/api/v1/devices", headers=_basic("admin", "Wrong-Password-1"))
    text = caplog.text + json.dumps(store.events())
    assert "enrolled" in caplog.text and "joined" in caplog.text
    for secret in (code, code.replace("-", ""), enrolled["device_token"], REGISTRY_PASSWORD,
                   JOIN_TOKEN, ADMIN_PASSWORD, "Wrong-Password-1"):
        assert secret not in text
