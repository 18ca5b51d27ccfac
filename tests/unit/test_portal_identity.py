"""A device's identity at the portal (issue 13): the enrollment signs the device's own key
for the names it enrolls, refuses a wrong request before the code is looked at, and a device
enrolled so must sign its calls with that key (shared/device_proof.py)."""

from __future__ import annotations

import json
import os
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from dragonball import pki
from dragonball.shared import device_proof
from test_portal_app import _enroll, ca, client, clock, cluster, settings, store  # noqa: F401


def enroll_with_identity(client, store, hostname: str, address: str) -> tuple[bytes, dict]:
    """(the key the device made, the enrollment answer) of a device enrolled with a CSR."""
    key = pki.new_key_pem()
    code, _ = store.create_code()
    answer = client.post("/api/v1/enroll", json={
        "code": code, "hostname": hostname, "address": address,
        "csr": pki.csr_pem(key, hostname).decode()})
    assert answer.status_code == 200, answer.text
    return key, answer.json()


def device_headers(enrolled: dict) -> dict:
    """The device token's header, and the JSON type of the body a signed call sends."""
    return {"Authorization": f"Bearer {enrolled['device_token']}",
            "Content-Type": "application/json"}


def test_enroll_signs_the_devices_own_key_for_the_address_and_name_it_enrolled(
        client, store, ca, settings):
    """An identity per server (issue 13): the device sends a signing request for a key it
    made; the certificate names what the portal enrolled, whatever the request asked."""
    key = pki.new_key_pem()
    csr = pki.csr_pem(key, "s1")  # asks to be the portal's own server: not its to say
    code, _ = store.create_code()
    answer = client.post("/api/v1/enroll", json={"code": code, "hostname": "node-2",
                                                 "address": "10.0.0.2", "csr": csr.decode()})
    assert answer.status_code == 200, answer.text
    cert = x509.load_pem_x509_certificate(answer.json()["agent_cert"].encode())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.cert_pem))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.2"]
    assert san.get_values_for_type(x509.DNSName) == []
    assert cert.subject.rfc4514_string() == "CN=node-2"
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    mine = serialization.load_pem_private_key(key, None).public_key()
    assert cert.public_key().public_bytes(*spki) == mine.public_bytes(*spki)


@pytest.mark.parametrize("csr, words", [
    ("not a request", "not a PEM CSR"),
    ("-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n",
     "not a PEM CSR"),
    ("x" * 9000, "at most 8192 characters"),
])
def test_a_wrong_csr_is_refused_at_once_and_the_code_stays_usable(client, store, csr, words):
    code, _ = store.create_code()
    answer = client.post("/api/v1/enroll", json={"code": code, "hostname": "node-2",
                                                 "address": "10.0.0.2", "csr": csr})
    assert answer.status_code == 422 and words in answer.json()["error"], answer.text
    assert "Traceback" not in answer.text and store.devices()[1:] == []
    assert _enroll(client, code).status_code == 200


def test_a_csr_signed_by_another_key_or_for_rsa_is_refused(client, store):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "node-2")])
    rsa_csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(
        rsa.generate_private_key(65537, 2048), hashes.SHA256())
    p384 = x509.CertificateSigningRequestBuilder().subject_name(name).sign(
        ec.generate_private_key(ec.SECP384R1()), hashes.SHA256())
    for request in (rsa_csr, p384):
        code, _ = store.create_code()
        answer = client.post("/api/v1/enroll", json={
            "code": code, "hostname": "node-2", "address": "10.0.0.2",
            "csr": request.public_bytes(serialization.Encoding.PEM).decode()})
        assert answer.status_code == 422 and "P-256" in answer.json()["error"], answer.text
        assert answer.json()["hint"]


def test_a_portal_that_cannot_read_the_ca_key_says_so_with_a_503(client, store, settings):
    os.remove(settings.ca_key)
    code, _ = store.create_code()
    answer = client.post("/api/v1/enroll", json={
        "code": code, "hostname": "node-2", "address": "10.0.0.2",
        "csr": pki.csr_pem(pki.new_key_pem(), "node-2").decode()})
    assert answer.status_code == 503 and "cannot sign" in answer.json()["error"], answer.text


def test_a_device_with_an_identity_must_sign_its_calls_with_its_own_key(client, store,
                                                                         cluster):
    """Issue 13: /joined (and every device call) authenticated by the device's own key: its
    token alone, a proof by another key or one replayed for another device opens nothing."""
    key, enrolled = enroll_with_identity(client, store, "node-2", "10.0.0.2")
    cluster.add("node2id", "node-2")
    path = f"/api/v1/devices/{enrolled['device_id']}/joined"
    body = json.dumps({"node_id": "node2id"}).encode()
    token = device_headers(enrolled)

    def post(headers):
        return client.post(path, content=body, headers={**token, **headers})
    alone = post({})
    assert alone.status_code == 401 and "must be signed" in alone.json()["error"], alone.text
    stranger = device_proof.proof_headers(pki.new_key_pem(), "POST", path, body, time.time())
    assert post(stranger).status_code == 401
    elsewhere = device_proof.proof_headers(key, "POST", path + "x", body, time.time())
    assert post(elsewhere).status_code == 401
    assert store.device(enrolled["device_id"]).state == "enrolled"  # nothing changed
    signed = post(device_proof.proof_headers(key, "POST", path, body, time.time()))
    assert signed.status_code == 200, signed.text
    assert store.device(enrolled["device_id"]).state == "joined"
    assert list(store.device_identities()) == ["node-2"]
    store.remove_device(enrolled["device_id"], "admin")
    assert store.device_identity(enrolled["device_id"]) is None
    assert store.device_identities() == {}


def test_the_agent_pins_follow_the_identities_the_portal_keeps(client, store):
    """portal/identity_pins.py: the address's pin is the certificate signed at enrollment;
    a removed device's is gone (no list to keep: its row went with it)."""
    from dragonball.agent_client import fingerprint
    from dragonball.portal.identity_pins import IdentityPins, pins_of
    now = [0.0]
    pins = IdentityPins(store, refresh_s=2.0, clock=lambda: now[0])
    assert pins("10.0.0.7") is None
    _, enrolled = enroll_with_identity(client, store, "node-7", "10.0.0.7")
    assert pins("10.0.0.7") is None             # read 0 s ago: not yet
    now[0] += 2.0
    assert pins("10.0.0.7") == fingerprint(enrolled["agent_cert"])
    assert pins("10.0.0.8") is None and pins("not an address") is None
    device = next(d for d in store.devices() if d.hostname == "node-7")
    store.remove_device(device.id, "admin")
    now[0] += 2.0
    assert pins("10.0.0.7") is None
    assert pins_of(["not a certificate"]) == {}
