"""What the Swarm holds, as domain types (pure): nodes, services, tasks, and the one error.

The adapter (`dragonball.swarm.client.Swarm`) reads the Engine API's inspect JSON and gives
these; everything above it (the orchestrator's observe, plan and rollout, the portal's
enrollment) speaks only these types. `node_of`, `service_of` and `task_of` are the
translations, pure so that a captured inspect document is a test's fixture.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field
from typing import Mapping

from dragonball.errors import ClientError, Unavailable

#: The label a service made by the orchestrator carries: a hash of what it was made from.
SPEC_HASH_LABEL = "io.dragonball.spec-hash"


class SwarmError(ClientError, Unavailable):
    """The Swarm (the local engine, a manager) refused or could not answer a request."""


@dataclass(frozen=True)
class Node:
    """A Swarm node: a server of the cluster."""

    id: str
    hostname: str
    address: str = ""              # Status.Addr: where its agent answers
    ready: bool = True             # Status.State == "ready"
    role: str = "worker"           # "manager" or "worker"
    availability: str = "active"   # "active", "pause" or "drain"
    leader: bool = False           # a manager leading the raft
    reachability: str = ""         # a manager's raft reachability ("reachable", ...)
    manager_addr: str = ""         # ManagerStatus.Addr, "ip:2377": a manager's own address
    labels: Mapping[str, str] = field(default_factory=dict)
    created: str = ""              # CreatedAt, RFC 3339: sorts in time order
    updated: str = ""              # UpdatedAt: for a down node, about when it went down

    @property
    def manager(self) -> bool:
        return self.role == "manager"

    @property
    def active(self) -> bool:
        return self.availability == "active"


@dataclass(frozen=True)
class ServiceState:
    """A Swarm service as it is now."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    image: str = ""                  # the reference its tasks run (pinned by digest)
    replicas: int | None = None      # the replicas asked for; None: not a replicated one
    spec_hash: str | None = None     # SPEC_HASH_LABEL: what it was made from
    update_state: str | None = None  # UpdateStatus.State: "updating", "paused", "completed"...
    update_started: datetime.datetime | None = None  # UpdateStatus.StartedAt
    running: int | None = None       # ServiceStatus.RunningTasks (known from a listing)
    desired: int | None = None       # ServiceStatus.DesiredTasks (known from a listing)
    id: str = ""
    #: its published ports: (port, protocol, "host" or "ingress")
    ports: tuple = ()


@dataclass(frozen=True)
class Task:
    """One task of a service: a slot's container on a node, or an attempt at one."""

    id: str
    slot: int | None
    node_id: str
    state: str                      # Status.State: "running", "starting", "failed"...
    desired_state: str              # "running", "shutdown"...
    error: str = ""                 # Status.Err
    message: str = ""               # Status.Message
    container_id: str = ""
    timestamp: datetime.datetime | None = None  # when it reached its state
    created: datetime.datetime | None = None
    service_id: str = ""

    @property
    def up(self) -> bool:
        """Meant to run and running (Swarm says running only once its health check passed)."""
        return self.desired_state == "running" and self.state == "running"

    @property
    def reason(self) -> str:
        """Why it is in its state, in the engine's words."""
        return self.error or self.message or self.state


def parse_time(text: str) -> datetime.datetime:
    """An engine timestamp (RFC 3339 with up to nanoseconds) as an aware datetime."""
    text = text.strip().replace("Z", "+00:00")
    if "." in text:
        head, rest = text.split(".", 1)
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits):]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    value = datetime.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)


def _time(text: str | None) -> datetime.datetime | None:
    return parse_time(text) if text else None


def _node_address(status_addr: str, manager_addr: str) -> str:
    """Where the node is: Status.Addr, unless it reads 0.0.0.0 or a loopback address (a
    manager's may, once another manager leads: moby issue 35437) and ManagerStatus.Addr
    ("ip:2377") names the manager's own."""
    try:
        ip = ipaddress.ip_address(status_addr)
        usable = not (ip.is_unspecified or ip.is_loopback)
    except ValueError:
        usable = bool(status_addr)
    if usable or not manager_addr:
        return status_addr
    return manager_addr.rpartition(":")[0].strip("[]") or status_addr


def node_of(data: dict) -> Node:
    """A node from `GET /nodes/{id}`'s JSON."""
    spec, status = data.get("Spec") or {}, data.get("Status") or {}
    manager = data.get("ManagerStatus") or {}
    return Node(id=data["ID"], hostname=(data.get("Description") or {}).get("Hostname", ""),
                address=_node_address(status.get("Addr", ""), manager.get("Addr", "")),
                ready=status.get("State") == "ready",
                role=spec.get("Role", "worker"), availability=spec.get("Availability", "active"),
                leader=bool(manager.get("Leader")), reachability=manager.get("Reachability", ""),
                manager_addr=manager.get("Addr", ""),
                labels=dict(spec.get("Labels") or {}), created=data.get("CreatedAt", ""),
                updated=data.get("UpdatedAt", ""))


def service_of(data: dict) -> ServiceState:
    """A service from `GET /services[/{id}]`'s JSON (ServiceStatus when listed with it)."""
    spec = data.get("Spec") or {}
    labels = dict(spec.get("Labels") or {})
    counts = data.get("ServiceStatus") or {}
    container = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
    return ServiceState(
        name=spec.get("Name", ""), labels=labels, image=container.get("Image", ""),
        replicas=((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas"),
        spec_hash=labels.get(SPEC_HASH_LABEL),
        update_state=(data.get("UpdateStatus") or {}).get("State"),
        update_started=_time((data.get("UpdateStatus") or {}).get("StartedAt")),
        running=counts.get("RunningTasks"), desired=counts.get("DesiredTasks"),
        id=data.get("ID", ""), ports=published_ports(spec))


def published_ports(spec: dict) -> tuple:
    """((port, protocol, mode), ...) a service's spec publishes (pure)."""
    found = []
    for port in (spec.get("EndpointSpec") or {}).get("Ports") or ():
        if port.get("PublishedPort"):
            found.append((int(port["PublishedPort"]), port.get("Protocol") or "tcp",
                          port.get("PublishMode") or "ingress"))
    return tuple(found)


def task_of(data: dict) -> Task:
    """A task from `GET /tasks`' JSON."""
    status = data.get("Status") or {}
    return Task(id=data.get("ID", ""), slot=data.get("Slot"), node_id=data.get("NodeID", ""),
                state=status.get("State", ""), desired_state=data.get("DesiredState", ""),
                error=status.get("Err", "") or "", message=status.get("Message", "") or "",
                container_id=(status.get("ContainerStatus") or {}).get("ContainerID", "") or "",
                timestamp=_time(status.get("Timestamp")), created=_time(data.get("CreatedAt")),
                service_id=data.get("ServiceID", ""))
