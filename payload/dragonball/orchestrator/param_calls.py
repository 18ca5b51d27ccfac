"""A service's parameters on the cluster: kept on the portal, written by the agents on the
servers where the service may run (and taken off the others), delivered to running tasks
with config_change (docs/orchestrator.md, "Parameters"). A collaborator of `Control`.

Only where it may run (`may_run`: its placement's servers and labels), because a value may
be a secret and a server should hold only what its own tasks need (docs/security.md). A
service without placement may run anywhere, so every server holds its parameters: pin the
services that hold secrets.

A one-shot job has parameters as a service has (its own folder, where it may run), named
as a service is in `params set`; it reads them when it starts, so they are never
delivered to a task: a change runs it again at the next apply (orchestrator.jobs).

The app's shared parameters (spec `shared:`) are kept once, as `@shared` (model.SHARED),
and have no folder of their own: each service or job taking one has the value in its own
folder and gets it as any change of its own parameters (`put`), so a change reaches every
taker whose values in force it changes, and one refusal by any task of any of them puts the
value before back for all of them (`restore`)."""

from __future__ import annotations

import logging
import time
from typing import Callable

from dragonball.app import graph
from dragonball.app import plan as plan_mod
from dragonball.app.model import SHARED, AppSpec
from dragonball.agent_client import AgentError
from dragonball.errors import DragonBallError
from dragonball.orchestrator import jobs as jobs_mod
from dragonball.orchestrator import params as params_mod
from dragonball.orchestrator.state import AppStore
from dragonball.orchestrator.tasks import TaskCalls, TaskResult

log = logging.getLogger(__name__)

AGENT_WAIT_S = 120.0   # a server that just joined: its agent task is pulled, then starts
AGENT_RETRY_S = 2.0


def may_run(service, node) -> bool:
    """Whether Swarm may place a task of `service` (its spec's placement) on `node`: one of
    `placement.servers` (by hostname, as planning.placement_labels marks them; any when
    empty) carrying every one of `placement.labels`. Slots of a stateful service are on
    servers of that same placement."""
    placement = service.placement
    if placement.servers and node.hostname not in placement.servers:
        return False
    return all(node.labels.get(k) == v for k, v in placement.labels.items())


class ParamCalls:
    """Parameters: the store keeps them, the agents write them on the servers, `tasks`
    delivers them to running tasks; `progress` hears of servers waited for."""

    def __init__(self, store: AppStore, agents, tasks: TaskCalls,
                 progress: Callable[[str, str, str], None] | None = None,
                 clock=time.monotonic, sleep=time.sleep) -> None:
        self.store, self.agents, self.tasks = store, agents, tasks
        self.progress = progress or (lambda *a: None)
        self.clock, self.sleep = clock, sleep

    def publish(self, spec: AppSpec, nodes, only=None) -> list[str]:
        """Write each service's parameters in force on every one of `nodes` (the ready
        servers); return the services whose values in force changed since their tasks
        last got them (`mark_delivered` records that, once they did)."""
        changed = []
        for name, service in spec.members().items():
            if only is not None and name not in only:
                continue
            revision, _ = self.store.params(spec.app, name)
            wanted = self.in_force(spec, name)
            if self.store.published(spec.app, name) != wanted or revision == 0:
                revision = self.store.bump_params(spec.app, name)
                changed.append(name)
            # every time: a server that joined since has no folder yet
            self._write_everywhere(spec.app, name, revision, wanted,
                                   [n for n in nodes if may_run(service, n)])
        return changed

    def take_off(self, spec: AppSpec, nodes, only=None) -> None:
        """Each service's folder off the servers of `nodes` where it may not run (its
        placement changed, or it never could); after the launches, so a task still on its
        old server keeps its values until it is replaced. Best effort: a server that does
        not answer keeps the folder until the next apply."""
        for name, service in spec.members().items():
            if only is not None and name not in only:
                continue
            for node in nodes:
                if may_run(service, node):
                    continue
                try:
                    self.agents.delete_params(node.address, spec.app, name)
                except DragonBallError as e:
                    log.warning("the parameters of %s stay on %s for now: %s", name,
                                node.hostname, e.message)

    def _write_everywhere(self, app: str, name: str, revision: int, values: dict,
                          nodes) -> None:
        """Through each server's agent; an agent that does not answer yet (a server that
        just joined: its agent task is still being pulled) is asked again for up to
        AGENT_WAIT_S."""
        waiting = list(nodes)
        deadline = self.clock() + AGENT_WAIT_S
        while True:
            failures = self._put(waiting, app, name, revision, values)
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

    def _put(self, nodes, app: str, name: str, revision: int, values: dict) -> list:
        """[(node, error)] of the servers whose agent did not take the values."""
        failures = []
        for node in nodes:
            try:
                self.agents.put_params(node.address, app, name, revision, values)
            except DragonBallError as e:
                failures.append((node, e))
        return failures

    def edited(self, spec: AppSpec, name: str, edit) -> dict:
        """`edit(what declares them, current values)`'s values, checked (ParamsInvalid
        otherwise); nothing is stored yet. `name`: a service, a job or SHARED."""
        _, current = self.store.params(spec.app, name)
        return edit(spec.holder(name), current)

    def put(self, spec: AppSpec, name: str, values: dict, nodes) -> list[TaskResult]:
        """Store `values` (checked), write them on `nodes`, deliver them to every running
        task; recorded as delivered when every task took them. When a task refuses them
        (its config_change failed), the values before are put back everywhere (`restore`):
        nothing keeps what a task refused, so no task starts later with it. For SHARED:
        every service and job taking a shared parameter whose values in force change (or
        have not reached all its tasks yet) is written, then told in start order (what is
        needed before what needs it: a database accepts a new password before its clients
        use it); a refusal in any of them tells no later one, and restores them all."""
        current, changed = self.keep(spec, name, values)
        members = self._written(spec, name, nodes)
        results: list[TaskResult] = []
        for told, member in enumerate(members, 1):
            results += self.deliver(spec, member)
            if any(r.refused for r in results):
                self.restore(spec, name, current, changed, nodes, results, members,
                             members[:told])
                return results
        self.mark_delivered(spec, _all_took(members, results))
        return results

    def _written(self, spec: AppSpec, name: str, nodes) -> list[str]:
        """Write the values in force of what `name`'s change reaches on `nodes`: `name`;
        for SHARED, the takers whose values in force changed, in start order."""
        if name != SHARED:
            self.publish(spec, nodes, only=[name])
            return [name]
        takers = self.takers(spec)
        touched = set(self.publish(spec, nodes, only=takers))
        return [m for m in takers if m in touched]

    @staticmethod
    def takers(spec: AppSpec) -> list[str]:
        """The services and jobs taking any shared parameter, in start order (leaves
        first: app.plan.start_order's waves, each in name order)."""
        taking = {member for found in spec.takers().values() for member, _ in found}
        waves = graph.waves(plan_mod.start_order(spec))
        return [name for wave in waves for name in wave if name in taking]

    def keep(self, spec: AppSpec, name: str, values: dict) -> tuple[dict, list[str]]:
        """Store `values` (checked) for `name`, in the audit log by key only (a value may
        be a secret); (the values before, the keys changed)."""
        _, current = self.store.params(spec.app, name)
        self.store.set_params(spec.app, name, values)
        changed = sorted(k for k in set(values) | set(current)
                         if values.get(k) != current.get(k))
        self.store.store.record("app.params", "admin", None,
                                {"app": spec.app, "service": name, "changed": changed})
        return current, changed

    def restore(self, spec: AppSpec, name: str, previous: dict, changed: list, nodes,
                refusals: list[TaskResult], members: list[str] | None = None,
                told: list[str] | None = None) -> list[TaskResult]:
        """The values before a refused change, stored (a newer revision), written on the
        servers of `members` (those `name`'s change was written for; default: `name`) and
        delivered again to every running task of those `told` (default: all of them),
        those that took the new ones too, in the reverse order (clients go back before
        what they need does); recorded in the audit log with who refused. What the tasks
        answered."""
        members = [name] if members is None else members
        told = members if told is None else told
        self.store.set_params(spec.app, name, previous)
        for member in members:
            if member != name:   # a shared value: each taker's folder at a newer revision
                self.store.bump_params(spec.app, member)
        self.store.store.record("app.params_refused", "admin", None, {
            "app": spec.app, "service": name, "changed": changed,
            "refused_by": [r.task for r in refusals if r.refused]})
        self.publish(spec, nodes, only=members)
        back = [r for member in reversed(told) for r in self.deliver(spec, member)]
        self.mark_delivered(spec, _all_took(told, back))   # the others were never told
        if not all(r.ok for r in back):
            log.warning("the previous parameters of %s are back on the servers, but not in "
                        "every task: %s", name,
                        "; ".join(f"{r.task}: {r.detail}" for r in back if not r.ok))
        return back

    def get(self, spec: AppSpec, name: str) -> dict:
        """The parameters in force: value, default, type, secret, set on the portal or not;
        a shared one also `shared` (its name); of SHARED, `used_by` each (service.key)."""
        if name == SHARED:
            return self._get_shared(spec)
        service = spec.members()[name]
        revision, values = self.store.params(spec.app, name)
        _, shared = self.store.params(spec.app, SHARED)
        found = {}
        for key, value in self.in_force(spec, name).items():
            param = service.parameters[key]
            taken = getattr(param, "shared", None)
            found[key] = {"value": value, "default": param.default, "type": param.type,
                          "secret": param.secret,
                          "set": (taken in shared) if taken else key in values}
            if taken:
                found[key]["shared"] = taken
        return {"app": spec.app, "service": name, "revision": revision, "parameters": found}

    def _get_shared(self, spec: AppSpec) -> dict:
        revision, values = self.store.params(spec.app, SHARED)
        takers = spec.takers()
        return {"app": spec.app, "service": SHARED, "revision": revision, "parameters": {
            key: {"value": values.get(key, param.default), "default": param.default,
                  "type": param.type, "secret": param.secret, "set": key in values,
                  "used_by": [f"{member}.{local}" for member, local in takers[key]]}
            for key, param in spec.shared.items()}}

    def in_force(self, spec: AppSpec, name: str) -> dict:
        """What a service's (job's) tasks are handed: its defaults, its values set and, for
        each shared parameter it takes, the app's shared value set."""
        _, values = self.store.params(spec.app, name)
        _, shared = self.store.params(spec.app, SHARED) if spec.shared else (0, {})
        return params_mod.in_force(spec.members()[name], values, shared)

    def deliver(self, spec: AppSpec, name: str) -> list[TaskResult]:
        """config_change with the values in force, in every running task of `name` (a job:
        none, it reads them when it starts)."""
        if name in spec.jobs:
            return []
        return self.tasks.each(spec.app, name, "config_change", self.in_force(spec, name),
                               replace=True)

    def mark_delivered(self, spec: AppSpec, names) -> None:
        for name in names:
            self.store.mark_published(spec.app, name, self.in_force(spec, name))

    def settled(self, spec: AppSpec, name: str) -> int | None:
        """The revision `name`'s parameters will have at its next launch: the current one
        when the values in force were written already, else None (orchestrator.jobs)."""
        revision, _ = self.store.params(spec.app, name)
        return jobs_mod.settled_revision(revision, self.store.published(spec.app, name),
                                         self.in_force(spec, name))


def _all_took(members: list[str], results: list[TaskResult]) -> list[str]:
    """The members every running task of which took the values: recorded as delivered, the
    others are told again at the next change (or apply)."""
    return [m for m in members if all(r.ok for r in results if r.service == m)]
