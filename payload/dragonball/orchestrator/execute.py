"""Execute: carry out a Deployment (orchestrator.planning) on the cluster.

In order: the images (every ready server holds each one the launches run, or nothing is
done: orchestrator.images), the node labels, the stops (roots first, removed when the
deployment says so), the launches (leaves first, each once what it needs is healthy:
`Rollout`), then the parameters of kept tasks (config_change). The plan decided what; this
only does it, and looks at the cluster only to follow the rollout's health.

One-shot jobs are launched in that order too (`run`: its service made; `rerun`: its last
run's service removed, then made again; `skip`: nothing). Each job's end is recorded at
once in the store (`job_runs`: the parts it ran, done or failed, orchestrator.jobs) and
in the audit log (`app.job_done`, `app.job_failed` with its server and the last lines of
its log), so a later service's failure does not make a job that succeeded run again.
"""

from __future__ import annotations

import time
from typing import Callable

from dragonball.app.model import AppSpec
from dragonball.orchestrator import jobs as jobs_mod
from dragonball.orchestrator.images import ImageSupply
from dragonball.orchestrator.param_calls import ParamCalls
from dragonball.orchestrator.params import ParamsRefused
from dragonball.orchestrator.planning import Deployment, LaunchStep
from dragonball.orchestrator.rollout import Launch, Rollout
from dragonball.orchestrator.tasks import TaskCalls

#: The characters of a failed job's log kept in the audit log (the last ones).
OUTPUT_KEPT = 4000


class Executor:
    """Applies deployments through the Swarm adapter, the parameters and the tasks."""

    def __init__(self, swarm, params: ParamCalls, tasks: TaskCalls,
                 progress: Callable[[str, str, str], None], wait_s: float = 300.0,
                 clock=time.monotonic, sleep=time.sleep,
                 supply: ImageSupply | None = None, store=None) -> None:
        """`supply`: how servers get images (None: they are not checked); `store` (an
        AppStore): where jobs' runs are recorded (None: the parameters' store)."""
        self.swarm, self.params, self.tasks, self.supply = swarm, params, tasks, supply
        self.store = store if store is not None else params.store
        self.progress, self.wait_s = progress, wait_s
        self.clock, self.sleep = clock, sleep

    def rollout(self) -> Rollout:
        return Rollout(self.swarm, self.progress, self.tasks.explain, wait_s=self.wait_s,
                       clock=self.clock, sleep=self.sleep)

    def run(self, spec: AppSpec, deployment: Deployment, nodes) -> list[str]:
        """Everything the deployment says; `nodes`: the ready servers, which get the
        parameters first. The names of the services launched, as they became healthy."""
        if self.supply is not None:
            self.supply.ensure(deployment.images, nodes)
        changed = self.params.publish(spec, nodes, only=deployment.launched())
        if deployment.network:
            self.swarm.ensure_network(dict(deployment.network))
        for change in deployment.labels:
            self.swarm.update_node(change.node_id, labels={change.key: change.value})
        self.addresses(deployment, ("remove",))   # an address off its server before it stops
        self.stop(deployment)
        for swarm_name in deployment.jobs_gone:
            self.swarm.remove_service(swarm_name)
        started = self.launch(spec, deployment.launches, changed)
        self.addresses(deployment, ("create", "update"))
        self.params.take_off(spec, nodes, only=deployment.launched())
        return started

    def addresses(self, deployment: Deployment, ops: tuple) -> None:
        """The moving addresses' steps of kinds `ops` (orchestrator.address): after the
        launches, so the Service answers where its address may go."""
        self.address_steps(deployment.addresses, ops)

    def address_steps(self, steps, ops: tuple) -> None:
        for step in steps:
            if step.op not in ops:
                continue
            self.progress(step.service, step.op, f"address {step.address}")
            if step.op == "create":
                self.swarm.create_service(dict(step.spec))
            elif step.op == "update":
                self.swarm.update_service(step.swarm_name, dict(step.spec))
            else:
                self.swarm.remove_service(step.swarm_name)

    def stop(self, deployment: Deployment) -> list[str]:
        """The deployment's stops, roots first; the names stopped."""
        if not deployment.stops:
            return []
        services = {s.service: (s.swarm_name, s.needs) for s in deployment.stops}
        return self.rollout().stop(services, remove=deployment.remove)

    def launch(self, spec: AppSpec, steps, changed_params: list) -> list[str]:
        """Start `steps`; then the tasks kept (not replaced) of services whose parameters
        changed get them through config_change (new tasks read the file). A task that
        refuses them is named; its service is tried again at the next run."""
        started = self.rollout().start([self._launch(spec, step) for step in steps])
        refused, kept = [], {}
        for step in steps:   # by the spec's names: one delivery for all slots of a service
            base = step.params_of or step.service
            kept[base] = kept.get(base, False) or step.keeps_tasks
        for base, keeps in kept.items():
            if base in changed_params and keeps:
                refused += [r for r in self.params.deliver(spec, base) if not r.ok]
        self.params.mark_delivered(spec, [b for b in kept
                                          if b not in {r.service for r in refused}])
        if refused:
            raise ParamsRefused(
                "new parameters were refused by " + "; ".join(
                    f"{r.task} on {r.server}: {r.detail}" for r in refused),
                "the services are running; fix the values (dragonball params set) or the "
                "module, then run the command again")
        return started

    def _launch(self, spec: AppSpec, step: LaunchStep) -> Launch:
        """The rollout's Launch of a step: its `act` asks the engine what the plan said."""
        if step.job:
            return self._job_launch(spec, step)

        def act():
            if step.op == "create":
                self.swarm.create_service(dict(step.spec))
            elif step.op == "update":
                self.swarm.update_service(step.swarm_name, dict(step.spec), force=step.force)
            else:
                self.swarm.scale(step.swarm_name, step.replicas)
        return Launch(step.service, step.swarm_name, step.needs, step.replicas, act,
                      fresh_only=step.fresh_only, keeps_tasks=step.keeps_tasks,
                      waits_for=step.waits_for)

    def _job_launch(self, spec: AppSpec, step: LaunchStep) -> Launch:
        """A job's Launch: skipped, or its service made (after the last run's is removed)."""
        def act():
            if step.op == "rerun":
                self.swarm.remove_service(step.swarm_name)
            self.swarm.create_service(dict(step.spec))

        def ended(outcome: str, detail: str, server: str, output: str) -> None:
            self.job_ended(spec, step, outcome, detail, server, output)
        return Launch(step.service, step.swarm_name, step.needs, step.replicas, act,
                      timeout=step.timeout, ended=ended,
                      skip="; ".join(step.reasons) if step.op == "skip" else "")

    def job_ended(self, spec: AppSpec, step: LaunchStep, outcome: str, detail: str,
                  server: str = "", output: str = "") -> None:
        """Record a job's run: the parts it ran (its parameters' revision as written for
        it), done or failed; in the audit log with, when it failed, its server and the last
        lines of its log. A run that succeeded had its parameters: they count as
        delivered."""
        if outcome == "done":
            self.params.mark_delivered(spec, [step.service])
        parts = dict(step.parts, parameters=self.store.params(spec.app, step.service)[0])
        self.store.record_job_run(spec.app, step.service, parts, outcome)
        event = {"app": spec.app, "job": step.service, "digest": jobs_mod.digest(parts),
                 "detail": detail}
        if outcome != "done":
            event |= {"server": server, "output": output[-OUTPUT_KEPT:]}
        self.store.store.record(f"app.job_{outcome}", "admin", None, event)
