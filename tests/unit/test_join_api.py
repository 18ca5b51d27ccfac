"""The joining side's talk with the portal (dragonball.installer.join), over real TLS.

A small HTTPS server on 127.0.0.1, with a certificate from a CA made by `pki`, plays
the portal of docs/enrollment.md: enough to prove the CA is pinned by its fingerprint
(whatever the environment says), that every later call is verified with it, and that
each refusal the contract lists reads clearly.
"""

from __future__ import annotations

import json

import pytest

from dragonball import pki
from dragonball.installer import join
from dragonball.installer.enrollment_api import JoinError, PortalApi
from dragonball.installer.join import PortalChecks
from join_fakes import CODE, enrollment_document, free_port, portal  # noqa: F401 (fixtures)


def test_the_fingerprint_is_sha256_of_the_der_like_pki_says(portal):
    assert join.ca_fingerprint(portal.ca.cert_pem) == "SHA256:" + pki.fingerprint(
        portal.ca.cert_pem)


def test_the_ca_is_fetched_unverified_and_pinned(portal):
    ca = join.fetch_pinned_ca(portal.address, portal.fingerprint)
    assert ca == portal.ca.cert_pem


def test_another_ca_is_refused_naming_both_fingerprints(portal):
    other = "SHA256:" + pki.fingerprint(pki.create_ca().cert_pem)
    with pytest.raises(JoinError) as err:
        join.fetch_pinned_ca(portal.address, other)
    assert portal.fingerprint in err.value.message and other in err.value.message
    assert "refusing to send it the enrollment code" in err.value.message
    assert portal.requests == ["GET /api/v1/ca"]  # the code never left this server


def test_enroll_is_verified_with_the_pinned_ca_not_the_environment(portal, monkeypatch,
                                                                   tmp_path):
    bogus = tmp_path / "bundle.pem"
    bogus.write_bytes(pki.create_ca().cert_pem)
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.setenv(name, str(bogus))
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # would break if read
    found = join.enroll(portal.address, portal.ca.cert_pem, CODE, "s2", "10.0.0.12")
    assert found.device_id == "d-1" and found.registry_address == "10.0.0.11:5000"
    assert portal.bodies[-1] == {"code": CODE, "hostname": "s2", "address": "10.0.0.12"}


def test_secrets_stay_out_of_repr(portal):
    found = join.enroll(portal.address, portal.ca.cert_pem, CODE, "s2", "10.0.0.12")
    shown = repr(found)
    for secret in (found.join_token, found.registry_password, found.device_token):
        assert secret not in shown


def test_a_portal_with_a_certificate_of_another_ca_is_refused_after_pinning(portal):
    with pytest.raises(JoinError, match="did not prove it holds a certificate of the pinned"):
        join.enroll(portal.address, pki.create_ca().cert_pem, CODE, "s2", "10.0.0.12")
    assert portal.bodies == []


@pytest.mark.parametrize("status,error,expected,hint", [
    (401, "unknown code", "refused the enrollment code: unknown code", "dragonball enroll"),
    (401, "code already used", "code already used", "one-time"),
    (401, "code expired", "code expired", "expire"),
    (401, "", "refused the enrollment code: unknown code", "one-time"),
    (409, "hostname taken", "refused the name 's2': hostname taken", "set-hostname"),
    (429, "too many failed codes", "refuses codes from this server for now: too many failed",
     "wait 10 minutes"),
    (500, "boom", "answered 500 to the enrollment: boom", "journalctl"),
])
def test_each_refusal_says_what_and_what_next(portal, status, error, expected, hint):
    portal.script("/api/v1/enroll", status, {"error": error})
    with pytest.raises(JoinError) as err:
        join.enroll(portal.address, portal.ca.cert_pem, CODE, "s2", "10.0.0.12")
    assert expected in err.value.message and hint in err.value.hint
    assert CODE not in str(err.value)


def test_the_portals_own_advice_is_not_said_twice(portal):
    portal.script("/api/v1/enroll", 401, {"error": "code expired: ask the portal for a new "
                                                   "one ('dragonball enroll' on the portal)"})
    with pytest.raises(JoinError) as err:
        join.enroll(portal.address, portal.ca.cert_pem, CODE, "s2", "10.0.0.12")
    assert str(err.value) == ("the portal refused the enrollment code: code expired: ask the "
                              "portal for a new one ('dragonball enroll' on the portal)")


def test_an_answer_lacking_fields_names_them(portal):
    document = enrollment_document()
    del document["swarm"]["join_token"], document["device_token"]
    portal.script("/api/v1/enroll", 200, document)
    with pytest.raises(JoinError, match="lacks device_token, join_token"):
        join.enroll(portal.address, portal.ca.cert_pem, CODE, "s2", "10.0.0.12")


def test_a_registry_address_that_is_not_host_port_is_refused(portal):
    document = enrollment_document()
    document["registry"]["address"] = "../../etc"
    portal.script("/api/v1/enroll", 200, document)
    with pytest.raises(JoinError, match="registry address"):
        join.enroll(portal.address, portal.ca.cert_pem, CODE, "s2", "10.0.0.12")


def test_joined_sends_the_device_token_and_the_node_id(portal):
    with join.ca_file(portal.ca.cert_pem) as path, PortalApi(portal.address, path) as api:
        api.joined("d-1", "device-token-1", "node-abc")
    assert portal.requests[-1] == "POST /api/v1/devices/d-1/joined"
    assert portal.bodies[-1] == {"node_id": "node-abc"}
    assert portal.auth[-1] == "Bearer device-token-1"


def test_joined_refused_says_so(portal):
    portal.script("/api/v1/devices/d-1/joined", 401, {"error": "bad token"})
    with join.ca_file(portal.ca.cert_pem) as path, PortalApi(portal.address, path) as api:
        with pytest.raises(JoinError, match="401: bad token"):
            api.joined("d-1", "wrong", "node-abc")


def test_a_closed_port_is_unreachable_with_the_reason(free_port):
    with pytest.raises(JoinError) as err:
        join.fetch_pinned_ca(f"127.0.0.1:{free_port}", "SHA256:" + "ab" * 32)
    assert f"cannot reach the portal at 127.0.0.1:{free_port}: Connection refused" == \
        err.value.message
    assert "8443" in err.value.hint


def test_something_else_than_a_portal_is_not_taken_for_one(portal):
    portal.script("/api/v1/ca", 200, {"hello": "world"})
    with pytest.raises(JoinError, match="did not answer with a PEM certificate"):
        PortalChecks("s2", "10.0.0.12").check_portal(portal.address)


# --- the wizard's checks ---------------------------------------------------------------------

def test_wizard_checks_pin_then_enroll(portal):
    checks = PortalChecks("s2", "10.0.0.12")
    assert checks.check_portal(portal.address) is True
    assert checks.check_fingerprint(portal.address, portal.fingerprint.upper().replace(
        "SHA256:", "sha256:")) is True
    assert checks.check_code(portal.address, CODE) is True
    assert portal.bodies[-1]["hostname"] == "s2"


def test_wizard_code_check_waits_for_a_pinned_ca(portal):
    checks = PortalChecks("s2", "10.0.0.12")
    checks.check_portal(portal.address)
    assert checks.check_code(portal.address, CODE) is True
    assert portal.bodies == []  # never sent to a portal whose CA was not pinned


def test_wizard_checks_become_the_wizards_messages(portal):
    from dragonball.wizard.answers import remote_verdict
    checks = PortalChecks("s2", "10.0.0.12")
    checks.check_fingerprint(portal.address, portal.fingerprint)
    portal.script("/api/v1/enroll", 401, {"error": "code expired"})
    verdict = remote_verdict(checks.check_code, portal.address, CODE)
    assert verdict.startswith("the portal refused the enrollment code: code expired: ")


def test_the_source_address_toward_the_portal_is_found_without_sending():
    assert join.source_address("127.0.0.1:8443") == "127.0.0.1"


def test_the_enrollment_file_is_the_portals_answer(portal):
    found = join.enroll(portal.address, portal.ca.cert_pem, CODE, "s2", "10.0.0.12")
    assert json.loads(join.enrollment_json(found)) == enrollment_document(portal.ca)
