"""A device's calls signed with its own key (shared/device_proof.py): what passes, and each
way a copied token, a replayed or altered call, or another key is refused."""

from __future__ import annotations

import pytest

from dragonball import agent_client, pki
from dragonball.shared import device_proof

NOW = 1_800_000_000.0
PATH = "/api/v1/devices/7/joined"
BODY = b'{"node_id": "abc"}'


@pytest.fixture(scope="module")
def device():
    ca, key = pki.create_ca(), pki.new_key_pem()
    cert = agent_client.sign_agent_csr(ca, pki.csr_pem(key, "s2"), "10.0.0.2", "s2")
    return key, cert


def test_a_call_signed_by_the_devices_key_passes(device):
    key, cert = device
    headers = device_proof.proof_headers(key, "POST", PATH, BODY, NOW)
    assert set(headers) == {device_proof.DATE, device_proof.PROOF}
    assert device_proof.check(cert, "POST", PATH, BODY, headers, NOW + 299) is None
    assert device_proof.check(cert.decode(), "post", PATH, BODY, headers, NOW - 299) is None


@pytest.mark.parametrize("what, change, words", [
    ("no headers", lambda h: {}, "must be signed"),
    ("another path", lambda h: h, "not this device's"),
    ("a date that is no number", lambda h: {**h, device_proof.DATE: "yesterday"}, "Unix time"),
    ("a proof that is no base64", lambda h: {**h, device_proof.PROOF: "%%%"}, "not this"),
    ("the date moved", lambda h: {**h, device_proof.DATE: str(int(NOW) + 1)}, "not this"),
])
def test_a_wrong_or_altered_proof_is_refused(device, what, change, words):
    key, cert = device
    headers = change(device_proof.proof_headers(key, "POST", PATH, BODY, NOW))
    path = "/api/v1/devices/8/joined" if what == "another path" else PATH
    problem = device_proof.check(cert, "POST", path, BODY, headers, NOW)
    assert problem and words in problem, (what, problem)


def test_another_body_another_key_or_an_old_proof_is_refused(device):
    key, cert = device
    headers = device_proof.proof_headers(key, "POST", PATH, BODY, NOW)
    assert device_proof.check(cert, "POST", PATH, b'{"node_id": "x"}', headers, NOW)
    other = device_proof.proof_headers(pki.new_key_pem(), "POST", PATH, BODY, NOW)
    assert device_proof.check(cert, "POST", PATH, BODY, other, NOW)
    late = device_proof.check(cert, "POST", PATH, BODY, headers, NOW + 301)
    assert late and "NTP" in late
