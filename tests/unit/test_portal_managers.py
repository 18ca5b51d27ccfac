"""A manager's bundle and its route (portal/managers.py, portal/manager_api.py): what the
bundle holds and how it is checked, the initial-cluster string, the state endpoints, and
the route refusing a worker, a wrong token and a portal with no replicated store."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest
from fastapi.testclient import TestClient

from dragonball import agent_client, pki
from dragonball.etcd import Member
from dragonball.portal import managers
from dragonball.portal.api import create_app
from dragonball.portal import settings as settings_mod
from dragonball.portal.manager_api import Files
from dragonball.portal.store import Store
from dragonball.shared import device_proof

from test_portal_app import ADMIN_PASSWORD, Clock, FakeCluster
from test_portal_identity import device_headers, enroll_with_identity

S1_PEER, S2_PEER = "https://10.0.0.1:2380", "https://10.0.0.2:2380"


@pytest.fixture
def ca():
    return pki.create_ca()


@pytest.fixture
def settings(tmp_path, ca):
    """The portal's settings, its CA and registry credentials in files (as test_portal_app)."""
    etc = tmp_path / "etc"
    pki.write_private(etc / "ca.crt", ca.cert_pem, 0o644)
    pki.write_private(etc / "ca.key", ca.key_pem)  # it signs the devices' identities
    pki.write_private(etc / "registry.json", b'{"username": "dragonball", "password": "pw"}')
    return settings_mod.Settings(
        address="10.0.0.1", tls_cert=str(etc / "server.crt"), tls_key=str(etc / "server.key"),
        ca_cert=str(etc / "ca.crt"), registry="10.0.0.1:5000",
        registry_credentials=str(etc / "registry.json"), hostname="s1",
        data_dir=str(tmp_path / "data"))


@pytest.fixture
def store(settings):
    s = Store.open(settings.db_path, clock=Clock())
    s.set_admin_password(ADMIN_PASSWORD)
    s.add_portal("s1", "10.0.0.1", "portalnode")
    yield s
    s.close()


class FakeEtcd:
    """The members of an etcd cluster in memory (s1 started), and what was asked of it."""

    def __init__(self) -> None:
        self.members = [Member("1", "s1", (S1_PEER,), ("https://10.0.0.1:2379",))]
        self.added: list = []

    def add_member(self, peer_url, learner=False):
        self.added.append((peer_url, learner))
        if not any(peer_url in m.peer_urls for m in self.members):
            self.members.append(Member(str(len(self.members) + 1), "", (peer_url,), (),
                                       learner))
        return list(self.members)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


@pytest.fixture
def sources(ca):
    clients_ca = pki.create_ca("clients")
    return managers.Sources(ca, clients_ca, agent_client.issue_client_cert(clients_ca),
                            json.dumps({"username": "dragonball", "password": "pw"}),
                            "ssh-ed25519 AAAA portal")


@pytest.fixture
def replicated(settings, tmp_path, ca, sources):
    """The portal's settings with its replicated store, and its CA files where Files says."""
    etc = tmp_path / "etc"
    for name, pair in (("ca", ca), ("clients", sources.clients_ca),
                       ("client", sources.controller)):
        pki.write_pem_files(pair, etc / f"{name}.crt", etc / f"{name}.key")
    files = Files(*((str(etc / f"{n}.crt"), str(etc / f"{n}.key"))
                    for n in ("ca", "clients", "client")))
    return dataclasses.replace(settings, state_endpoints=[managers.LOCAL_ENDPOINT],
                               state_ca=str(etc / "clients.crt"),
                               state_cert=str(etc / "client.crt"),
                               state_key=str(etc / "client.key")), files


# --- pure ----------------------------------------------------------------------------------

def test_the_initial_cluster_names_every_started_member_and_the_new_one():
    members = [Member("1", "s1", (S1_PEER,), ()), Member("2", "", (S2_PEER,), (), True)]
    assert managers.initial_cluster(members, "s2", S2_PEER) == f"s1={S1_PEER},s2={S2_PEER}"
    # not yet in the list (a fake, or a race): named all the same
    assert managers.initial_cluster(members[:1], "s2", S2_PEER) == f"s1={S1_PEER},s2={S2_PEER}"
    # another manager's member, added but not started: no name, left out
    third = Member("3", "", ("https://10.0.0.3:2380",), (), True)
    assert managers.initial_cluster([*members, third], "s2", S2_PEER) == \
        f"s1={S1_PEER},s2={S2_PEER}"


def test_the_state_endpoints_are_the_local_member_first_then_the_others():
    members = [Member("1", "s1", (S1_PEER,), ("https://10.0.0.1:2379",
                                               "https://127.0.0.1:2379")),
               Member("2", "s2", (S2_PEER,), ("https://10.0.0.2:2379",))]
    assert managers.state_endpoints(members, "10.0.0.2") == [
        "https://127.0.0.1:2379", "https://10.0.0.1:2379"]


def test_a_bundle_holds_what_a_manager_needs_and_passes_its_check(settings, sources):
    settings = dataclasses.replace(settings, state_endpoints=[managers.LOCAL_ENDPOINT],
                                   state_ca="/etc/ca.crt", state_cert="/c.crt",
                                   state_key="/c.key")
    members = FakeEtcd().add_member(S2_PEER, learner=True)
    bundle = managers.make_bundle(sources, settings, "s2", "10.0.0.2", members)
    assert managers.check_bundle(bundle, "10.0.0.2") == []
    assert bundle["etcd"]["initial_cluster"] == f"s1={S1_PEER},s2={S2_PEER}"
    assert bundle["settings"]["address"] == "10.0.0.2"
    assert bundle["settings"]["hostname"] == "s2"
    assert bundle["settings"]["registry"] == settings.registry  # the registry stays on s1
    assert bundle["settings"]["state_endpoints"] == [
        "https://127.0.0.1:2379", "https://10.0.0.1:2379"]
    assert bundle["cluster_ca"]["key"] == sources.cluster_ca.key_pem.decode()
    assert managers.check_bundle(bundle, "10.0.0.3") == [
        "portal_tls: does not name 10.0.0.3", "etcd: does not name 10.0.0.3",
        "settings: the address is 10.0.0.2, not 10.0.0.3"]


def test_a_bundle_check_lists_every_problem(settings, sources):
    settings = dataclasses.replace(settings, state_endpoints=[managers.LOCAL_ENDPOINT],
                                   state_ca="/a", state_cert="/b", state_key="/c")
    bundle = managers.make_bundle(sources, settings, "s2", "10.0.0.2",
                                  FakeEtcd().add_member(S2_PEER, True))
    other = pki.create_ca("someone else")
    bundle["etcd"]["key"] = other.key_pem.decode()
    bundle["portal_tls"] = {"cert": "junk", "key": "junk"}
    bundle["registry_credentials"] = "{}"
    bundle["settings"]["state_endpoints"] = []
    del bundle["controller_client"]
    assert managers.check_bundle(bundle, "10.0.0.2") == [
        "portal_tls: not a PEM certificate and key", "etcd: the key is not the certificate's",
        "controller_client: no certificate and key",
        "registry_credentials: not the registry's {username, password}",
        "settings: no state_endpoints (the portal's replicated store)"]
    assert managers.check_bundle([], "10.0.0.2") == ["the answer is not a JSON object"]


def test_the_etcd_certificate_serves_and_dials():
    ca = pki.create_ca()
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID
    cert = x509.load_pem_x509_certificate(
        pki.issue_peer_cert(ca, "etcd s2", ips=["10.0.0.2", "127.0.0.1"]).cert_pem)
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}


# --- the route -----------------------------------------------------------------------------

@pytest.fixture
def cluster():
    return FakeCluster()


@pytest.fixture
def etcd():
    return FakeEtcd()


@pytest.fixture
def client(store, replicated, cluster, etcd):
    settings, files = replicated
    app = create_app(store, settings, cluster)
    # the route create_app mounted, made again with the fakes: the last one added wins
    app.router.routes = [r for r in app.router.routes
                         if getattr(r, "path", "") != "/api/v1/devices/{device_id}/manager"]
    from dragonball.portal import manager_api
    manager_api.mount(app, store, settings, cluster, lambda: etcd, files)
    return TestClient(app)


def _joined_device(client, store, cluster, node_id="node2id", hostname="s2",
                   address="10.0.0.2") -> dict:
    code, _ = store.create_code()
    enrolled = client.post("/api/v1/enroll", json={"code": code, "hostname": hostname,
                                                   "address": address}).json()
    cluster.add(node_id, hostname)
    answer = client.post(f"/api/v1/devices/{enrolled['device_id']}/joined",
                         json={"node_id": node_id},
                         headers={"Authorization": f"Bearer {enrolled['device_token']}"})
    assert answer.status_code == 200, answer.text
    return enrolled


def _ask(client, enrolled, token=None):
    return client.post(f"/api/v1/devices/{enrolled['device_id']}/manager",
                       headers={"Authorization": f"Bearer {token or enrolled['device_token']}"})


def test_a_manager_gets_its_bundle_and_its_etcd_member(client, store, cluster, etcd):
    enrolled = _joined_device(client, store, cluster)
    cluster.update_node("node2id", promote=True)
    answer = _ask(client, enrolled)
    assert answer.status_code == 200, answer.text
    assert managers.check_bundle(answer.json(), "10.0.0.2") == []
    assert etcd.added == [(S2_PEER, True)]
    assert _ask(client, enrolled).status_code == 200      # again: the same member
    assert len(etcd.members) == 2
    assert [e["kind"] for e in store.events()][:2] == ["device.manager", "device.manager"]


def test_a_worker_gets_no_bundle(client, store, cluster, etcd):
    enrolled = _joined_device(client, store, cluster)
    answer = _ask(client, enrolled)
    assert answer.status_code == 403 and "not a Swarm manager" in answer.json()["error"]
    assert etcd.added == []


def test_a_device_not_joined_gets_no_bundle(client, store, etcd):
    code, _ = store.create_code()
    enrolled = client.post("/api/v1/enroll", json={"code": code, "hostname": "s2",
                                                   "address": "10.0.0.2"}).json()
    answer = _ask(client, enrolled)
    assert answer.status_code == 403 and "has not joined" in answer.json()["error"]


def test_the_bundle_needs_the_devices_own_token(client, store, cluster, etcd):
    one = _joined_device(client, store, cluster)
    two = _joined_device(client, store, cluster, "node3id", "s3", "10.0.0.3")
    cluster.update_node("node2id", promote=True)
    assert client.post(f"/api/v1/devices/{one['device_id']}/manager").status_code == 401
    assert _ask(client, one, token="wrong").status_code == 401
    assert _ask(client, one, token=two["device_token"]).status_code == 403
    assert etcd.added == []


def test_a_device_with_an_identity_gets_its_bundle_only_with_its_own_signature(
        client, store, cluster, etcd):
    """The bundle holds both CA keys: a device enrolled with its own key must sign the call
    with it (shared/device_proof.py); its token alone, or another key's proof, gets 401."""
    key, enrolled = enroll_with_identity(client, store, "s2", "10.0.0.2")
    cluster.add("node2id", "s2")
    joined = f"/api/v1/devices/{enrolled['device_id']}/joined"
    body = b'{"node_id": "node2id"}'
    token = device_headers(enrolled)
    assert client.post(joined, content=body, headers={**token, **device_proof.proof_headers(
        key, "POST", joined, body, time.time())}).status_code == 200
    cluster.update_node("node2id", promote=True)
    path = f"/api/v1/devices/{enrolled['device_id']}/manager"
    assert _ask(client, enrolled).status_code == 401
    stranger = device_proof.proof_headers(pki.new_key_pem(), "POST", path, b"", time.time())
    assert client.post(path, headers={**token, **stranger}).status_code == 401
    assert etcd.added == []
    signed = client.post(path, headers={**token, **device_proof.proof_headers(
        key, "POST", path, b"", time.time())})
    assert signed.status_code == 200, signed.text
    assert managers.check_bundle(signed.json(), "10.0.0.2") == []


def test_a_portal_without_a_replicated_store_says_so(store, settings, cluster, etcd):
    app = create_app(store, settings, cluster)
    client = TestClient(app)
    enrolled = _joined_device(client, store, cluster)
    cluster.update_node("node2id", promote=True)
    answer = _ask(client, enrolled)
    assert answer.status_code == 503 and "no replicated store" in answer.json()["error"]


def test_no_secret_of_the_bundle_is_logged(client, store, cluster, caplog):
    import logging
    caplog.set_level(logging.DEBUG)
    enrolled = _joined_device(client, store, cluster)
    cluster.update_node("node2id", promote=True)
    bundle = _ask(client, enrolled).json()
    logged = caplog.text + json.dumps(store.events())
    for secret in (bundle["cluster_ca"]["key"], bundle["clients_ca"]["key"],
                   bundle["etcd"]["key"], "pw", enrolled["device_token"]):
        assert secret.strip().splitlines()[1] not in logged if "\n" in secret \
            else secret not in logged
