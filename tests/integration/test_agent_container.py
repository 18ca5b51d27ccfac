"""The agent image (dragonball/agent, built by builder.platform_images) as a container on
this engine, the way the Swarm service runs it: its server's identity read-only at
/host/identity, the clients' CA under /run/secrets (read-only, as Swarm mounts secrets), the
host's /proc read-only at /host/proc,
the docker socket, port 9443 published on loopback. Spoken to from this host with the
portal's client (dragonball.agent_client), and refused without a client certificate."""

from __future__ import annotations

import json

import pytest
import requests

from agent_lab import agent_container, answering_client, published_port, write_agent_pem
from dragonball import __version__, agent_client, pki
from dragonball.agent_client import AgentClient, AgentError
from support import RUN_ID, wait_for

HOSTNAME = f"agent-{RUN_ID}"


@pytest.fixture(scope="module")
def pem(tmp_path_factory):
    """secrets/ as the service mounts them; the portal's client files and a stranger's
    (of another CA) beside."""
    folder = write_agent_pem(tmp_path_factory.mktemp("agent"))
    pki.write_pem_files(agent_client.issue_client_cert(pki.create_ca()),
                        folder / "stranger.crt", folder / "stranger.key")
    return folder


@pytest.fixture(scope="module")
def container(docker_client, agent_image, pem):
    with agent_container(docker_client, agent_image, pem, f"dbtest-agent-{RUN_ID}",
                         hostname=HOSTNAME,
                         environment={"DRAGONBALL_NODE_ID": "node-" + RUN_ID}) as c:
        yield c


@pytest.fixture(scope="module")
def port(container) -> int:
    return published_port(container)


@pytest.fixture(scope="module")
def client(pem, port, container):
    with answering_client(pem, container, timeout=5, port=port) as c:
        yield c


def host_listeners() -> int:
    count = 0
    for name in ("/proc/1/net/tcp", "/proc/1/net/tcp6"):
        with open(name) as f:
            count += sum(1 for line in f.read().splitlines()[1:] if line.split()[3] == "0A")
    return count


def test_the_portal_client_gets_the_hosts_metrics_over_mutual_tls(client):
    health = client.health("127.0.0.1")
    assert health["status"] == "ok" and health["version"] == __version__
    assert health["hostname"] == HOSTNAME and health["node_id"] == "node-" + RUN_ID
    metrics = client.metrics("127.0.0.1")
    with open("/proc/meminfo") as f:
        total_kib = int(f.readline().split()[1])
    assert metrics["memory"]["total_bytes"] == total_kib * 1024  # the host's, read-only mount
    with open("/proc/stat") as f:
        cores = sum(1 for line in f if line[:3] == "cpu" and line[3].isdigit())
    assert metrics["cpu"]["cores"] == cores and 0 <= metrics["cpu"]["busy_percent"] <= 100
    assert metrics["io"]["devices"] and metrics["io"]["read_bytes"] > 0
    # the host's network namespace: its listeners (docker-proxy for our port at least),
    # not the container's one listener (9443)
    assert metrics["connections"]["listen"] >= 2
    assert abs(metrics["connections"]["listen"] - host_listeners()) <= 3
    assert metrics["uptime_s"] > 0 and metrics["load"]["threads"] > 0


def test_a_client_without_a_certificate_or_of_another_ca_is_refused(client, pem, port,
                                                                   container):
    session = requests.Session()
    session.trust_env = False
    with pytest.raises(requests.exceptions.SSLError):
        session.get(f"https://127.0.0.1:{port}/v1/metrics", verify=str(pem / "ca.crt"),
                    timeout=5)
    # another cluster's client, and one of this cluster's CA (as a device's would be): the
    # agent accepts the clients CA alone, and its TLS alert says so
    for who in ("stranger", "device"):
        with AgentClient(ca=str(pem / "ca.crt"), cert=str(pem / f"{who}.crt"),
                         key=str(pem / f"{who}.key"), port=port, timeout=5) as other, \
                pytest.raises(AgentError, match="TLS with the agent .* failed: .*unknown ca"):
            other.metrics("127.0.0.1")
    assert "TLS handshake failed" in container.logs().decode()  # the agent says so too


def test_the_module_reports_healthy_and_describes_itself(client, container):
    wait_for(lambda: (container.reload() or container.attrs["State"].get("Health", {})
                      .get("Status") == "healthy"), 40,
             lambda: json.dumps(container.attrs["State"].get("Health"), indent=1))
    code, out = container.exec_run(["/opt/dragon_ball/bin/run.sh", "info"])
    assert code == 0 and f"DragonBall node agent {__version__}, port 9443" in out.decode()


def test_no_secret_is_in_the_environment_or_the_image(container, agent_image, docker_client):
    env = "\n".join(container.attrs["Config"]["Env"])
    assert "PRIVATE KEY" not in env and "CERTIFICATE" not in env
    code, out = container.exec_run(["sh", "-c", "ls /opt/dragon_ball/service/agent/module; "
                                    "grep -rl 'PRIVATE KEY' /opt /etc 2>/dev/null | wc -l"])
    assert out.decode().split()[-1] == "0"


def test_it_stops_cleanly(client, container):
    container.stop(timeout=10)
    container.reload()
    assert container.attrs["State"]["ExitCode"] == 0
    assert "the server (pid" in container.logs().decode() and "stopped" in container.logs().decode()
