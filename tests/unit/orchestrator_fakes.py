"""In-memory stand-ins for what orchestrator.control talks to: the Swarm engine, the node
agents and the portal registry. Each records the calls that would change something."""

from __future__ import annotations

import copy

from dragonball.agent_client import AgentError
from dragonball.orchestrator import naming
from dragonball.orchestrator.engine import NodeInfo

NOW = "2025-01-01T00:00:00.000000000Z"
#: Engine calls that change the cluster: a refused spec must make none of them.
MUTATIONS = frozenset({"create", "update", "scale", "remove", "set_node_label",
                       "ensure_network", "remove_network"})
NODES = (NodeInfo("id-a", "node-a", "10.0.0.1", True, {}),
         NodeInfo("id-b", "node-b", "10.0.0.2", True, {"zone": "b"}))


def task(service: str, slot: int, node: str, state: str = "running",
         desired: str = "running", container: str | None = None) -> dict:
    return {"ID": f"{service}.{slot}.{state}", "ServiceID": service, "Slot": slot,
            "NodeID": node, "DesiredState": desired, "CreatedAt": NOW,
            "Status": {"State": state, "Timestamp": NOW, "Err": "",
                       "ContainerStatus": {"ContainerID": container or
                                           f"c-{service}-{slot}"}}}


class FakeEngine:
    """A Swarm where a created (or scaled) service has all its tasks running at once, or
    failed when its name is in `failing` (name -> the task's error)."""

    def __init__(self, nodes=NODES) -> None:
        self._nodes = list(nodes)
        self.failing: dict = {}
        self.by_name: dict = {}     # swarm name -> inspect data
        self.task_lists: dict = {}  # swarm name -> tasks
        self.calls: list = []       # (method, *args)

    def mutations(self) -> list:
        return [c for c in self.calls if c[0] in MUTATIONS]

    # -- reads ----------------------------------------------------------------------------
    def nodes(self) -> list[NodeInfo]:
        self.calls.append(("nodes",))
        return list(self._nodes)

    def services(self, app: str) -> dict:
        return {name: copy.deepcopy(data) for name, data in self.by_name.items()
                if data["Spec"]["Labels"].get(naming.APP_LABEL) == app}

    def service(self, name: str) -> dict | None:
        data = self.by_name.get(name)
        return copy.deepcopy(data) if data else None

    def tasks(self, name: str) -> list[dict]:
        return copy.deepcopy(self.task_lists.get(name, []))

    def now(self) -> str:
        return NOW

    # -- writes ---------------------------------------------------------------------------
    def add(self, spec: dict, tasks: list | None = None) -> None:
        """Put a service in place as if it ran already (test setup, not recorded)."""
        self.by_name[spec["Name"]] = {"ID": f"id-{spec['Name']}", "Version": {"Index": 1},
                                      "Spec": copy.deepcopy(spec)}
        replicas = spec["Mode"]["Replicated"]["Replicas"]
        state = "failed" if spec["Name"] in self.failing else "running"
        made = [task(spec["Name"], i + 1, self._nodes[i % len(self._nodes)].id, state)
                for i in range(replicas)]
        for t in made:
            t["Status"]["Err"] = self.failing.get(spec["Name"], "")
        self.task_lists[spec["Name"]] = tasks if tasks is not None else made

    def create(self, spec: dict) -> str:
        self.calls.append(("create", spec["Name"]))
        self.add(spec)
        return f"id-{spec['Name']}"

    def update(self, current: dict, spec: dict, force: bool = False) -> None:
        self.calls.append(("update", spec["Name"], force))
        self.add(spec)

    def scale(self, name: str, replicas: int) -> None:
        self.calls.append(("scale", name, replicas))
        spec = copy.deepcopy(self.by_name[name]["Spec"])
        spec["Mode"] = {"Replicated": {"Replicas": replicas}}
        self.add(spec)

    def remove(self, name: str) -> None:
        self.calls.append(("remove", name))
        self.by_name.pop(name, None)
        self.task_lists.pop(name, None)

    def set_node_label(self, node_id: str, key: str, value) -> None:
        self.calls.append(("set_node_label", node_id, key, value))

    def ensure_network(self, spec: dict) -> None:
        self.calls.append(("ensure_network", spec["Name"]))

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

    def put_params(self, address: str, app: str, service: str, revision: int,
                   params: dict) -> dict:
        self.calls.append(("put_params", address, app, service, revision, params))
        if address in self.put_fails:
            raise self.put_fails[address]
        return {"app": app, "service": service, "revision": revision}

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


class FakeRegistry:
    """The portal registry: `digests["notes/api:0.1.0"]` -> its manifest digest."""

    def __init__(self, digests: dict) -> None:
        self.digests = dict(digests)
        self.calls: list = []

    def tag_digest(self, repository: str, tag: str) -> str | None:
        self.calls.append((repository, tag))
        return self.digests.get(f"{repository}:{tag}")
