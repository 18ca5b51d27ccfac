"""The agent's server in this process on 127.0.0.1 (base_images/agent/agent/module:
hypercorn and Starlette, from the libraries the image installs from Debian), with
certificates from dragonball.pki, spoken to by the portal's client (dragonball.agent_client):
mutual TLS against the agents' clients CA, who is refused, what is answered, the limits."""

from __future__ import annotations

import http.client
import importlib
import json
import socket
import ssl
import sys
import time
import types

import pytest
import requests

from dragonball import agent_client, pki
from dragonball.agent_client import AgentClient, AgentError, fingerprint
from support import ROOT
from test_agent_metrics import DATA, fake_proc

MODULE = ROOT / "base_images" / "agent" / "agent" / "module"


@pytest.fixture(scope="module")
def agentd():
    """The agent's modules: agentd (commands, Settings), agent_server, agent_engine."""
    sys.path.insert(0, str(MODULE))
    try:
        yield types.SimpleNamespace(**{name: importlib.import_module(name) for name in (
            "agentd", "agent_server", "agent_engine")})
    finally:
        sys.path.remove(str(MODULE))


@pytest.fixture(scope="module")
def pem(tmp_path_factory):
    """The cluster's files: its CA (which signs the agents' certificate), the agents'
    clients CA and the portal's client certificate from it; and strangers: a client of the
    cluster CA (as a device's would be) named as the portal, another CA's client, a server
    certificate of the clients CA (no clientAuth usage)."""
    folder = tmp_path_factory.mktemp("pki")
    ca, clients_ca = pki.create_ca(), pki.create_ca("agent clients")
    other_ca = pki.create_ca("another cluster")
    pairs = {"agent": agent_client.issue_agent_cert(ca, "127.0.0.1", "s7"),
             "client": agent_client.issue_client_cert(clients_ca),
             "device": agent_client.issue_client_cert(ca),
             "stranger": agent_client.issue_client_cert(other_ca),
             "server-as-client": pki.issue_server_cert(clients_ca, "x",
                                                       dns_names=["dragonball-portal"]),
             # another server's identity: the same CA, another address
             "another-server": agent_client.issue_agent_cert(ca, "10.0.0.9", "s9"),
             # the agents' shared certificate of earlier releases: a name, no address
             "by-name": pki.issue_server_cert(ca, "agent", dns_names=["dragonball-agent"]),
             "other-agent": agent_client.issue_agent_cert(other_ca, "127.0.0.1", "s7")}
    for name, pair in pairs.items():
        pki.write_pem_files(pair, folder / f"{name}.crt", folder / f"{name}.key")
    for name, pair in (("ca", ca), ("clients-ca", clients_ca), ("other-ca", other_ca)):
        pki.write_private(folder / f"{name}.crt", pair.cert_pem, 0o644)
    return folder


def settings_of(agentd, pem, tmp_path, cert: str = "agent", **more):
    """Settings on 127.0.0.1, any port; clients of the clients CA only."""
    return agentd.agentd.Settings(**{
        "port": 0, "bind": "127.0.0.1", "cert": str(pem / f"{cert}.crt"),
        "key": str(pem / f"{cert}.key"), "ca": str(pem / "clients-ca.crt"),
        "proc_root": "/proc", "health_socket": "", "params_dir": str(tmp_path / "params"),
        **more})


@pytest.fixture
def agent(agentd, pem, tmp_path):
    proc = fake_proc(tmp_path / "proc")
    clock = [1000.0]

    def sleep(seconds):  # the collector's window: time passes and /proc moves on
        clock[0] += 1.0
        for name in ("stat", "diskstats"):
            (proc / name).write_text((DATA / f"{name}.1s").read_text())
    collector = agentd.agent_server.Collector(str(proc), hostname="s7", node_id="node7",
                                              clock=lambda: clock[0], sleep=sleep)
    settings = settings_of(agentd, pem, tmp_path, proc_root=str(proc),
                           health_socket=str(tmp_path / "h.sock"))
    server = agentd.agent_server.Agent(settings, collector).start()
    server.clock = clock
    yield server
    server.stop()


def client(pem, port, name="client", ca="ca.crt", **kwargs) -> AgentClient:
    return AgentClient(ca=str(pem / ca), cert=str(pem / f"{name}.crt"),
                       key=str(pem / f"{name}.key"), port=port, **kwargs)


def test_the_portal_gets_health_and_metrics(agent, pem):
    with client(pem, agent.port) as agents:
        health = agents.health("127.0.0.1")
        metrics = agents.metrics("127.0.0.1")
    assert health["status"] == "ok" and health["hostname"] == "s7"
    assert health["node_id"] == "node7"
    assert metrics["schema"] == 1 and metrics["hostname"] == "s7"
    assert metrics["cpu"]["busy_percent"] == 26.9 and metrics["cpu"]["window_s"] == 1.0
    assert metrics["io"]["read_bytes_per_s"] == 360 * 512
    assert metrics["memory"]["total_bytes"] == 24684096 * 1024
    assert metrics["connections"]["established"] == 6  # PID 1's net: the host's, not ours
    assert metrics["load"]["1m"] == 5.09 and metrics["uptime_s"] > 0


def test_unreadable_proc_is_500(agent, pem, tmp_path):
    (tmp_path / "proc" / "meminfo").unlink()
    with client(pem, agent.port) as agents, pytest.raises(AgentError) as refused:
        agents.metrics("127.0.0.1")
    assert refused.value.status == 500 and "cannot read the host's /proc" in str(refused.value)


def test_metrics_are_the_deltas_since_the_last_call_when_it_is_recent_enough(agent, pem):
    with client(pem, agent.port) as agents:
        agents.metrics("127.0.0.1")  # a window of its own (first call)
        agent.clock[0] += 5.0
        later = agents.metrics("127.0.0.1")
    assert later["cpu"]["window_s"] == 5.0  # since the previous call, no sleep
    assert later["cpu"]["busy_percent"] == 0.0  # /proc did not move meanwhile


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_a_client_without_a_certificate_is_refused(agent, pem):
    session = requests.Session()
    session.trust_env = False
    with pytest.raises(requests.exceptions.SSLError):
        session.get(f"https://127.0.0.1:{agent.port}/v1/health", verify=False, timeout=5)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # the CA and name right, no cert
    context.load_verify_locations(str(pem / "ca.crt"))
    with socket.create_connection(("127.0.0.1", agent.port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            tls.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            # TLS 1.3: the handshake ends on our side first; the refusal comes on read
            assert tls.recv(1024) == b"", "the agent answered a client without a certificate"
            raise ConnectionError("closed without an answer")


@pytest.mark.parametrize("who", ["stranger", "server-as-client", "device"])
def test_a_certificate_of_another_ca_or_without_client_use_is_refused(agent, pem, who):
    """"device": a client certificate of the cluster CA named as the portal. The agent
    trusts the clients CA alone, so what a device holds can never drive an agent."""
    with client(pem, agent.port, who) as agents, pytest.raises(AgentError, match="TLS"):
        agents.health("127.0.0.1")


def test_the_systems_and_the_environments_cas_are_not_trusted(agentd, pem, tmp_path,
                                                              monkeypatch):
    """hypercorn's own TLS context would load the default CAs (and $SSL_CERT_FILE) as
    client CAs too; the agent's context has the clients CA alone."""
    monkeypatch.setenv("SSL_CERT_FILE", str(pem / "other-ca.crt"))
    monkeypatch.setenv("SSL_CERT_DIR", str(pem))
    server = agentd.agent_server.Agent(settings_of(agentd, pem, tmp_path)).start()
    try:
        for who in ("stranger", "device"):
            with client(pem, server.port, who) as agents, \
                    pytest.raises(AgentError, match="TLS"):
                agents.health("127.0.0.1")
    finally:
        server.stop()


def test_the_client_checks_the_ca_and_the_address_called(agentd, pem, tmp_path):
    """Each server's agent has its own identity: a certificate of the cluster CA for another
    server's address (what a compromised device holds) is refused, so is a name alone."""
    for cert, expected in (("other-agent", "certificate verify failed"),
                           ("another-server", "IP address mismatch"),
                           ("by-name", "IP address mismatch")):
        server = agentd.agent_server.Agent(settings_of(agentd, pem, tmp_path, cert)).start()
        try:
            with client(pem, server.port) as agents, \
                    pytest.raises(AgentError, match="TLS with the agent") as refused:
                agents.health("127.0.0.1")
            assert expected in str(refused.value)
        finally:
            server.stop()


def test_a_pinned_address_accepts_only_the_certificate_the_portal_signed_for_it(agent, pem):
    """A removed device's certificate, or one from before a rejoin, names the same address
    and comes from the same CA: only the pin (the certificate the portal keeps for the
    server there, portal/identity_pins.py) tells it apart."""
    signed = fingerprint((pem / "agent.crt").read_text())
    newer = fingerprint(agent_client.issue_agent_cert(
        pki.create_ca(), "127.0.0.1", "s7").cert_pem)   # any other certificate
    with client(pem, agent.port, pins={"127.0.0.1": signed}.get) as agents:
        assert agents.health("127.0.0.1")["status"] == "ok"
    with client(pem, agent.port, pins={"127.0.0.1": newer}.get) as agents, \
            pytest.raises(AgentError, match="TLS with the agent") as refused:
        agents.health("127.0.0.1")
    assert "ingerprints did not match" in str(refused.value)
    assert "an older one is refused" in refused.value.hint
    pins = {"127.0.0.1": newer}
    with client(pem, agent.port, pins=pins.get) as agents:   # the pin follows the store
        with pytest.raises(AgentError):
            agents.health("127.0.0.1")
        pins["127.0.0.1"] = signed
        assert agents.health("127.0.0.1")["status"] == "ok"
        del pins["127.0.0.1"]                # no pin: the CA and the address, as before
        assert agents.health("127.0.0.1")["status"] == "ok"


def test_a_silent_client_and_an_idle_connection_are_dropped(agentd, pem, tmp_path,
                                                            monkeypatch):
    monkeypatch.setattr(agentd.agent_server, "HANDSHAKE_TIMEOUT_S", 0.5)
    monkeypatch.setattr(agentd.agent_server, "IDLE_TIMEOUT_S", 1)
    server = agentd.agent_server.Agent(settings_of(agentd, pem, tmp_path)).start()

    def closed_within(sock, seconds: float) -> None:
        started = time.monotonic()
        assert sock.recv(1) == b""
        assert time.monotonic() - started < seconds
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as silent:
            closed_within(silent, 3)  # no TLS handshake
        idle = https(pem, server.port)
        idle.connect()
        closed_within(idle.sock, 4)  # a handshake, then no request
        idle.close()
        conn = https(pem, server.port)
        conn.request("GET", "/v1/health")
        answer = conn.getresponse()
        assert answer.read() and answer.headers["Connection"] == "close"
        conn.close()
    finally:
        server.stop()


def test_unknown_paths_and_other_methods(agent, pem):
    with client(pem, agent.port) as agents:
        with pytest.raises(AgentError, match="HTTP 404.*no such path: /v1/secrets") as missing:
            agents.get("127.0.0.1", "/v1/secrets")
        assert "/v1/metrics" in missing.value.body["error"]
        answer = agents.session.post(agents.url("127.0.0.1", "/v1/metrics"), timeout=5)
    assert answer.status_code == 405
    assert answer.json() == {"error": "/v1/metrics answers GET only"}


def test_the_health_socket_answers_health_only(agentd, agent):
    status, body = agentd.agentd.probe(agent.settings.health_socket)
    assert status == 200 and json.loads(body)["status"] == "ok"
    conn = agentd.agentd.UnixHTTPConnection(agent.settings.health_socket)
    conn.request("GET", "/v1/metrics")
    assert conn.getresponse().status == 404
    conn.close()


def test_metrics_of_many_agents_at_once_keeps_each_failure(agent, pem):
    with client(pem, agent.port, timeout=2) as agents:
        found = agents.metrics_of(["127.0.0.1", "127.0.0.2", "127.0.0.1"])
    assert list(found) == ["127.0.0.1", "127.0.0.2"]
    assert found["127.0.0.1"]["hostname"] == "s7"
    assert isinstance(found["127.0.0.2"], AgentError)
    assert "cannot reach the agent at 127.0.0.2:" in found["127.0.0.2"].message


def test_the_client_ignores_the_environments_ca_bundle_and_proxies(agent, pem, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pem / "other-ca.crt"))
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    with client(pem, agent.port) as agents:
        assert agents.health("127.0.0.1")["status"] == "ok"


def test_missing_files_are_named(pem, tmp_path):
    with pytest.raises(AgentError, match="client certificate is missing"):
        AgentClient(ca=str(pem / "ca.crt"), cert=str(tmp_path / "none.crt"),
                    key=str(pem / "client.key"))


def test_the_client_certificate_is_for_clients_only(pem):
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID
    cert = x509.load_pem_x509_certificate((pem / "client.crt").read_bytes())
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.subject.rfc4514_string() == "CN=dragonball-portal"
    agent = x509.load_pem_x509_certificate((pem / "agent.crt").read_bytes())
    names = agent.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == []
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert agent.subject.rfc4514_string() == "CN=s7"


def test_parameters_problems_are_listed_at_once_and_files_are_where_they_are_mounted(agentd):
    defaults = json.loads((MODULE / "defaults.json").read_text())
    assert agentd.agentd.problems(defaults) == []
    settings = agentd.agentd.settings_from(defaults)
    assert (settings.cert, settings.key, settings.ca) == (
        "/host/identity/agent.crt", "/host/identity/agent.key", "/run/secrets/ca.crt")
    assert settings.proc_root == "/host/proc" and settings.port == 9443
    bad = {**defaults, "port": "9443", "bind": "", "tls_key": ""}
    assert len(agentd.agentd.problems(bad)) == 3


def https(pem, port: int, name: str = "client") -> http.client.HTTPSConnection:
    """A plain HTTPS connection with the portal's client certificate (no requests)."""
    context = ssl.create_default_context(cafile=str(pem / "ca.crt"))
    context.check_hostname = False
    context.load_cert_chain(str(pem / f"{name}.crt"), str(pem / f"{name}.key"))
    return http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
