"""Plans: what would start, change or stop, in which waves. Pure: the world comes in as data.

`plan(spec, running)` compares the spec with what runs. Start waves go leaves first
(a service starts only after the wave of everything it needs); services running
but gone from the spec stop roots first (the reverse). An executor runs the stop
waves, then the start waves, each wave waiting for the health of the one before.

Jobs (one-shot tasks: init, migrate) are nodes of the start waves like services: a job
runs once what it `depends_on` is healthy (or done), and what depends on it starts once
it is done. Its step is `run` or `skip`, as `jobs` (job -> (action, reasons)) says: that
decision needs the cluster's record of its last run (orchestrator.jobs makes it); without
one, a job is shown to run. A job never stops: it is no part of a stop plan, whose
subtree goes through it to what it depends on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from dragonball.app import graph, shared_checks
from dragonball.app.errors import UnknownService
from dragonball.app.model import AppSpec, ServiceSpec

SCHEMA = 1
ACTIONS = ("start", "change", "keep", "stop", "run", "skip")
#: Why a job runs when nothing says whether it ran (a plan without the cluster).
UNKNOWN_RUN = ("no successful run of this definition is known",)


@dataclass(frozen=True)
class Running:
    """One service as it runs now (from Swarm, in the executor; from a file in tests)."""

    image: str
    parameters: dict | None = None  # None: not known, not compared
    replicas: int | None = None
    needs: tuple = ()  # what it was started after: orders its stop when it leaves the spec

    @classmethod
    def from_dict(cls, data: dict) -> Running:
        return cls(data["image"], data.get("parameters"), data.get("replicas"),
                   tuple(data.get("needs", ())))


@dataclass(frozen=True)
class Step:
    """One service in a wave: what happens to it and why."""

    service: str
    kind: str  # "service", "backend", "job", or "unknown" for one only seen running
    action: str  # one of ACTIONS
    image: str
    replicas: int | None
    reasons: tuple = ()

    def to_dict(self) -> dict:
        return {"service": self.service, "kind": self.kind, "action": self.action,
                "image": self.image, "replicas": self.replicas, "reasons": list(self.reasons)}

    @classmethod
    def from_dict(cls, data: dict) -> Step:
        return cls(data["service"], data["kind"], data["action"], data["image"],
                   data.get("replicas"), tuple(data.get("reasons", ())))


@dataclass(frozen=True)
class Plan:
    """Stop waves (roots first), then start waves (leaves first), and notes for people."""

    app: str
    stop_waves: tuple = ()  # tuple of tuples of Step
    start_waves: tuple = ()
    notes: tuple = ()

    def count(self, action: str) -> int:
        return sum(s.action == action for wave in self.stop_waves + self.start_waves
                   for s in wave)

    def to_dict(self) -> dict:
        """The documented JSON shape (docs/app-spec.md, "The plan as JSON")."""
        return {"schema": SCHEMA, "app": self.app,
                "summary": {action: self.count(action) for action in ACTIONS},
                "stop_waves": [[s.to_dict() for s in wave] for wave in self.stop_waves],
                "start_waves": [[s.to_dict() for s in wave] for wave in self.start_waves],
                "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, data: dict) -> Plan:
        """A plan back from its JSON (`to_dict`, the API's answer), to print it."""
        def waves(key: str) -> tuple:
            return tuple(tuple(Step.from_dict(s) for s in wave) for wave in data.get(key, ()))
        return cls(data.get("app", "?"), waves("stop_waves"), waves("start_waves"),
                   tuple(data.get("notes", ())))


def dependencies(spec: AppSpec) -> dict:
    """Service name -> the names it starts after (a job among them is no node here: this
    is the graph of what runs, is told of changes and is listed by `services`)."""
    return {name: service.needs() for name, service in spec.services.items()}


def start_order(spec: AppSpec) -> dict:
    """Service and job name -> the names it starts (runs) after: the start waves' graph."""
    return {name: member.needs() for name, member in spec.members().items()}


def through_jobs(spec: AppSpec) -> dict:
    """Service name -> the services it needs, a job it needs standing for what that job
    needs (at any depth): `web -> migrate -> db` is `web -> db`. The stops' graph."""
    order = start_order(spec)

    def needed(names: list, seen: set) -> list:
        found = []
        for name in names:
            if name not in spec.jobs:
                found.append(name)
            elif name not in seen:
                seen.add(name)
                found += needed(order[name], seen)
        return found
    return {name: list(dict.fromkeys(needed(order[name], set()))) for name in spec.services}


def plan(spec: AppSpec, running: dict | None = None, jobs: dict | None = None) -> Plan:
    """What `apply` would do to go from `running` (name -> Running) to `spec`; `jobs`:
    job -> (action, reasons), decided from its last run (default: run). Its notes name the
    shared parameters nothing takes."""
    running = running or {}
    starts = _start_waves(spec, set(spec.members()), running, jobs or {})
    gone = {name: r for name, r in running.items() if name not in spec.services}
    stop_graph = {name: [n for n in r.needs if n in gone] for name, r in gone.items()}
    stops = tuple(tuple(Step(name, "unknown", "stop", gone[name].image, gone[name].replicas,
                             ("not in the spec",)) for name in wave)
                  for wave in reversed(graph.waves(stop_graph)))
    return Plan(spec.app, stops, starts, shared_checks.unused_notes(spec))


def start_plan(spec: AppSpec, name: str | Sequence[str], running: dict | None = None,
               jobs: dict | None = None) -> Plan:
    """Start `name` (or each of several names: a service's slots) and its subtree, leaves
    first (what already runs as specified is kept; a job in it runs as `jobs` says)."""
    names, deps = _known(spec, name), start_order(spec)
    tree = set().union(*(graph.subtree(deps, n) for n in names))
    return Plan(spec.app, (), _start_waves(spec, tree, running or {}, jobs or {}))


def stop_plan(spec: AppSpec, name: str | Sequence[str]) -> Plan:
    """Stop `name` (or each of several) and its subtree, roots first.

    What a service outside the subtree still needs is kept running (a diamond's
    shared backend), and said so in the notes. Jobs are not stopped: the subtree goes
    through them (`through_jobs`).
    """
    names, deps = _known(spec, name), through_jobs(spec)
    tree = set().union(*(graph.subtree(deps, n) for n in names))
    outside = set(deps) - tree
    needed = set().union(*(graph.subtree(deps, n) for n in outside)) if outside else set()
    stopping = (tree - needed) | set(names)
    notes = [f"{n} keeps running: still needed by {_names(_users(deps, n, stopping))}"
             for n in sorted(tree - stopping)]
    for one in names:
        if _users(deps, one, stopping):
            notes.append(f"{one} stops while still needed by "
                         f"{_names(_users(deps, one, stopping))}")
    waves = graph.waves(graph.restrict(deps, stopping))
    stops = tuple(tuple(_stop_step(spec, n) for n in wave) for wave in reversed(waves))
    return Plan(spec.app, stops, (), tuple(notes))


def _users(deps: dict, name: str, stopping: set) -> list[str]:
    return [d for d in graph.dependents(deps, name) if d not in stopping]


def _names(names: list) -> str:
    return ", ".join(names)


def _known(spec: AppSpec, name: str | Sequence[str]) -> list:
    """The names; UnknownService for a name that is not a service of the spec."""
    names = [name] if isinstance(name, str) else list(name)
    for one in names:
        if one not in spec.services:
            raise UnknownService(one, spec.services)
    return names


def _start_waves(spec: AppSpec, names: set, running: dict, jobs: dict) -> tuple:
    deps = graph.restrict(start_order(spec), names)
    return tuple(tuple(_job_step(n, spec, jobs) if n in spec.jobs else
                       _start_step(n, spec.services[n], running.get(n)) for n in wave)
                 for wave in graph.waves(deps))


def _job_step(name: str, spec: AppSpec, jobs: dict) -> Step:
    action, reasons = jobs.get(name, ("run", UNKNOWN_RUN))
    return Step(name, "job", action, spec.jobs[name].image, None, tuple(reasons))


def _start_step(name: str, service: ServiceSpec, now: Running | None) -> Step:
    reasons = _differences(service, now) if now else ("not running",)
    action = "start" if now is None else ("change" if reasons else "keep")
    return Step(name, service.kind, action, service.image, service.replicas, tuple(reasons))


def _stop_step(spec: AppSpec, name: str) -> Step:
    service = spec.services[name]
    return Step(name, service.kind, "stop", service.image, service.replicas)


def _differences(service: ServiceSpec, now: Running) -> list[str]:
    """Why a running service must change; parameter names only, never values (secrets)."""
    reasons = []
    if now.image != service.image:
        reasons.append(f"image {now.image} -> {service.image}")
    wanted = service.parameter_values()
    if now.parameters is not None and now.parameters != wanted:
        changed = sorted(k for k in set(wanted) | set(now.parameters)
                         if wanted.get(k, _ABSENT) != now.parameters.get(k, _ABSENT))
        reasons.append(f"parameters {', '.join(changed)}")
    if now.replicas is not None and now.replicas != service.replicas:
        reasons.append(f"replicas {now.replicas} -> {service.replicas}")
    return reasons


_ABSENT = object()
