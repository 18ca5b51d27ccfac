"""The orchestrator: apply an app spec; start, stop, restart a service with its subtree; set
parameters. On the portal server (a Swarm manager), as root (docs/orchestrator.md).

    control = portal.wiring.control(settings)      # Swarm adapter, store, agents, registry
    prepared = control.prepare("notes.app.yaml")   # read, observe once, check, plan (pure)
    print(prepared.plan.to_dict()); control.execute(prepared)   # roll that plan out
    control.stop("notes", "web"); control.start("notes", "web")
    control.set_params("notes", "api", ["greeting=Hi"])   # -> one result per task
    control.set_params("wiki", SHARED, ["db_password=..."])   # every service taking it

Every command runs the same way: observe (orchestrator.observe: one read of the cluster),
plan (orchestrator.planning: pure), execute (orchestrator.execute). Nothing is changed
before the spec is valid against what the cluster holds: its images in the portal
registry, its servers and labels among the Swarm's nodes. A spec's one-shot jobs
(orchestrator.jobs) are planned with the store's record of their last runs; their
parameters and logs are reached by their names as a service's are.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Callable

from dragonball.app import plan as plan_mod
from dragonball.app import spec as app_spec
from dragonball.app.errors import UnknownService
from dragonball.app.model import SHARED, AppSpec
from dragonball.app.errors import AppNotApplied, no_such_app
from dragonball.errors import DragonBallError, InvalidInput
from dragonball.orchestrator import address as address_mod
from dragonball.orchestrator import images as images_mod
from dragonball.orchestrator import params as params_mod
from dragonball.orchestrator import moving, planning, removing, slotting, status as status_mod
from dragonball.orchestrator import volumes as volumes_mod
from dragonball.orchestrator.execute import Executor
from dragonball.orchestrator.observe import Observation, Observer, names_in, split_image
from dragonball.orchestrator.param_calls import ParamCalls
from dragonball.orchestrator.state import AppStore
from dragonball.orchestrator.tasks import TaskCalls, TaskResult

__all__ = ["AppNotApplied", "Control", "Prepared", "TaskResult", "split_image"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """A spec read and checked, the cluster it was checked against, and its plan: what
    `execute` carries out (nothing is looked up again before it starts)."""

    spec: AppSpec
    text: str
    file: str
    observation: Observation
    deployment: planning.Deployment

    @property
    def plan(self) -> plan_mod.Plan:
        """The plan people see: start, change, keep, stop in waves."""
        return self.deployment.shown


class Control:
    """The application layer's commands, composed of an observer (the Swarm adapter and
    the registry), the tasks (adapter and agents), the parameters (store, agents, tasks)
    and an executor for each command."""

    def __init__(self, engine, store: AppStore, agents, registry, registry_address: str,
                 progress: Callable[[str, str, str], None] | None = None,
                 wait_s: float = 300.0, clock=time.monotonic, sleep=time.sleep) -> None:
        """`engine`: the Swarm adapter (dragonball.swarm.Swarm); `progress(service, state,
        detail)` may be replaced before a command (a portal job sets its own)."""
        self.engine, self.store, self.agents, self.registry = engine, store, agents, registry
        self.registry_address = registry_address
        self.progress = progress or (lambda *a: None)
        self.wait_s, self.clock, self.sleep = wait_s, clock, sleep
        self.observer = Observer(engine, registry, registry_address)
        self.tasks = TaskCalls(engine, agents)
        self.params = ParamCalls(store, agents, self.tasks, self._report, clock, sleep)

    def _report(self, service: str, state: str, detail: str) -> None:
        self.progress(service, state, detail)

    def executor(self) -> Executor:
        supply = images_mod.ImageSupply(self.agents, self.registry.pull_auth(), self._report,
                                        clock=self.clock, sleep=self.sleep)
        return Executor(self.engine, self.params, self.tasks, self._report,
                        wait_s=self.wait_s, clock=self.clock, sleep=self.sleep, supply=supply,
                        store=self.store)

    # -- observe and plan -------------------------------------------------------------------
    def prepare(self, path: str) -> Prepared:
        """`prepare_text` of the file at `path`; AppSpecInvalid names an unreadable one (or
        one over the size limit, read no further than it)."""
        return self.prepare_text(app_spec.read_text(path), path)

    def prepare_text(self, text: str, file: str) -> Prepared:
        """Observe once, check the spec against it (AppSpecInvalid: every problem at
        once), plan purely."""
        spec, observation = self._checked(text, file)
        return Prepared(spec, text, file, observation, planning.deploy(spec, observation))

    def _checked(self, text: str, file: str) -> tuple[AppSpec, Observation]:
        named = names_in(text)
        if named is None:  # not even YAML with services: say so, look nothing up
            app_spec.load(text, file)
        app, images = named or ("", [])
        observation = self._remembering(self.observer.observe(app, images))
        spec = app_spec.load(text, file, observation.checks())
        return spec, self._with_runs(spec, observation)

    def _with_runs(self, spec: AppSpec, observation: Observation) -> Observation:
        """The observation with each job's last run as the store records it, and the
        revision its parameters will run with (orchestrator.jobs)."""
        if not spec.jobs:
            return observation
        return dataclasses.replace(observation, runs=self.store.job_runs(spec.app),
                                   job_params={name: self.params.settled(spec, name)
                                               for name in spec.jobs})

    def _remembering(self, observation: Observation) -> Observation:
        """The observation with the slots' servers as the store records them."""
        if not observation.app:
            return observation
        return dataclasses.replace(observation, remembered=self.store.pins(observation.app))

    # -- execute ------------------------------------------------------------------------------
    def execute(self, prepared: Prepared) -> plan_mod.Plan:
        """Roll out what `prepare` planned: the spec kept, labels, stops, launches."""
        spec, the_plan = prepared.spec, prepared.plan
        self.store.save_app(spec.app, prepared.file, prepared.text)
        self.store.store.record("app.apply", "admin", None, {
            "app": spec.app, "file": prepared.file,
            "summary": {a: the_plan.count(a) for a in plan_mod.ACTIONS}})
        self.store.set_pins(spec.app, prepared.deployment.pins)
        self.executor().run(spec, prepared.deployment, prepared.observation.ready_nodes())
        return the_plan

    def apply(self, path: str, dry_run: bool = False) -> plan_mod.Plan:
        """Prepare, then (unless `dry_run`) execute; the plan."""
        prepared = self.prepare(path)
        return prepared.plan if dry_run else self.execute(prepared)

    # -- start, stop, restart one service with its subtree ----------------------------------
    def applied_text(self, app: str) -> tuple[str, str]:
        """(file, text) of the spec last applied; AppNotApplied when there is none."""
        found = self.store.app(app)
        if found is None:
            raise no_such_app(app, self.store.apps(),
                              "apply its spec first: dragonball apply SPEC (parameters, "
                              "secrets too, may be set before: dragonball params set "
                              "NAME KEY=VALUE --spec SPEC)")
        return found

    def spec_of(self, app: str) -> AppSpec:
        """The spec last applied, without looking anything up (status, notifications)."""
        file, text = self.applied_text(app)
        return app_spec.load(text, file)

    def start(self, app: str, name: str, force: bool = False) -> list[str]:
        """Start `name` and what it needs, leaves first; the names, as they became healthy."""
        file, text = self.applied_text(app)
        spec, observation = self._checked(text, file)
        deployment = planning.start(spec, observation, name, force)
        self.store.set_pins(app, deployment.pins)
        return self.executor().run(spec, deployment, observation.ready_nodes())

    def stop(self, app: str, name: str) -> tuple[list[str], tuple]:
        """Stop `name` and what only it needs, roots first; (stopped, notes)."""
        deployment = planning.stop(self.spec_of(app), name)
        return self.executor().stop(deployment), deployment.shown.notes

    def restart(self, app: str, name: str) -> list[str]:
        self.stop(app, name)
        return self.start(app, name)

    def refresh_addresses(self, app: str) -> list[str]:
        """The app's moving addresses brought to the servers and managers there are now (a
        server that joined later, a manager promoted or gone: keepalived's peers and the
        quorum it asks): only the keepalived services whose definition changed are
        updated (one task at a time, orchestrator.address), the app's own services are
        left alone; the Services whose address was updated."""
        spec = self.spec_of(app)
        if not any(s.address for s in spec.services.values()):
            return []
        observation = self._remembering(self.observer.observe(app, [address_mod.IMAGE]))
        stale = [step for step in address_mod.plan(spec, observation) if step.op == "update"]
        self.executor().address_steps(stale, ("update",))
        return [step.service for step in stale]

    # -- what runs ---------------------------------------------------------------------------
    def status(self, app: str) -> list[dict]:
        """One row per unit (a service, or a slot of one with storage), leaves first
        (orchestrator.status)."""
        observation = self.observer.observe(app, tasks=True)
        return status_mod.rows(self.units_of(app, observation.nodes), observation)

    def check_move(self, app: str, slot: str, server: str,
                   data_lost: bool = False) -> moving.Move:
        """The move of `slot` (`store.2`) to `server`, checked whole (orchestrator.moving:
        the slot, the servers, the room): a refusal changes nothing. `data_lost`: its
        server is gone for good; the slot starts empty on `server`."""
        spec = self.spec_of(app)
        target = moving.parse_slot(slot, spec)
        nodes = self.engine.nodes()
        move = moving.plan_move(spec, self.units_of(app, nodes), nodes, target, server,
                                data_lost)
        if not move.data_lost:
            moving.Mover(self).room(move)
        return move

    def move(self, app: str, slot: str, server: str, data_lost: bool = False) -> dict:
        """`dragonball move SERVICE.SLOT --to SERVER [--data-lost]`: checked, then stop,
        copy, re-pin, start; {app, slot, from, to, volumes: [{name, size, sha256,
        seconds}], kept, data_lost}."""
        move = self.check_move(app, slot, server, data_lost)
        self.store.store.record("app.move", "admin", None, {
            "app": app, "slot": move.slot, "from": move.source, "to": move.target,
            "data_lost": move.data_lost})
        return moving.Mover(self).run(move)

    def remove_app(self, app: str, purge_data: bool = False) -> dict:
        """`dragonball remove APP`: its services, network, parameter folders, labels and
        record gone, its volumes too only with `purge_data` (else kept and listed;
        orchestrator/removing.py); what went and what stayed. AppNotApplied when the
        portal has no such app."""
        services = sorted(self.spec_of(app).members())   # parameter folders: jobs' too
        return removing.AppRemoval(self.engine, self.store, self.agents, clock=self.clock,
                                   sleep=self.sleep).run(app, services, purge_data)

    def volumes(self, sizes: bool = True) -> list[dict]:
        """Every application volume on every ready server, with the slot owning it or why
        none does (orchestrator.volumes); a server whose agent does not answer says so."""
        nodes = self.engine.nodes()
        units = {app: self.units_of(app, nodes) for app in self.store.apps()}
        reports = {}
        for node in nodes:
            if not node.ready:
                reports[node.hostname] = "the server is down: its volumes cannot be listed"
                continue
            try:
                reports[node.hostname] = self.agents.volumes(node.address, sizes=sizes)
            except DragonBallError as e:
                reports[node.hostname] = e.message
        return volumes_mod.rows(reports, units)

    def image_holdings(self) -> list[dict]:
        """Per server, which images of the applied apps' services it holds (by the image ID
        their tasks run) and which it lacks (orchestrator.images.holdings); a server whose
        agent does not answer says so. Read from Swarm and the agents: no registry."""
        nodes = self.engine.nodes()
        images = set()
        for app in self.store.apps():
            for state in self.observer.services(app).values():
                images.add(images_mod.running_image(state))
        reports = {}
        for node in nodes:
            if node.ready:
                try:
                    reports[node.hostname] = self.agents.images(node.address)
                except DragonBallError as e:
                    reports[node.hostname] = e.message
        return images_mod.holdings(images, nodes, reports)

    def remove_volume(self, server: str, name: str) -> dict:
        """Remove an app volume that no slot owns (the admin's explicit act): refused for a
        slot's own data, an unknown or down server, a volume in use (AgentError 409)."""
        nodes = {n.hostname: n for n in self.engine.nodes()}
        node = nodes.get(server)
        if node is None:
            raise moving.MoveTargetUnknown(f"no server {server!r} in the cluster",
                                           f"name one of: {', '.join(sorted(nodes))}")
        if not node.ready:
            raise moving.MoveTargetDown(f"{server} is down", "bring it back first")
        units = {app: self.units_of(app, nodes.values()) for app in self.store.apps()}
        found = [v for v in self.agents.volumes(node.address) if v.get("name") == name]
        if not found:
            raise volumes_mod.VolumeUnknown(f"no app volume {name!r} on {server}",
                                            "dragonball volumes lists them")
        owner, _ = volumes_mod.owner(server, found[0], units)
        if owner:
            raise moving.MoveConflict(f"{name} on {server} is {owner}'s data: it is not "
                                      "removed", f"move {owner} first if it must go")
        self.store.store.record("app.volume.remove", "admin", None,
                                {"server": server, "volume": name})
        return self.agents.delete_volume(node.address, name)

    def units_of(self, app: str, nodes=None) -> slotting.Units:
        """The applied spec as units, each slot's server as recorded (the node labels, and
        the store for a node gone from the Swarm); `nodes`: as read already, else read."""
        return slotting.expand(self.spec_of(app), self.engine.nodes() if nodes is None
                               else nodes, place_new=False, remembered=self.store.pins(app))

    def notifications(self, app: str, limit: int = 50) -> list[dict]:
        """The app's latest notifications, newest first (`dragonball notifications --json`)."""
        self.spec_of(app)  # AppNotApplied for an unknown app
        return [{"seq": r["seq"], "to": r["receiver"], "payload": r["payload"],
                 "created": r["created"], "delivered": r["delivered"],
                 "attempts": r["attempts"], "last_error": r["last_error"]}
                for r in self.store.notifications(app, limit)]

    def logs(self, app: str, name: str, tail: int = 200) -> list[dict]:
        """The last `tail` log lines of each running task of a service (of a job: its last
        run's task, ended or not), through the agents: [{"task", "server", "lines",
        "error"}] (`error`: why a task's log could not be read)."""
        if name in self._service(app, name).jobs:
            return self.tasks.job_logs(app, name, tail)
        return self.tasks.logs(app, name, tail)

    def each_task(self, app: str, name: str, action: str, body: dict,
                  replace: bool = False) -> list[TaskResult]:
        """`action` in every running task of the service (the notifications' delivery)."""
        return self.tasks.each(app, name, action, body, replace)

    # -- parameters --------------------------------------------------------------------------
    def get_params(self, app: str, name: str) -> dict:
        return self.params.get(self._service(app, name, shared=True), name)

    def set_params(self, app: str, name: str, assignments: list[str],
                   unset: list[str] = ()) -> list[TaskResult]:
        """KEY=VALUE assignments, typed by the spec (ParamsInvalid: nothing stored)."""
        return self._edit_params(app, name, lambda service, current: params_mod.edit(
            name, service, current, assignments, unset))

    def set_param_values(self, app: str, name: str, values: dict, unset=(),
                         spec: tuple[str, str] | None = None) -> list[TaskResult]:
        """`set_params` with JSON-typed values ({key: value}), checked against the spec's
        parameter types (params.check_value); ParamsInvalid lists every problem. `spec`
        ((text, file) of the spec it will be applied with) lets them be set for an app
        not applied yet (`keep_before_apply`)."""
        return self._edit_params(app, name, lambda service, current: params_mod.edit_values(
            name, service, current, values, unset), spec)

    def _edit_params(self, app: str, name: str, edit,
                     spec_given: tuple[str, str] | None = None) -> list[TaskResult]:
        """Check the edited values, then store them, write them on every ready server and
        deliver them to every running task."""
        if spec_given is not None and self.store.app(app) is None:
            return self.keep_before_apply(app, name, edit, *spec_given)
        spec = self._service(app, name, shared=True)
        values = self.params.edited(spec, name, edit)
        ready = [n for n in self.engine.nodes() if n.ready]
        return self.params.put(spec, name, values, ready)

    def keep_before_apply(self, app: str, name: str, edit, text: str,
                          file: str) -> list[TaskResult]:
        """Parameters of an app not applied yet (a secret before the first start), checked
        against the spec it will be applied with, kept on the portal: the first apply
        writes them on the servers and its tasks start with them. No task to tell: []."""
        spec = app_spec.load(text, file)
        if spec.app != app:
            raise InvalidInput(f"{file} is the spec of app {spec.app!r}, not {app!r}",
                               f"give --app {spec.app} or that app's spec")
        self.params.keep(spec, name, self.params.edited(spec, _known(spec, name, True), edit))
        return []

    def _service(self, app: str, name: str, shared: bool = False) -> AppSpec:
        """The applied spec of `app`, which has a service or a job `name` (with `shared`:
        or `name` is SHARED, its shared parameters); UnknownService otherwise."""
        spec = self.spec_of(app)
        _known(spec, name, shared)
        return spec


def _known(spec: AppSpec, name: str, shared: bool) -> str:
    """`name`, a service or a job of `spec` (with `shared`: or SHARED, its shared
    parameters, maybe none); UnknownService otherwise."""
    if not (shared and name == SHARED) and name not in spec.members():
        raise UnknownService(name, spec.members())
    return name
