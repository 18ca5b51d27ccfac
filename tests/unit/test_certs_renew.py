"""`dragonball certs renew`'s pure parts: what is due, the names kept, the agent's service
moved to new secrets by one `docker service update`."""

from __future__ import annotations

import datetime

from dragonball import pki
from dragonball.installer import agent, renew

NOW = datetime.datetime.now(datetime.timezone.utc)


def test_a_certificate_is_due_within_30_days_or_from_another_ca():
    ca, other = pki.create_ca(), pki.create_ca()
    fresh = pki.issue_server_cert(ca, "portal", ips=["10.0.0.1"], dns_names=["s1"])
    ending = pki.issue_server_cert(ca, "portal", ips=["10.0.0.1"], days=20)
    assert not renew.due(fresh, ca.cert_pem)
    assert renew.due(ending, ca.cert_pem)
    assert renew.due(fresh, other.cert_pem)
    assert renew.due(None, ca.cert_pem)


def test_a_renewed_certificate_names_what_the_old_one_named():
    ca = pki.create_ca()
    old = pki.issue_server_cert(ca, "portal", ips=["10.0.0.1", "127.0.0.1"],
                                dns_names=["s1", "localhost"])
    assert renew.names_of(old.cert_pem) == (["10.0.0.1", "127.0.0.1"], ["s1", "localhost"])


SPEC = {"TaskTemplate": {"ContainerSpec": {"Image": "r:5000/dragonball/agent:0.1.0@sha256:ab",
                                           "Secrets": [
    {"SecretName": "dragonball-agent-crt-old", "File": {"Name": "agent.crt"}},
    {"SecretName": "dragonball-agent-key-old", "File": {"Name": "agent.key"}},
    {"SecretName": "dragonball-agent-ca-same", "File": {"Name": "ca.crt"}}]}}}


def test_the_agents_get_only_the_secrets_that_changed_in_one_rolling_update():
    current = agent.service_secrets(SPEC)
    assert current == {"crt": "dragonball-agent-crt-old", "key": "dragonball-agent-key-old",
                       "ca": "dragonball-agent-ca-same"}
    # each server has its own identity now: the shared certificate's secrets go, the
    # clients' CA is swapped only when it changed; --force restarts every agent once
    wanted = {"ca": "dragonball-agent-ca-same"}
    argv = agent.secret_update_argv(current, wanted, "cafe", force=True)
    assert argv == [
        "docker", "service", "update", "--quiet", "--label-add", "io.dragonball.config=cafe",
        "--force", "--secret-rm", "dragonball-agent-crt-old",
        "--secret-rm", "dragonball-agent-key-old", "dragonball-agent"]
    argv = agent.secret_update_argv({"ca": "dragonball-agent-ca-same"},
                                    {"ca": "dragonball-agent-ca-new"}, "cafe")
    assert argv[-5:] == ["--secret-rm", "dragonball-agent-ca-same", "--secret-add",
                         "source=dragonball-agent-ca-new,target=ca.crt,mode=0444",
                         "dragonball-agent"]
    assert "rm" not in argv[:3]  # never removed and created again: no outage everywhere


def test_rejoin_on_a_server_without_a_finished_install_says_what_to_run(tmp_path):
    import pytest
    from dragonball.installer.rejoin import NotInstalled, rejoin
    with pytest.raises(NotInstalled, match="install it as a device"):
        rejoin("10.0.0.1", "ABCD-EFGH-JKLM-NPQR", "SHA256:" + "ab" * 32,
               data_dir=str(tmp_path))


def test_certs_issue_signs_an_app_certificate_with_the_cluster_ca_and_checks_first(tmp_path):
    import pytest
    from cryptography import x509

    from dragonball.installer.host import Host
    from dragonball.installer.portal import layout
    host = Host(root=tmp_path)
    with pytest.raises(renew.CertRequestInvalid, match="at least one --dns or --ip"):
        renew.issue_for_app(host, "web", [], [], 90)
    with pytest.raises(renew.CertRequestInvalid, match="is not an IP address"):
        renew.issue_for_app(host, "web", [], ["10.0.0.300"], 90)
    with pytest.raises(renew.CertRequestInvalid, match="out of range"):
        renew.issue_for_app(host, "web", ["a"], [], 9999)
    with pytest.raises(renew.CertRequestInvalid, match="not a certificate name"):
        renew.issue_for_app(host, "../web", ["a"], [], 90)
    with pytest.raises(renew.InstallerError, match="not on this server"):
        renew.issue_for_app(host, "web", ["wiki.example"], [], 90)   # not the portal
    ca = pki.create_ca()
    pki.write_pem_files(ca, host.path(layout.CA_CERT), host.path(layout.CA_KEY))
    pair = renew.issue_for_app(host, "web", ["wiki.example"], ["10.0.0.50"], 90)
    cert = x509.load_pem_x509_certificate(pair.cert_pem)
    assert cert.issuer == x509.load_pem_x509_certificate(ca.cert_pem).subject
    assert renew.names_of(pair.cert_pem) == (["10.0.0.50"], ["wiki.example"])
    assert 89 <= (pki.not_after(pair.cert_pem) - NOW).days <= 90


def test_an_out_folder_that_cannot_be_made_is_said_not_a_traceback(tmp_path):
    import pytest

    from dragonball.errors import PkiError
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    pair = pki.issue_server_cert(pki.create_ca(), "web", dns_names=["wiki.example"])
    with pytest.raises(PkiError, match="cannot write .*web.key"):
        pki.write_pem_files(pair, blocker / "web.crt", blocker / "web.key")
