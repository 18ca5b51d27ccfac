"""A service's running tasks, reached through the node agents (docs/agent.md): an action run
in each (config_change, notify), their logs, why one failed. Part of `Control`."""

from __future__ import annotations

import dataclasses

from dragonball.app.errors import UnknownService
from dragonball.errors import DragonBallError
from dragonball.orchestrator import naming

EXEC_TIMEOUT_S = 120


@dataclasses.dataclass(frozen=True)
class TaskResult:
    """What one task answered to a config_change or a notification."""

    service: str
    task: str
    server: str
    ok: bool
    detail: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class TaskCalls:
    """Control's calls that go to tasks; needs `engine`, `agents` and `spec_of`."""

    def running_tasks(self, app: str, name: str) -> list[tuple[dict, object]]:
        """(task, node) for each running task of the service."""
        nodes = {n.id: n for n in self.engine.nodes()}
        found = []
        for task in self.engine.tasks(naming.swarm_service(app, name)):
            if task.get("DesiredState") == "running" and task["Status"]["State"] == "running":
                found.append((task, nodes.get(task.get("NodeID"))))
        return found

    def each_task(self, app: str, name: str, action: str, body: dict,
                  replace: bool = False) -> list[TaskResult]:
        results = []
        for task, node in self.running_tasks(app, name):
            container = task["Status"].get("ContainerStatus", {}).get("ContainerID", "")
            server = node.hostname if node else task.get("NodeID", "")
            label = f"{name}.{task.get('Slot', '')}"
            if node is None or not container:
                results.append(TaskResult(name, label, server, False, "no container yet"))
                continue
            try:
                answer = self.agents.exec(node.address, container, action, input=body,
                                          timeout=EXEC_TIMEOUT_S, replace=replace)
            except DragonBallError as e:
                results.append(TaskResult(name, label, server, False, e.message))
                continue
            ok = answer.get("exit_code") == 0
            detail = report_detail(answer)
            results.append(TaskResult(name, label, server, ok, detail))
        return results

    def explain(self, task: dict) -> tuple[str, str]:
        """(server, the last lines of its container log) of a failed task."""
        nodes = {n.id: n for n in self.engine.nodes()}
        node = nodes.get(task.get("NodeID"))
        server = node.hostname if node else task.get("NodeID", "")
        container = task["Status"].get("ContainerStatus", {}).get("ContainerID")
        if node is None or not container:
            return server, ""
        try:
            lines = self.agents.logs(node.address, container, tail=30)  # the lines
        except DragonBallError as e:
            return server, f"(its log could not be read: {e.message})"
        return server, "\n".join(lines)

    def logs(self, app: str, name: str, tail: int = 200) -> list[dict]:
        """The last `tail` log lines of each running task of a service, through the agents:
        [{"task", "server", "lines", "error"}] (`error`: why a task's log could not be read)."""
        services = self.spec_of(app).services
        if name not in services:
            raise UnknownService(name, services)
        found = []
        for task, node in self.running_tasks(app, name):
            container = task["Status"].get("ContainerStatus", {}).get("ContainerID", "")
            entry = {"task": f"{name}.{task.get('Slot', '')}", "lines": [], "error": None,
                     "server": node.hostname if node else task.get("NodeID", "")}
            if node is None or not container:
                entry["error"] = "no container yet"
            else:
                try:
                    entry["lines"] = self.agents.logs(node.address, container, tail=tail)
                except DragonBallError as e:
                    entry["error"] = e.message
            found.append(entry)
        return found


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
