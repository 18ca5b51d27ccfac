"""The orchestrator: apply an app spec; start, stop, restart a service with its subtree; set
parameters. On the portal server (a Swarm manager), as root (docs/orchestrator.md).

    control = portal.wiring.control(settings)      # engine, store, agents, registry
    control.apply("notes.app.yaml")                # validate, plan, roll out, deliver
    control.stop("notes", "web"); control.start("notes", "web")
    control.set_params("notes", "api", ["greeting=Hi"])   # -> one result per task

Nothing is changed before the spec is valid against what the cluster holds: its images in
the portal registry, its servers and labels among the Swarm's nodes.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable

import yaml

from dragonball.app import graph, plan as plan_mod
from dragonball.app import spec as app_spec
from dragonball.app.checks import normal_image
from dragonball.app.model import AppSpec, Observed
from dragonball.errors import DragonBallError
from dragonball.orchestrator import naming, specs
from dragonball.orchestrator.param_calls import ParamCalls
from dragonball.orchestrator.rollout import Launch, Rollout
from dragonball.orchestrator.state import AppStore
from dragonball.orchestrator.tasks import TaskCalls, TaskResult

__all__ = ["AppNotApplied", "Control", "TaskResult", "split_image"]

log = logging.getLogger(__name__)
IMAGE_LABEL = f"{naming.PREFIX}.image"


class AppNotApplied(DragonBallError):
    """A command names an app the portal has no spec of."""


def split_image(ref: str) -> tuple[str, str]:
    """'notes/api:0.1.0' -> ('notes/api', '0.1.0')."""
    ref = normal_image(ref)
    repository, _, tag = ref.rpartition(":")
    return repository, tag


class Control(ParamCalls, TaskCalls):
    """The application layer's commands over an engine, the store, the agents, a registry."""

    def __init__(self, engine, store: AppStore, agents, registry, registry_address: str,
                 progress: Callable[[str, str, str], None] | None = None,
                 wait_s: float = 300.0, clock=time.monotonic, sleep=time.sleep) -> None:
        self.engine, self.store, self.agents, self.registry = engine, store, agents, registry
        self.clock, self.sleep = clock, sleep
        self.registry_address = registry_address
        self.progress = progress or (lambda *a: None)
        self.wait_s = wait_s

    # -- what the cluster holds -----------------------------------------------------------
    def observe(self, spec_images) -> tuple[Observed, dict]:
        """(Observed for validation, spec image -> pinned reference) of what exists now."""
        nodes = self.engine.nodes()
        pinned = {}
        for image in sorted(set(spec_images)):
            repository, tag = split_image(image)
            digest = self.registry.tag_digest(repository, tag)
            if digest:
                pinned[image] = f"{self.registry_address}/{repository}@{digest}"
        observed = Observed(images=frozenset(pinned), servers=frozenset(n.hostname for n in nodes),
                            labels={n.hostname: n.labels for n in nodes})
        return observed, pinned

    def load(self, path: str) -> tuple[AppSpec, str, dict]:
        """(the spec, its text, pinned images) after every check; AppSpecInvalid otherwise."""
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError):
            app_spec.load_file(path)  # raises AppSpecInvalid naming the file
            raise
        return self.load_text(text, path)

    def load_text(self, text: str, path: str) -> tuple[AppSpec, str, dict]:
        images = _images_named(text)
        if images is None:  # not even YAML with services: say so, look nothing up
            app_spec.load(text, path)
        observed, pinned = self.observe(images)
        return app_spec.load(text, path, observed), text, pinned  # every problem at once

    def running(self, app: str) -> dict:
        """spec name -> plan.Running of the app's services on Swarm."""
        found = {}
        for data in self.engine.services(app).values():
            labels = data["Spec"].get("Labels", {})
            name = labels.get(naming.SERVICE_LABEL)
            if not name:
                continue
            needs = tuple(n for n in labels.get(naming.NEEDS_LABEL, "").split(",") if n)
            replicas = data["Spec"].get("Mode", {}).get("Replicated", {}).get("Replicas")
            found[name] = plan_mod.Running(labels.get(IMAGE_LABEL, ""), None, replicas, needs)
        return found

    def plan(self, spec: AppSpec, pinned: dict) -> plan_mod.Plan:
        """The plan, with "change" also for a service whose definition changed (ports,
        resources, placement, a new image digest under the same tag...)."""
        current = self.engine.services(spec.app)
        result = plan_mod.plan(spec, self.running(spec.app))
        waves = []
        for wave in result.start_waves:
            steps = []
            for step in wave:
                data = current.get(naming.swarm_service(spec.app, step.service))
                if step.action == "keep" and data is not None:
                    wanted = self.swarm_spec(spec, step.service, pinned)
                    if _hash(data) != wanted["Labels"][naming.SPEC_LABEL]:
                        step = dataclasses.replace(step, action="change",
                                                   reasons=("service definition",))
                steps.append(step)
            waves.append(tuple(steps))
        return dataclasses.replace(result, start_waves=tuple(waves))

    def swarm_spec(self, spec: AppSpec, name: str, pinned: dict,
                   replicas: int | None = None) -> dict:
        service = spec.services[name]
        result = specs.service_spec(spec.app, name, service, pinned[service.image], replicas)
        result["Labels"][IMAGE_LABEL] = service.image
        return result

    # -- apply ---------------------------------------------------------------------------
    def apply(self, path: str, dry_run: bool = False) -> plan_mod.Plan:
        spec, text, pinned = self.load(path)
        return self.apply_loaded(spec, text, pinned, path, dry_run)

    def apply_loaded(self, spec: AppSpec, text: str, pinned: dict, path: str,
                     dry_run: bool = False) -> plan_mod.Plan:
        """`apply` of what `load_text` gave (the portal's API checks a spec text first)."""
        the_plan = self.plan(spec, pinned)
        if dry_run:
            return the_plan
        self.store.save_app(spec.app, path, text)
        self.store.store.record("app.apply", "admin", None,
                                {"app": spec.app, "file": path,
                                 "summary": {a: the_plan.count(a) for a in plan_mod.ACTIONS}})
        changed_params = self.publish_params(spec)
        self.engine.ensure_network(specs.network_spec(spec.app))
        self.place(spec)
        running = self.running(spec.app)
        gone = {s.service: (naming.swarm_service(spec.app, s.service), running[s.service].needs)
                for wave in the_plan.stop_waves for s in wave}
        if gone:
            self.rollout().stop(gone, remove=True)
        names = [s.service for wave in the_plan.start_waves for s in wave]
        self._roll(spec, [self._launch(spec, name, pinned) for name in names], changed_params)
        return the_plan

    def _roll(self, spec: AppSpec, launches: list, changed_params: list) -> list[str]:
        """Start `launches`; then the tasks kept (not replaced) of services whose
        parameters changed get them through config_change (new tasks read the file). A task
        that refuses them is named (exit 1); its service is tried again at the next run."""
        started = self.rollout().start(launches)
        refused = []
        for launch in launches:
            if launch.name in changed_params and launch.keeps_tasks:
                refused += [r for r in self.deliver_params(spec, launch.name) if not r.ok]
        self.mark_delivered(spec, [launch.name for launch in launches
                                   if launch.name not in {r.service for r in refused}])
        if refused:
            raise DragonBallError(
                "new parameters were refused by " + "; ".join(
                    f"{r.task} on {r.server}: {r.detail}" for r in refused),
                "the services are running; fix the values (dragonball params set) or the "
                "module, then run the command again")
        return started

    def _launch(self, spec: AppSpec, name: str, pinned: dict, force: bool = False) -> Launch:
        """How `name` comes up: created, updated when its definition changed (or `force`:
        new tasks all the same), else scaled to its replicas (nothing when they match)."""
        swarm_name = naming.swarm_service(spec.app, name)
        wanted = self.swarm_spec(spec, name, pinned)
        service = spec.services[name]
        current = self.engine.service(swarm_name)
        redefined = current is not None and _hash(current) != wanted["Labels"][naming.SPEC_LABEL]

        def act():
            now = self.engine.service(swarm_name)
            if now is None:
                self.engine.create(wanted)
            elif force or _hash(now) != wanted["Labels"][naming.SPEC_LABEL]:
                self.engine.update(now, wanted, force=force)
            else:
                self.engine.scale(swarm_name, service.replicas)
        return Launch(name, swarm_name, tuple(service.needs()), service.replicas, act,
                      fresh_only=force or redefined,
                      keeps_tasks=current is not None and not (force or redefined))

    def rollout(self) -> Rollout:
        return Rollout(self.engine, self.progress, self.explain, wait_s=self.wait_s)

    def place(self, spec: AppSpec) -> None:
        """Label the servers each service's `placement.servers` lists (and only them)."""
        nodes = self.engine.nodes()
        for name, service in spec.services.items():
            key = naming.placement_label(spec.app, name)
            wanted = set(service.placement.servers)
            for node in nodes:
                self.engine.set_node_label(node.id, key,
                                           "true" if node.hostname in wanted else None)

    # -- start, stop, restart one service with its subtree ----------------------------------
    def applied(self, app: str) -> tuple[AppSpec, dict]:
        found = self.store.app(app)
        if found is None:
            known = ", ".join(self.store.apps()) or "none yet"
            raise AppNotApplied(f"the portal has no app {app!r} (applied: {known})",
                                "apply its spec first: dragonball apply SPEC")
        file, text = found
        spec, _, pinned = self.load_text(text, file)
        return spec, pinned

    def spec_of(self, app: str) -> AppSpec:
        """The spec last applied, without looking anything up (status, notifications)."""
        found = self.store.app(app)
        if found is None:
            return self.applied(app)[0]  # raises AppNotApplied
        return app_spec.load(found[1], found[0])

    def start(self, app: str, name: str, force: bool = False) -> list[str]:
        spec, pinned = self.applied(app)
        start_plan = plan_mod.start_plan(spec, name)
        names = [s.service for wave in start_plan.start_waves for s in wave]
        changed = self.publish_params(spec, only=names)
        self.engine.ensure_network(specs.network_spec(spec.app))
        return self._roll(spec, [self._launch(spec, n, pinned, force=force and n == name)
                                 for n in names], changed)

    def stop(self, app: str, name: str) -> tuple[list[str], tuple]:
        """Stop `name` and what only it needs, roots first; (stopped, notes)."""
        spec = self.spec_of(app)
        stop_plan = plan_mod.stop_plan(spec, name)
        names = [s.service for wave in stop_plan.stop_waves for s in wave]
        services = {n: (naming.swarm_service(app, n), tuple(spec.services[n].needs()))
                    for n in names}
        return self.rollout().stop(services), stop_plan.notes

    def restart(self, app: str, name: str) -> list[str]:
        self.stop(app, name)
        return self.start(app, name)

    # -- status ----------------------------------------------------------------------------
    def status(self, app: str) -> list[dict]:
        spec = self.spec_of(app)
        nodes = {n.id: n.hostname for n in self.engine.nodes()}
        order = [n for wave in graph.waves(plan_mod.dependencies(spec)) for n in wave]
        rows = []
        for name in order:
            service = spec.services[name]
            data = self.engine.service(naming.swarm_service(app, name))
            desired = (data["Spec"].get("Mode", {}).get("Replicated", {}).get("Replicas", 0)
                       if data else 0)
            tasks = self.engine.tasks(naming.swarm_service(app, name)) if data else []
            up = [t for t in tasks if t.get("DesiredState") == "running"]
            healthy = [t for t in up if t["Status"]["State"] == "running"]
            rows.append({"service": name, "kind": service.kind, "image": service.image,
                         "needs": service.needs(), "deployed": data is not None,
                         "desired": desired, "healthy": len(healthy),
                         "state": _state(data is not None, desired, len(healthy)),
                         "tasks": [{"slot": t.get("Slot"), "server": nodes.get(t.get("NodeID"), ""),
                                    "state": t["Status"]["State"]} for t in up]})
        return rows

    def notifications(self, app: str, limit: int = 50) -> list[dict]:
        """The app's latest notifications, newest first (`dragonball notifications --json`)."""
        self.spec_of(app)  # AppNotApplied for an unknown app
        return [{"seq": r["seq"], "to": r["receiver"], "payload": r["payload"],
                 "created": r["created"], "delivered": r["delivered"],
                 "attempts": r["attempts"], "last_error": r["last_error"]}
                for r in self.store.notifications(app, limit)]


def _images_named(text: str) -> list[str] | None:
    """The image references a spec's text names (to look them up before the checks run),
    or None when it is not a mapping of services."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    services = data.get("services") if isinstance(data, dict) else None
    if not isinstance(services, dict):
        return None
    return [s["image"] for s in services.values()
            if isinstance(s, dict) and isinstance(s.get("image"), str)]


def _hash(service: dict) -> str | None:
    """The spec hash a Swarm service was made from (its label)."""
    return service["Spec"].get("Labels", {}).get(naming.SPEC_LABEL)


def _state(deployed: bool, desired: int, healthy: int) -> str:
    if not deployed:
        return "absent"
    if desired == 0:
        return "stopped"
    return "healthy" if healthy >= desired else ("degraded" if healthy else "down")


