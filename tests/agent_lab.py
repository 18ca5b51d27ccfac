"""The node agent image as a container on this engine, the way its Swarm service runs it,
for the integration tests: its TLS material as files (identity/ mounted read-only at
/host/identity, as the service mounts the server's own; secrets/ read-only at /run/secrets,
as Swarm mounts secrets), the host's /proc read-only at /host/proc, the
docker socket, port 9443 published on loopback; and the portal's client, once it answers.

Everything run here carries support.LABELS and is removed on leaving, even on failure.
"""

from __future__ import annotations

import contextlib
import pathlib

from dragonball import agent_client, pki
from dragonball.agent_client import AgentClient, AgentError
from support import LABELS, wait_for


def write_agent_pem(folder: pathlib.Path) -> pathlib.Path:
    """identity/ (agent.crt and agent.key from a new cluster CA, for 127.0.0.1, where the
    tests call it) and secrets/ (ca.crt: the agents' clients CA, whom the agent accepts) as
    the service mounts them, and beside them the portal's
    files: ca.crt (the cluster CA, to check the agent), client.crt and client.key (from the
    clients CA); and device.crt/.key, a client certificate of the cluster CA named as the
    portal (what a device could hold: refused). Returns `folder`."""
    ca, clients_ca = pki.create_ca(), pki.create_ca("DragonBall agent clients CA")
    pki.write_pem_files(agent_client.issue_agent_cert(ca, "127.0.0.1", "lab"),
                        folder / "identity" / "agent.crt", folder / "identity" / "agent.key")
    pki.write_private(folder / "secrets" / "ca.crt", clients_ca.cert_pem, 0o644)
    pki.write_private(folder / "ca.crt", ca.cert_pem, 0o644)
    pki.write_pem_files(agent_client.issue_client_cert(clients_ca), folder / "client.crt",
                        folder / "client.key")
    pki.write_pem_files(agent_client.issue_client_cert(ca), folder / "device.crt",
                        folder / "device.key")
    return folder


@contextlib.contextmanager
def labelled_container(docker_client, image: str, labels: dict | None = None, **run):
    """`containers.run(image, detach=True, **run)` with LABELS (and `labels`); removed
    with its volumes on leaving."""
    container = docker_client.containers.run(image, detach=True,
                                             labels={**LABELS, **(labels or {})}, **run)
    try:
        yield container
    finally:
        container.remove(force=True, v=True)


def agent_container(docker_client, image: str, pem: pathlib.Path, name: str,
                    volumes: dict | None = None, **run):
    """The agent as its service runs it, pem/secrets mounted; more `volumes` and `run`
    arguments (hostname, environment) added. A context manager, as labelled_container."""
    mounts = {str(pem / "secrets"): {"bind": "/run/secrets", "mode": "ro"},
              str(pem / "identity"): {"bind": "/host/identity", "mode": "ro"},
              "/proc": {"bind": "/host/proc", "mode": "ro"},
              "/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"}}
    return labelled_container(docker_client, image, name=name,
                              volumes=mounts | (volumes or {}),
                              ports={"9443/tcp": ("127.0.0.1", None)}, **run)


def published_port(container) -> int:
    """The loopback port the agent's 9443 is published on."""
    container.reload()
    return int(container.attrs["NetworkSettings"]["Ports"]["9443/tcp"][0]["HostPort"])


@contextlib.contextmanager
def answering_client(pem: pathlib.Path, container, timeout: float, port: int | None = None):
    """The portal's AgentClient (pem's client certificate) to the container, once its
    health answers (30 s at most, failing with the container's log)."""
    with AgentClient(ca=str(pem / "ca.crt"), cert=str(pem / "client.crt"),
                     key=str(pem / "client.key"), port=port or published_port(container),
                     timeout=timeout) as client:
        def answers():
            try:
                return client.health("127.0.0.1")
            except AgentError:
                return None
        wait_for(answers, 30, lambda: container.logs().decode(errors="replace"))
        yield client
