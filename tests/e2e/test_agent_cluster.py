"""The node agent on a cluster installed from the real .bin (docs/agent.md), on an internal lab:

    s1  the portal (its install starts the agent as a global Swarm service)
    s2  a device, s3  a device, joined at once

Then: one running agent task per node, each pulled from the portal's registry; the portal's
client files (its client certificate, the CA) get metrics from every node's address, from
this machine with dragonball.agent_client and from the portal itself with curl; without the
client certificate every agent refuses. Each server's agent has an identity of its own,
checked against its address. Nothing leaves the lab.
"""

from __future__ import annotations

import time

import pytest

from dragonball import agent_client
from dragonball.agent_client import AgentClient
from support import wait_for
from tests.lab.install import step_times

SERVERS = ("s1", "s2", "s3")
PORTAL_FILES = {"ca.crt": "/etc/dragonball/ca.crt", "client.crt": agent_client.CLIENT_CERT,
                "client.key": agent_client.CLIENT_KEY}


@pytest.fixture(scope="module")
def cluster(installed_cluster):
    return installed_cluster


@pytest.fixture(scope="module")
def portal_files(cluster, tmp_path_factory):
    """The portal's CA and agent client certificate and key, copied to this machine."""
    folder = tmp_path_factory.mktemp("portal-files")
    for name, path in PORTAL_FILES.items():
        data = cluster.lab.exec("s1", ["cat", path], check=True).stdout
        (folder / name).write_text(data)
        (folder / name).chmod(0o600)
    return folder


def running_tasks(cluster) -> dict:
    listing = cluster.docker("s1", "service", "ps", "dragonball-agent", "--filter",
                             "desired-state=running", "--format",
                             "{{.Node}} {{.CurrentState}}").stdout
    tasks: dict = {}
    for line in listing.splitlines():
        node, _, state = line.partition(" ")
        tasks.setdefault(node, []).append(state.split()[0] if state else "")
    return tasks


def test_the_portal_prints_its_code_after_the_agent_answered(cluster):
    journal = cluster.journal("s1")
    order = sorted(journal["steps"], key=lambda s: journal["steps"][s]["started"])
    assert order.index("agent.service") < order.index("portal.first_code")
    assert order.index("portal.images") < order.index("agent.service")
    times = {step: end - start for step, (start, end) in step_times(journal).items()}
    print(f"\nagent steps on the portal: agent.pki {times['agent.pki']:.1f} s, agent.service "
          f"{times['agent.service']:.1f} s; portal install {cluster.times['portal']:.0f} s, "
          f"device installs {cluster.times['devices']:.0f} s")


def test_one_running_agent_task_per_node(cluster):
    def one_each():
        tasks = running_tasks(cluster)
        return tasks if tasks == {s: ["Running"] for s in SERVERS} else None
    began = time.monotonic()
    wait_for(one_each, 120, describe=lambda: cluster.docker(
        "s1", "service", "ps", "--no-trunc", "dragonball-agent").stdout, interval=1)
    print(f"\nan agent task running on every node {time.monotonic() - began:.1f} s after the "
          "last device's install returned")
    spec = cluster.docker("s1", "service", "inspect", "--format",
                          "{{json .Spec.Mode}} {{.Spec.EndpointSpec.Mode}} "
                          "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
                          "dragonball-agent").stdout
    assert spec.startswith('{"Global":{}} dnsrr ')
    # named by its ID, loaded from each server's .bin: no registry pull (a server joins and
    # runs its agent while the registry is down)
    assert spec.split()[-1].startswith("sha256:"), spec


def test_the_portal_client_gets_metrics_from_every_node(cluster, portal_files):
    wait_for(lambda: running_tasks(cluster) == {s: ["Running"] for s in SERVERS}, 120,
             interval=1)
    node_ids = dict(line.split() for line in cluster.docker(
        "s1", "node", "ls", "--format", "{{.Hostname}} {{.ID}}").stdout.splitlines())
    addresses = {cluster.lab.ip(s): s for s in SERVERS}
    with AgentClient(ca=str(portal_files / "ca.crt"), cert=str(portal_files / "client.crt"),
                     key=str(portal_files / "client.key"), timeout=10) as agents:
        def all_answer():
            found = agents.metrics_of(addresses)
            return found if all(isinstance(m, dict) for m in found.values()) else None
        found = wait_for(all_answer, 60, interval=1,
                         describe=lambda: str(agents.metrics_of(addresses)))
    for address, metrics in found.items():
        server = addresses[address]
        assert metrics["hostname"] == server and metrics["node_id"] == node_ids[server]
        assert metrics["memory"]["total_bytes"] > 0 and metrics["cpu"]["cores"] >= 1
        assert 0 <= metrics["cpu"]["busy_percent"] <= 100
        # the node's own network namespace: its sshd and Swarm ports listen there
        assert metrics["connections"]["listen"] >= 3, metrics["connections"]
        assert metrics["uptime_s"] > 0


def test_from_the_portal_itself_with_and_without_the_client_certificate(cluster):
    for server in SERVERS:
        address = cluster.lab.ip(server)
        base = ["curl", "-sS", "--max-time", "10", "--cacert", "/etc/dragonball/ca.crt",
                f"https://{address}:9443/v1/health"]
        good = cluster.lab.exec("s1", base[:1] + ["--cert", agent_client.CLIENT_CERT, "--key",
                                                  agent_client.CLIENT_KEY] + base[1:])
        assert good.ok and f'"hostname": "{server}"' in good.stdout, good
        refused = cluster.lab.exec("s1", base)
        assert not refused.ok and '"status"' not in refused.stdout, refused


def identity(cluster, server: str) -> tuple[str, str, str]:
    """(the agent's certificate's fingerprint, its subject and IP SAN, the key's mode) as
    `server` holds them."""
    folder = "/etc/dragonball/agent/identity"
    fingerprint = cluster.lab.exec(server, ["openssl", "x509", "-noout", "-fingerprint",
                                            "-sha256", "-in", f"{folder}/agent.crt"],
                                   check=True).stdout.strip()
    names = cluster.lab.exec(server, ["openssl", "x509", "-noout", "-subject", "-ext",
                                      "subjectAltName", "-in", f"{folder}/agent.crt"],
                             check=True).stdout
    mode = cluster.lab.exec(server, ["stat", "-c", "%a %U", f"{folder}/agent.key"],
                            check=True).stdout.strip()
    return fingerprint, names, mode


def test_every_server_has_its_own_identity_and_none_answers_for_another(cluster):
    """Issue 13: one key per server, made there; the portal checks each agent's certificate
    against the address it calls, so s2's agent (or whoever holds s2's key) cannot pass for
    s3's."""
    seen = {server: identity(cluster, server) for server in SERVERS}
    assert len({fingerprint for fingerprint, _, _ in seen.values()}) == len(SERVERS)
    for server, (_, names, mode) in seen.items():
        assert f"CN = {server}" in names and f"IP Address:{cluster.lab.ip(server)}" in names
        assert "DNS:" not in names and mode == "600 root", (server, names, mode)
    s2, s3 = cluster.lab.ip("s2"), cluster.lab.ip("s3")
    posing = cluster.lab.exec("s1", [
        "curl", "-sS", "--max-time", "10", "--cacert", "/etc/dragonball/ca.crt",
        "--cert", agent_client.CLIENT_CERT, "--key", agent_client.CLIENT_KEY,
        "--connect-to", f"{s3}:9443:{s2}:9443", f"https://{s3}:9443/v1/health"])
    assert not posing.ok and "status" not in posing.stdout, posing
    assert "certificate" in posing.stderr or "SSL" in posing.stderr, posing


def test_the_only_swarm_secret_is_the_clients_ca_and_nothing_left_the_lab(cluster):
    spec = cluster.docker("s1", "service", "inspect", "--format",
                          "{{json .Spec.TaskTemplate.ContainerSpec}}", "dragonball-agent").stdout
    assert "PRIVATE KEY" not in spec and "BEGIN CERTIFICATE" not in spec
    names = cluster.docker("s1", "secret", "ls", "--filter", "label=io.dragonball.role=agent",
                           "--format", "{{.Name}}").stdout.split()
    assert sorted(n.rsplit("-", 1)[0] for n in names) == ["dragonball-agent-ca"]
    assert cluster.lab.leak_packets() == 0
