"""The application calls of the agent (docs/agent.md): the tasks on this node, an action
run inside one of them, its log, and the parameters folder. Each route takes the query
(path parameters in it too) and the JSON body and returns (status, answer); ApiError is an
error answer. An answer may be a Download (bytes), a route an Upload (a body as a stream):
the volume copies' (agent_volumes)."""

from __future__ import annotations

import agent_params
import agent_tasks
from agent_config import say
from agent_engine import DockerError, Engine, ExecTimeout
from agent_tasks import text_tail


class ApiError(Exception):
    def __init__(self, status: int, message: str, **extra) -> None:
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra

    def answer(self) -> dict:
        return {"error": self.message, **self.extra}


class Download:
    """An answer that is bytes, not JSON: `chunks` (an iterator) of `size` bytes."""

    def __init__(self, chunks, size: int, headers: dict | None = None) -> None:
        self.chunks, self.size, self.headers = chunks, size, headers or {}


class Upload:
    """A route that takes its body as a stream: `open(query)` (in a worker thread) gives a
    writer with write(chunk), finish() -> (status, answer) and close(); `limit`: the most
    bytes one body may hold (a larger Content-Length gets 413 unread)."""

    def __init__(self, open_writer, limit: int) -> None:
        self.open, self.limit = open_writer, limit


def one(query: dict, name: str) -> str | None:
    values = query.get(name) or []
    return values[-1] if values else None


class AppApi:
    """GET /v1/tasks, POST /v1/exec, GET /v1/logs, PUT and DELETE /v1/params."""

    def __init__(self, engine: Engine, store: agent_params.ParamsStore) -> None:
        self.engine, self.store = engine, store

    def routes(self) -> dict:
        return {("GET", "/v1/tasks"): self.tasks, ("POST", "/v1/exec"): self.exec,
                ("GET", "/v1/logs"): self.logs, ("PUT", "/v1/params"): self.put_params,
                ("DELETE", "/v1/params"): self.delete_params}

    # --- containers --------------------------------------------------------------------------

    def tasks(self, query: dict, body) -> tuple:
        containers = self._engine(lambda: self.engine.containers(agent_tasks.APP_LABEL))
        tasks = [agent_tasks.task_of(c) for c in containers if agent_tasks.is_app_container(c)]
        return 200, {"tasks": sorted(tasks, key=lambda t: (t["app"], t["service"] or "",
                                                           t["name"]))}

    def app_container(self, ref) -> dict:
        """The inspected container; 404 when there is none, 403 when it is not the app's."""
        if not isinstance(ref, str) or not ref.strip():
            raise ApiError(400, "container must be a container's id or name")
        try:
            container = self.engine.inspect(ref)
        except DockerError as e:
            if e.status == 404:
                raise ApiError(404, f"no such container on this node: {ref}") from e
            raise ApiError(502, f"the Docker engine: {e.message}") from e
        if not agent_tasks.is_app_container(container):
            raise ApiError(403, f"container {ref} is not an application's (no "
                                f"{agent_tasks.APP_LABEL} label): the agent acts on those only")
        return container

    def exec(self, query: dict, body) -> tuple:
        try:
            request = agent_tasks.exec_request(body)
        except agent_tasks.BadRequest as e:
            raise ApiError(400, f"invalid exec request: {e}", problems=e.problems) from e
        container = self.app_container(request.container)
        if not (container.get("State") or {}).get("Running"):
            raise ApiError(409, f"container {request.container} is not running")
        said = {"container": container["Id"], "action": request.action}
        try:
            done = self.engine.exec_run(container["Id"], request.argv(), request.stdin(),
                                        request.timeout, agent_tasks.OUTPUT_LIMIT)
        except ExecTimeout as e:
            say(f"{request.action} in {container['Name'].lstrip('/')} timed out after "
                f"{request.timeout:g} s")
            raise ApiError(504, f"{request.action} did not end within {request.timeout:g} s",
                           output=text_tail(e.output, agent_tasks.OUTPUT_LIMIT),
                           seconds=e.seconds, **said) from e
        except DockerError as e:
            raise ApiError(502, f"the Docker engine: {e.message}", **said) from e
        return 200, {**said, "exit_code": done.exit_code,
                     "report": agent_tasks.report_of(done.stdout),
                     "output": text_tail(done.output, agent_tasks.OUTPUT_LIMIT),
                     "seconds": done.seconds}

    def logs(self, query: dict, body) -> tuple:
        try:
            tail = agent_tasks.logs_tail(one(query, "tail"))
        except agent_tasks.BadRequest as e:
            raise ApiError(400, str(e)) from e
        container = self.app_container(one(query, "container"))
        lines = self._engine(lambda: self.engine.logs(container, tail))
        return 200, {"container": container["Id"], "lines": lines}

    def _engine(self, call):
        try:
            return call()
        except DockerError as e:
            raise ApiError(502, f"the Docker engine: {e.message}") from e

    # --- parameters ----------------------------------------------------------------------------

    def put_params(self, query: dict, body) -> tuple:
        problems = agent_params.put_problems(body)
        if problems:
            raise ApiError(400, "invalid parameters: " + "; ".join(problems),
                           problems=problems)
        app, service, revision = body["app"], body["service"], body["revision"]
        try:
            self.store.put(app, service, revision, body["params"])
        except agent_params.Conflict as e:
            raise ApiError(409, f"{app}/{service}: {e}", revision=e.current) from e
        except OSError as e:
            raise ApiError(500, f"cannot write the parameters of {app}/{service}: {e}") from e
        return 200, {"app": app, "service": service, "revision": revision}

    def delete_params(self, query: dict, body) -> tuple:
        app, service = one(query, "app"), one(query, "service")
        problems = agent_params.name_problems(app, service)
        if problems:
            raise ApiError(400, "; ".join(problems), problems=problems)
        try:
            removed = self.store.delete(app, service)
        except OSError as e:
            raise ApiError(500, f"cannot remove the parameters of {app}/{service}: {e}") from e
        return 200, {"app": app, "service": service, "removed": removed}
