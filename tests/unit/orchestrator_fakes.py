"""In-memory stand-ins for what orchestrator.control talks to: the Swarm (speaking the
adapter's domain types: Node, ServiceState, Task), the node agents and the portal
registry. Each records the calls that would change something."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import datetime

from dragonball.agent_client import AgentError
from dragonball.orchestrator import naming
from dragonball.swarm import Node, ServiceState, Task
from dragonball.swarm.model import published_ports

NOW = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
#: Swarm calls that change the cluster: a refused spec must make none of them.
MUTATIONS = frozenset({"create_service", "update_service", "scale", "remove_service",
                       "update_node", "ensure_network", "remove_network"})
NODES = (Node("id-a", "node-a", "10.0.0.1"),
         Node("id-b", "node-b", "10.0.0.2", labels={"zone": "b"}))


def task(service: str, slot: int, node: str, state: str = "running",
         desired: str = "running", container: str | None = None, error: str = "") -> Task:
    return Task(f"{service}.{slot}.{state}", slot, node, state, desired, error=error,
                container_id=container or f"c-{service}-{slot}", timestamp=NOW, created=NOW,
                service_id=f"id-{service}")


def state_of(spec: dict, update_state: str | None = None) -> ServiceState:
    """The ServiceState Swarm would report for a service made from `spec`."""
    labels = dict(spec["Labels"])
    return ServiceState(spec["Name"], labels, spec["TaskTemplate"]["ContainerSpec"]["Image"],
                        (spec["Mode"].get("Replicated") or {}).get("Replicas"),
                        labels.get(naming.SPEC_LABEL), update_state, id=f"id-{spec['Name']}",
                        ports=published_ports(spec))


class FakeSwarm:
    """A Swarm where a created (or scaled) service has all its tasks running at once, or
    failed when its name is in `failing` (name -> the task's error). A one-shot job
    (Mode ReplicatedJob) has one task, complete at once, failed when in `failing`, still
    running when in `hanging`."""

    def __init__(self, nodes=NODES) -> None:
        self._nodes = {n.id: n for n in nodes}
        self.failing: dict = {}
        self.by_name: dict = {}     # swarm name -> the spec it was made from
        self.task_lists: dict = {}  # swarm name -> [Task]
        self.calls: list = []       # (method, *args)
        self.networks: dict = {}    # name -> its driver options
        self.hanging: set = set()   # job services whose task never ends

    def mutations(self) -> list:
        return [c for c in self.calls if c[0] in MUTATIONS]

    # -- reads ----------------------------------------------------------------------------
    def nodes(self) -> list[Node]:
        self.calls.append(("nodes",))
        return list(self._nodes.values())

    def node(self, node_id: str) -> Node | None:
        return self._nodes.get(node_id)

    def services(self, labels: dict | None = None) -> list[ServiceState]:
        self.calls.append(("services", labels))
        return [state_of(spec) for spec in self.by_name.values()
                if all(spec["Labels"].get(k) == v for k, v in (labels or {}).items())]

    def service(self, name: str) -> ServiceState | None:
        spec = self.by_name.get(name)
        return state_of(spec) if spec else None

    def tasks(self, name: str) -> list[Task]:
        return list(self.task_lists.get(name, []))

    def now(self) -> datetime.datetime:
        return NOW

    # -- writes ---------------------------------------------------------------------------
    def add(self, spec: dict, tasks: list | None = None) -> None:
        """Put a service in place as if it ran already (test setup, not recorded)."""
        self.by_name[spec["Name"]] = copy.deepcopy(spec)
        nodes = list(self._nodes)
        if "ReplicatedJob" in spec["Mode"]:
            self.task_lists[spec["Name"]] = tasks if tasks is not None else [self._job_task(
                spec["Name"], nodes[0])]
            return
        replicas = (spec["Mode"].get("Replicated") or {}).get("Replicas", len(nodes))
        failing = self.failing.get(spec["Name"])
        made = [task(spec["Name"], i + 1, nodes[i % len(nodes)],
                     "failed" if failing else "running", error=failing or "")
                for i in range(replicas)]
        self.task_lists[spec["Name"]] = tasks if tasks is not None else made

    def _job_task(self, name: str, node: str) -> Task:
        if name in self.failing:
            return task(name, 1, node, "failed", "shutdown", error=self.failing[name])
        if name in self.hanging:
            return task(name, 1, node, "running", "complete")
        return task(name, 1, node, "complete", "complete")

    def create_service(self, spec: dict) -> str:
        self.calls.append(("create_service", spec["Name"]))
        self.add(spec)
        return f"id-{spec['Name']}"

    def update_service(self, name: str, spec: dict, force: bool = False) -> None:
        self.calls.append(("update_service", name, force))
        self.add(spec)

    def scale(self, name: str, replicas: int) -> None:
        self.calls.append(("scale", name, replicas))
        if name not in self.by_name:
            return
        spec = copy.deepcopy(self.by_name[name])
        spec["Mode"] = {"Replicated": {"Replicas": replicas}}
        self.add(spec)

    def remove_service(self, name: str) -> None:
        self.calls.append(("remove_service", name))
        self.by_name.pop(name, None)
        self.task_lists.pop(name, None)

    def update_node(self, node_id: str, labels: dict | None = None,
                    promote: bool = False) -> bool:
        self.calls.append(("update_node", node_id, dict(labels or {}), promote))
        node = self._nodes[node_id]
        merged = {**node.labels, **(labels or {})}
        merged = {k: v for k, v in merged.items() if v is not None}
        self._nodes[node_id] = dataclasses.replace(
            node, labels=merged, role="manager" if promote else node.role)
        return True

    def ensure_network(self, spec: dict) -> None:
        self.calls.append(("ensure_network", spec["Name"]))
        self.networks.setdefault(spec["Name"], dict(spec.get("Options") or {}))

    def network_options(self, name: str) -> dict | None:
        return self.networks.get(name)

    def remove_network(self, name: str) -> None:
        self.calls.append(("remove_network", name))


OK_REPORT = {"ok": True, "scripts": [{"name": "1_render.sh", "exit_status": 0}],
             "duration_s": 0.2}


class FakeAgents:
    """The node agents: `answers[container]` is what exec returns there (or an AgentError
    to raise); `logs_of[container]` its log lines."""

    def __init__(self) -> None:
        self.answers: dict = {}
        self.logs_of: dict = {}
        self.put_fails: dict = {}   # address -> AgentError
        self.calls: list = []
        self.held: dict = {}        # address -> the app volumes' names there
        self.busy: dict = {}        # address -> volumes in use at the first delete (409)
        self.free: dict = {}        # address -> free bytes on its engine's disk
        self.images_on: dict = {}   # address -> the image IDs its engine holds
        self.pulls: list = []       # (address, reference, image ID), as pulled
        self.pull_fails: dict = {}  # address -> AgentError its pulls raise
        self.down: set = set()      # addresses whose agent does not answer (images)
        self.net_copies: dict = {}  # address -> {network: asks it is still listed for}

    def images(self, address: str) -> list[dict]:
        if address in self.down:
            raise AgentError(f"cannot reach the agent at {address}:9443: refused")
        return [{"id": i, "tags": [], "digests": []} for i in self.images_on.get(address, ())]

    def pull_image(self, address: str, reference: str, image_id: str, auth) -> dict:
        if address in self.pull_fails:
            raise self.pull_fails[address]
        self.pulls.append((address, reference, image_id))
        self.images_on.setdefault(address, []).append(image_id)
        return {"id": image_id, "reference": reference, "pulled": True, "seconds": 1.5}

    def networks(self, address: str) -> list[dict]:
        """The copies listed there: each for as many asks as net_copies says (None: for
        ever)."""
        self.calls.append(("networks", address))
        if address in self.down:
            raise AgentError(f"cannot reach the agent at {address}:9443: refused")
        copies = self.net_copies.get(address, {})
        for name, asks in list(copies.items()):
            if asks is not None:
                copies[name] = asks - 1
                if asks <= 0:
                    del copies[name]
        return [{"name": name, "id": f"id-{name}", "app": name.split("_")[0],
                 "scope": "swarm", "containers": 1} for name in copies]

    def volumes(self, address: str, sizes: bool = False) -> list[dict]:
        return [{"name": n, "app": n.split("_")[0], "size": 10 << 20, "in_use": True}
                for n in self.held.get(address, [])]

    def volume_report(self, address: str, sizes: bool = False) -> dict:
        return {"volumes": self.volumes(address, sizes),
                "free_bytes": self.free.get(address, 100 << 30)}

    def delete_volume(self, address: str, name: str) -> dict:
        self.calls.append(("delete_volume", address, name))
        if name in self.busy.get(address, []):
            self.busy[address].remove(name)   # in use this once: its task was still going
            raise AgentError(f"the volume {name} is in use", status=409)
        self.held[address].remove(name)
        return {"name": name, "removed": True}

    def put_params(self, address: str, app: str, service: str, revision: int,
                   params: dict) -> dict:
        self.calls.append(("put_params", address, app, service, revision, params))
        if address in self.put_fails:
            raise self.put_fails[address]
        return {"app": app, "service": service, "revision": revision}

    def delete_params(self, address: str, app: str, service: str) -> dict:
        self.calls.append(("delete_params", address, app, service))
        if address in self.put_fails:
            raise self.put_fails[address]
        return {"app": app, "service": service}

    def exec(self, address: str, container: str, action: str, input: dict | None = None,
             timeout: float = 60, replace: bool = False) -> dict:
        self.calls.append(("exec", address, container, action, input, replace))
        answer = self.answers.get(container, {"exit_code": 0, "report": OK_REPORT,
                                              "output": ""})
        if isinstance(answer, AgentError):
            raise answer
        return dict(answer, container=container, action=action)

    def logs(self, address: str, container: str, tail: int = 200) -> list[str]:
        """As AgentClient.logs: the lines themselves."""
        self.calls.append(("logs", address, container, tail))
        return list(self.logs_of.get(container, []))

    def named(self, method: str) -> list:
        return [c for c in self.calls if c[0] == method]


def image_id_of(manifest_digest: str) -> str:
    """The fake registry's image ID (config digest) of a manifest digest."""
    return "sha256:" + hashlib.sha256(manifest_digest.encode()).hexdigest()


class FakeRegistry:
    """The portal registry: `digests["notes/api:0.1.0"]` -> its manifest digest, whose
    config digest (the image ID) is `image_id_of` it."""

    def __init__(self, digests: dict) -> None:
        self.digests = dict(digests)
        self.calls: list = []

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str]:
        config = {"digest": image_id_of(reference), "size": 1}
        return json.dumps({"schemaVersion": 2, "config": config}).encode(), reference

    def pull_auth(self) -> dict:
        return {"username": "dragonball", "password": "secret", "serveraddress": "registry"}

    def tag_digest(self, repository: str, tag: str) -> str | None:
        self.calls.append((repository, tag))
        return self.digests.get(f"{repository}:{tag}")
