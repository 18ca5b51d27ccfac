"""A service's running tasks, reached through the node agents (docs/agent.md): an action run
in each (config_change, notify), their logs, why one failed. A collaborator of `Control`."""

from __future__ import annotations

import dataclasses
import datetime

from dragonball.errors import DragonBallError
from dragonball.orchestrator import naming
from dragonball.swarm import Node, Task

EXEC_TIMEOUT_S = 120


@dataclasses.dataclass(frozen=True)
class TaskResult:
    """What one task answered to a config_change or a notification."""

    service: str
    task: str
    server: str
    ok: bool
    detail: str
    refused: bool = False   # it answered, and its scripts failed (not: it could not be asked)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class TaskCalls:
    """A service's running tasks, reached through the node agents: given the Swarm
    adapter (where tasks run) and the agents (what runs in them)."""

    def __init__(self, swarm, agents) -> None:
        self.swarm, self.agents = swarm, agents

    def running(self, app: str, name: str) -> list[tuple[Task, Node | None]]:
        """(task, its node) for each running task of the service: a spec's name (every
        slot of a service with storage) or a unit's (one slot, `store-2`)."""
        nodes = {n.id: n for n in self.swarm.nodes()}
        return [(task, nodes.get(task.node_id))
                for swarm_name in self.swarm_names(app, name)
                for task in self.swarm.tasks(swarm_name) if task.up]

    def swarm_names(self, app: str, name: str) -> list[str]:
        """The Swarm services of `name`: its slots' when it has slots, else its own."""
        slots = self.swarm.services({naming.APP_LABEL: app, naming.SERVICE_LABEL: name})
        found = sorted(s.name for s in slots if naming.SLOT_LABEL in s.labels)
        return found or [naming.swarm_service(app, name)]

    def each(self, app: str, name: str, action: str, body: dict,
             replace: bool = False) -> list[TaskResult]:
        """Run `action` with `body` in every running task of the service: one result each."""
        return [self._one(name, task, node, action, body, replace)
                for task, node in self.running(app, name)]

    def _one(self, name: str, task: Task, node: Node | None, action: str, body: dict,
             replace: bool) -> TaskResult:
        server, label = _server(task, node), f"{name}.{task.slot or ''}"
        if node is None or not task.container_id:
            return TaskResult(name, label, server, False, "no container yet")
        try:
            answer = self.agents.exec(node.address, task.container_id, action, input=body,
                                      timeout=EXEC_TIMEOUT_S, replace=replace)
        except DragonBallError as e:
            return TaskResult(name, label, server, False, e.message)
        ok = answer.get("exit_code") == 0
        return TaskResult(name, label, server, ok, report_detail(answer), refused=not ok)

    def explain(self, task: Task) -> tuple[str, str]:
        """(server, the last lines of its container log) of a failed task."""
        node = {n.id: n for n in self.swarm.nodes()}.get(task.node_id)
        if node is None or not task.container_id:
            return _server(task, node), ""
        try:
            lines = self.agents.logs(node.address, task.container_id, tail=30)
        except DragonBallError as e:
            return node.hostname, f"(its log could not be read: {e.message})"
        return node.hostname, "\n".join(lines)

    def logs(self, app: str, name: str, tail: int = 200) -> list[dict]:
        """The last `tail` log lines of each running task of a service:
        [{"task", "server", "lines", "error"}] (`error`: why a task's log could not be read)."""
        return [self._log(name, task, node, tail) for task, node in self.running(app, name)]

    def job_logs(self, app: str, name: str, tail: int = 200) -> list[dict]:
        """The last `tail` log lines of a one-shot job's last run: its newest task, ended or
        not (its container stays until the next run); none when it never ran."""
        tasks = self.swarm.tasks(naming.swarm_service(app, name))
        if not tasks:
            return []
        floor = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
        newest = max(tasks, key=lambda t: t.created or floor)
        node = {n.id: n for n in self.swarm.nodes()}.get(newest.node_id)
        return [dict(self._log(name, newest, node, tail), state=newest.state)]

    def _log(self, name: str, task: Task, node: Node | None, tail: int) -> dict:
        entry = {"task": f"{name}.{task.slot or ''}", "lines": [], "error": None,
                 "server": _server(task, node)}
        if node is None or not task.container_id:
            entry["error"] = "no container yet"
            return entry
        try:
            entry["lines"] = self.agents.logs(node.address, task.container_id, tail=tail)
        except DragonBallError as e:
            entry["error"] = e.message
        return entry


def _server(task: Task, node: Node | None) -> str:
    return node.hostname if node else task.node_id


def report_detail(answer: dict) -> str:
    """One line of what a task's supervisor reported (its JSON report, else its output)."""
    report = answer.get("report")
    if isinstance(report, dict):
        if report.get("duplicate"):
            return "already handled"
        failed = next((s for s in report.get("scripts", [])
                       if s.get("exit_status") != 0 or s.get("timed_out")), None)
        if failed:
            tail = (failed.get("output") or "").strip().splitlines()[-3:]
            return f"{failed.get('name')} exited {failed.get('exit_status')}: " + " | ".join(tail)
        if report.get("ok"):
            return f"ok: {len(report.get('scripts', []))} script(s) in " \
                   f"{report.get('duration_s', 0)} s"
    return (answer.get("output") or "").strip()[-500:] or f"exit {answer.get('exit_code')}"
