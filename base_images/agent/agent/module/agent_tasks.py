"""The application's containers on this node (pure): what /v1/tasks says of a container,
and what /v1/exec may run in one (docs/agent.md). The engine is agent_engine's."""

from __future__ import annotations

import dataclasses
import json

APP_LABEL = "io.dragonball.app"
SERVICE_LABEL = "io.dragonball.service"
KIND_LABEL = "io.dragonball.kind"
TASK_ID_LABEL = "com.docker.swarm.task.id"
TASK_NAME_LABEL = "com.docker.swarm.task.name"
RUN_SH = "/opt/dragon_ball/bin/run.sh"
#: action -> it takes a JSON object on stdin (run.sh <action> - --json)
ACTIONS = {"config_change": True, "notify": True, "status": False, "info": False}
DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S = 60, 600
#: after the agent gives up, the command is stopped inside the container too (timeout(1))
KILL_AFTER_S = 5
OUTPUT_LIMIT = 64 * 1024


class BadRequest(ValueError):
    """What is wrong with a request's body, every problem at once."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def labels_of(container: dict) -> dict:
    return (container.get("Config") or {}).get("Labels") or {}


def is_app_container(container: dict) -> bool:
    """Only the application's containers may be exec'd into or have their logs read."""
    return bool(labels_of(container).get(APP_LABEL))


def slot_of(task_name: str | None) -> int | None:
    """`notes_api.2.<task id>` -> 2; a global service's `<svc>.<node id>.<task id>` -> None."""
    parts = (task_name or "").rsplit(".", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def task_of(container: dict) -> dict:
    """One entry of /v1/tasks from the container's inspection."""
    labels, state = labels_of(container), container.get("State") or {}
    return {"container": container.get("Id"), "name": (container.get("Name") or "").lstrip("/"),
            "app": labels.get(APP_LABEL), "service": labels.get(SERVICE_LABEL),
            "kind": labels.get(KIND_LABEL), "task_id": labels.get(TASK_ID_LABEL),
            "slot": slot_of(labels.get(TASK_NAME_LABEL)), "state": state.get("Status"),
            "health": (state.get("Health") or {}).get("Status") or "none",
            "started_at": state.get("StartedAt")}


@dataclasses.dataclass(frozen=True)
class ExecRequest:
    container: str
    action: str
    input: dict | None = None
    timeout: float = DEFAULT_TIMEOUT_S
    replace: bool = False

    def argv(self) -> list[str]:
        """run.sh's command line, wrapped in timeout(1) so a command the agent gave up on
        does not run on. The input is never here: it goes to stdin."""
        command = [RUN_SH, self.action] + (["-"] if ACTIONS[self.action] else []) + ["--json"]
        if self.replace:
            command.append("--replace")
        limit = f"{self.timeout + 1:g}"
        return ["timeout", "-k", str(KILL_AFTER_S), limit] + command

    def stdin(self) -> bytes:
        return b"" if self.input is None else json.dumps(self.input).encode() + b"\n"


def exec_request(body: dict) -> ExecRequest:
    """The checked body of POST /v1/exec; BadRequest lists every problem."""
    problems = []
    container, action = body.get("container"), body.get("action")
    if not isinstance(container, str) or not container.strip():
        problems.append("container must be a container's id or name")
    if action not in ACTIONS:
        problems.append(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    value = body.get("input")
    if value is not None and not isinstance(value, dict):
        problems.append("input must be a JSON object or null")
    elif value is None and ACTIONS.get(action):
        problems.append(f"{action} needs an input (a JSON object)")
    timeout = body.get("timeout", DEFAULT_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or \
            not 0 < timeout <= MAX_TIMEOUT_S:
        problems.append(f"timeout must be seconds, more than 0 and at most {MAX_TIMEOUT_S}, "
                        f"got {timeout!r}")
    replace = body.get("replace", False)
    if not isinstance(replace, bool) or (replace and action != "config_change"):
        problems.append("replace must be true or false, and true for config_change only")
    unknown = sorted(set(body) - {"container", "action", "input", "timeout", "replace"})
    if unknown:
        problems.append(f"unknown fields: {', '.join(unknown)}")
    if problems:
        raise BadRequest(problems)
    return ExecRequest(container, action, value, timeout, replace)


def report_of(stdout: bytes) -> dict | None:
    """run.sh --json's report (a JSON object on stdout), or None when it printed none."""
    try:
        report = json.loads(stdout.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def logs_tail(value: str | None, default: int = 200, most: int = 5000) -> int:
    """`tail` of GET /v1/logs: 1..most lines."""
    if value is None:
        return default
    if not value.isdigit() or not 1 <= int(value) <= most:
        raise BadRequest([f"tail must be a number of lines from 1 to {most}, got {value!r}"])
    return int(value)


def text_tail(data: bytes, limit: int) -> str:
    """The last `limit` bytes as text; a UTF-8 sequence cut at the start is dropped."""
    return data[-limit:].decode("utf-8", errors="replace").lstrip("\ufffd")
