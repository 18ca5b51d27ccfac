"""Certificates on a lab of its own (portal s1, device s2, from the real .bin;
docs/certificates.md): the Swarm's node certificates last a year, the portal's and a
joining device's; `dragonball certs renew
--force` renews the portal's, the registry's and the agents' certificates while the portal
keeps answering (new connections get the new certificate, nobody restarts it); `status
--json` reports the certificates; and a server whose Swarm identity is gone comes back with
the documented command (`dragonball rejoin s2` on the portal, the command it prints on s2):
Ready again, as the same device, running its agent task.

What CI cannot wait for: a node certificate that really expires while its server is off
(Swarm's shortest lifetime is 1 h and the lab shares this machine's clock). That is
bench/cert_expiry.py; here s2 is switched off and its node removed by the rejoin, which is
what an expired certificate leaves too (a node the Swarm will never take back).
"""

from __future__ import annotations

import datetime
import json
import ssl
import threading
import time

import pytest
import requests
from cryptography import x509

from support import wait_for
from tests.lab.install import LabCluster

pytestmark = pytest.mark.e2e

YEAR_NS = 8760 * 3600 * 10**9
NODE_CERT = "/var/lib/docker/swarm/certificates/swarm-node.crt"


@pytest.fixture(scope="module")
def cluster(make_lab, release_bin):
    lab = make_lab(servers=2, internal=True)
    cluster = LabCluster(lab, release_bin[0])
    cluster.install_cluster()
    cluster.login()
    return cluster


def _cert_end(cluster, server: str, path: str) -> datetime.datetime:
    pem = cluster.lab.exec(server, ["cat", path], check=True).stdout.encode()
    return x509.load_pem_x509_certificate(pem).not_valid_after_utc


def _served(address: str) -> bytes:
    """The DER of the certificate the portal serves now (a new connection)."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    import socket
    with socket.create_connection((address, 8443), timeout=5) as sock:
        with context.wrap_socket(sock) as tls:
            return tls.getpeercert(binary_form=True)


def _agent_fingerprint(lab, server: str) -> str:
    """The fingerprint of the certificate `server`'s agent presents on its 9443."""
    return lab.exec("s1", ["sh", "-c", f"openssl s_client -connect {lab.ip(server)}:9443 "
                           "</dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"],
                    timeout=30).stdout.strip()  # "" while it does not answer


def _node_rows(cluster) -> list[dict]:
    out = cluster.docker("s1", "node", "ls", "--format", "{{json .}}").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_swarm_node_certificates_last_a_year(cluster):
    info = json.loads(cluster.docker("s1", "info", "--format", "{{json .Swarm}}").stdout)
    assert info["Cluster"]["Spec"]["CAConfig"]["NodeCertExpiry"] == YEAR_NS
    now = datetime.datetime.now(datetime.timezone.utc)
    for server in ("s1", "s2"):
        days = (_cert_end(cluster, server, NODE_CERT) - now).days
        print(f"\n{server}: Swarm node certificate ends in {days} days")
    # init's own certificate has 90 days whatever --cert-expiry says (Docker 20.10): the
    # install rotates once, after which joins get the year too (measured)
    for server in ("s1", "s2"):
        assert (_cert_end(cluster, server, NODE_CERT) - now).days >= 360


def test_status_reports_the_certificates(cluster):
    out = json.loads(cluster.dragonball("status", "--json").stdout)
    names = {c["name"] for c in out["certificates"]["certificates"]}
    assert {"cluster CA", "portal TLS", "registry TLS", "agent server",
            "Swarm node certificate", "Swarm root CA"} <= names
    assert out["certificates"]["warnings"] == []   # everything fresh


def test_renew_swaps_every_certificate_while_the_portal_answers(cluster, tmp_path):
    lab = cluster.lab
    address = lab.ip("s1")
    ca = tmp_path / "ca.crt"
    ca.write_text(lab.exec("s1", ["cat", "/etc/dragonball/ca.crt"], check=True).stdout)
    before = _served(address)
    agents_before = {server: _agent_fingerprint(lab, server) for server in ("s1", "s2")}
    assert all(agents_before.values()), agents_before
    answers, failures, stop = [0], [], threading.Event()

    def ask():
        with requests.Session() as session:
            session.trust_env = False
            while not stop.is_set():
                try:
                    session.get(f"https://{address}:8443/healthz", verify=str(ca),
                                timeout=5).raise_for_status()
                    answers[0] += 1
                except requests.RequestException as e:
                    failures.append(str(e)[:200])
                time.sleep(0.1)
    asker = threading.Thread(target=ask, daemon=True)
    asker.start()
    began = time.monotonic()
    run = cluster.dragonball("certs", "renew", "--force", "--json", timeout=600)
    renewed_s = time.monotonic() - began
    assert json.loads(run.stdout)["certificates"] == {
        "portal": "renewed", "registry": "renewed", "agents": "renewed"}
    assert wait_for(lambda: _served(address) != before, timeout=30, interval=1)
    stop.set()
    asker.join(timeout=20)
    print(f"\ncerts renew --force: {renewed_s:.1f} s; the portal answered {answers[0]} "
          f"times meanwhile, {len(failures)} failed")
    assert answers[0] > 10 and not failures, failures[:5]
    # the agents answer the portal's new client certificate, s1's with its new identity
    # (s2's, made at its enrollment, is renewed by enrolling again: the rejoin below)
    for server in ("s1", "s2"):
        health = lab.exec("s1", [
            "curl", "-sf", "--cacert", "/etc/dragonball/ca.crt",
            "--cert", "/etc/dragonball/portal/agent-client.crt",
            "--key", "/etc/dragonball/portal/agent-client.key",
            f"https://{lab.ip(server)}:9443/v1/health"], timeout=30)
        assert health.ok and json.loads(health.stdout)["hostname"] == server
    assert _agent_fingerprint(lab, "s1") != agents_before["s1"]
    assert _agent_fingerprint(lab, "s2") == agents_before["s2"]
    secrets = cluster.docker("s1", "secret", "ls", "--format", "{{.Name}}").stdout.split()
    assert not [s for s in secrets if s.startswith(("dragonball-agent-crt-",
                                                    "dragonball-agent-key-"))]


def test_a_server_whose_node_is_gone_rejoins_with_the_documented_command(cluster):
    lab = cluster.lab
    old = next(r["ID"] for r in _node_rows(cluster) if r["Hostname"] == "s2")
    identity = _agent_fingerprint(lab, "s2")
    lab.kill("s2")
    assert wait_for(lambda: any(r["Hostname"] == "s2" and r["Status"] == "Down"
                                for r in _node_rows(cluster)), timeout=120, interval=2)
    refused = cluster.dragonball("rejoin", "s1", check=False)
    assert refused.returncode == 4 and "is the portal" in refused.stderr
    info = json.loads(cluster.dragonball("rejoin", "s2", "--json").stdout)
    assert info["removed_node"] == old
    assert all(r["ID"] != old for r in _node_rows(cluster))
    lab.start("s2")
    began = time.monotonic()
    argv = [cluster.bin, "--target", "/root", *info["command"][2:], "--json"]
    done = lab.exec("s2", argv, timeout=600)
    assert done.ok, done.stdout + done.stderr
    new = json.loads(done.stdout)["node_id"]
    assert new and new != old

    def back():
        rows = [r for r in _node_rows(cluster) if r["Hostname"] == "s2"]
        tasks = cluster.docker("s1", "service", "ps", "--filter", "desired-state=running",
                               "--format", "{{.Node}} {{.CurrentState}}",
                               "dragonball-agent").stdout
        return (len(rows) == 1 and rows[0]["Status"] == "Ready"
                and any(line.startswith("s2 Running") for line in tasks.splitlines()))
    assert wait_for(back, timeout=180, interval=2)
    print(f"\ns2 rejoined in {time.monotonic() - began:.0f} s (node {old[:12]} -> {new[:12]})")
    devices = json.loads(cluster.dragonball("devices", "--json").stdout)["devices"]
    s2 = next(d for d in devices if d["hostname"] == "s2")
    assert s2["state"] == "joined" and s2["node_id"] == new
    # enrolled again: a new identity (its agent's certificate renewed with it)
    renewed = wait_for(lambda: _agent_fingerprint(lab, "s2"), timeout=60, interval=2)
    assert renewed != identity
    labels = json.loads(cluster.docker("s1", "node", "inspect", new, "--format",
                                       "{{json .Spec.Labels}}").stdout)
    assert labels["io.dragonball.device-id"] == str(s2["id"])
