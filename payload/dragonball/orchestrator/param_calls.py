"""A service's parameters on the cluster: kept on the portal, written on every server by its
agent, delivered to running tasks with config_change (docs/orchestrator.md, "Parameters").
Part of `Control`."""

from __future__ import annotations

from dragonball.agent_client import AgentError
from dragonball.app.errors import UnknownService
from dragonball.app.model import AppSpec
from dragonball.errors import DragonBallError
from dragonball.orchestrator import params as params_mod
from dragonball.orchestrator.tasks import TaskResult

AGENT_WAIT_S = 120.0   # a server that just joined: its agent task is pulled, then starts
AGENT_RETRY_S = 2.0


class ParamCalls:
    """Control's parameter calls; needs `engine`, `agents`, `store`, `applied`, `spec_of`,
    `each_task`, `progress`, `clock` and `sleep`."""

    def publish_params(self, spec: AppSpec, only=None) -> list[str]:
        """Write each service's parameters in force on every server (the agents); return
        the services whose values in force changed since their tasks last got them
        (`mark_delivered` records that, once they did)."""
        changed = []
        nodes = [n for n in self.engine.nodes() if n.ready]
        for name, service in spec.services.items():
            if only is not None and name not in only:
                continue
            revision, values = self.store.params(spec.app, name)
            wanted = params_mod.in_force(service, values)
            if self.store.published(spec.app, name) != wanted or revision == 0:
                revision = self.store.bump_params(spec.app, name)
                changed.append(name)
            # every time: a server that joined since has no folder yet
            self._write_everywhere(spec.app, name, revision, wanted, nodes)
        return changed

    def _write_everywhere(self, app: str, name: str, revision: int, values: dict,
                          nodes) -> None:
        """Through each ready server's agent; an agent that does not answer yet (a server
        that just joined: its agent task is still being pulled) is asked again for up to
        AGENT_WAIT_S."""
        waiting = list(nodes)
        deadline = self.clock() + AGENT_WAIT_S
        while True:
            failures = []
            for node in waiting:
                try:
                    self.agents.put_params(node.address, app, name, revision, values)
                except DragonBallError as e:
                    failures.append((node, e))
            if not failures:
                return
            if self.clock() >= deadline:
                raise AgentError(
                    f"the parameters of {name} could not be written on {len(failures)} "
                    "server(s): " + "; ".join(f"{n.hostname}: {e.message}" for n, e in failures),
                    "a server whose agent does not answer cannot run tasks: see "
                    "'docker service ps dragonball-agent' on the portal")
            waiting = [n for n, _ in failures]
            self.progress(name, "waiting", "for the agent on " +
                          ", ".join(n.hostname for n in waiting))
            self.sleep(AGENT_RETRY_S)

    def set_params(self, app: str, name: str, assignments: list[str],
                   unset: list[str] = ()) -> list[TaskResult]:
        return self._edit_params(app, name, lambda service, current: params_mod.edit(
            name, service, current, assignments, unset))

    def _edit_params(self, app: str, name: str, edit) -> list[TaskResult]:
        """Store `edit(service, current values)`'s values (ParamsInvalid: nothing stored),
        write them on every server, deliver them to every running task."""
        spec, _ = self.applied(app)
        if name not in spec.services:
            raise UnknownService(name, spec.services)
        service = spec.services[name]
        _, current = self.store.params(app, name)
        values = edit(service, current)
        self.store.set_params(app, name, values)
        changed = sorted(k for k in set(values) | set(current)
                         if values.get(k) != current.get(k))
        self.store.store.record("app.params", "admin", None,
                                {"app": app, "service": name, "changed": changed})
        self.publish_params(spec, only=[name])
        results = self.deliver_params(spec, name)
        if all(r.ok for r in results):
            self.mark_delivered(spec, [name])
        return results

    def get_params(self, app: str, name: str) -> dict:
        spec = self.spec_of(app)
        if name not in spec.services:
            raise UnknownService(name, spec.services)
        service = spec.services[name]
        revision, values = self.store.params(app, name)
        return {"app": app, "service": name, "revision": revision,
                "parameters": {k: {"value": v, "default": service.parameters[k].default,
                                   "type": service.parameters[k].type,
                                   "secret": service.parameters[k].secret, "set": k in values}
                               for k, v in params_mod.in_force(service, values).items()}}

    def deliver_params(self, spec: AppSpec, name: str) -> list[TaskResult]:
        """config_change with the values in force, in every running task of `name`."""
        _, values = self.store.params(spec.app, name)
        wanted = params_mod.in_force(spec.services[name], values)
        return self.each_task(spec.app, name, "config_change", wanted, replace=True)

    def set_param_values(self, app: str, name: str, values: dict,
                         unset=()) -> list[TaskResult]:
        """`set_params` with JSON-typed values ({key: value}), checked against the spec's
        parameter types (params.check_value); ParamsInvalid lists every problem."""
        return self._edit_params(app, name, lambda service, current: params_mod.edit_values(
            name, service, current, values, unset))

    def mark_delivered(self, spec: AppSpec, names) -> None:
        for name in names:
            _, values = self.store.params(spec.app, name)
            self.store.mark_published(spec.app, name,
                                      params_mod.in_force(spec.services[name], values))

