"""The plan of a command, pure: the spec and an Observation in, a Deployment out.

    deployment = deploy(spec, observation)          # apply
    deployment = start(spec, observation, "web")    # start one service with its subtree
    deployment = stop(spec, "web")                  # stop it and what only it needs

A Deployment is what will be done, as data: the plan people see (`shown`: start, change,
keep, stop in waves, docs/app-spec.md), the node labels to set or remove, the services to
stop (roots first) and the services to launch, each with how: `create` (not on Swarm),
`update` (its definition changed: new tasks), `scale` (same definition: its tasks stay,
the replica count is set). "Definition changed" is decided here, by the hash of the
Swarm spec the service was made from (its label) against the hash of the one wanted.
No function here calls the engine (STYLE.md habit 1).

Plans are made of *units* (orchestrator.slotting): a service with storage is planned as its
slots, each pinned to its server; a slot whose server is down is launched anyway (Swarm holds
it until the server is back) and `waits_for` that server instead of being waited on.

One-shot jobs are launches too, in the start order: `run` (no Swarm service of it yet),
`rerun` (its last run's service is removed, then made again) or `skip` (its last run
succeeded with the same image, definition and parameters: orchestrator.jobs.decide). Job
services left by jobs gone from the spec are removed (`jobs_gone`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Mapping

from dragonball.app import plan as plan_mod
from dragonball.app.errors import AddressImageMissing, SlotsUnplaced, UnknownService
from dragonball.app.model import AppSpec
from dragonball.orchestrator import address, naming, slotting, specs
from dragonball.orchestrator import jobs as jobs_mod
from dragonball.orchestrator.images import ReleaseImage
from dragonball.orchestrator.observe import Observation
from dragonball.shared import overlay

DEFINITION = "service definition"
JOB_OPS = ("run", "rerun", "skip")


@dataclass(frozen=True)
class LaunchStep:
    """Bring one service up: `op` is create, update or scale (to `replicas`); or run a
    one-shot job: `op` is run, rerun or skip (JOB_OPS)."""

    service: str
    swarm_name: str
    needs: tuple
    replicas: int
    op: str
    spec: Mapping = field(default_factory=dict)   # the Swarm service spec wanted
    force: bool = False                           # new tasks even if nothing changed
    params_of: str = ""                           # its parameters' service, if not itself
    waits_for: str = ""                           # a slot's server, down: not waited on
    timeout: float = 0.0                          # a job: the seconds it may run
    parts: Mapping = field(default_factory=dict)  # a job: what the run runs (jobs.parts)
    reasons: tuple = ()                           # a job: why it runs, or is skipped

    @property
    def job(self) -> bool:
        return self.op in JOB_OPS

    @property
    def fresh_only(self) -> bool:
        """Only tasks this launch makes count as healthy (a new definition, a restart)."""
        return self.op == "update"

    @property
    def keeps_tasks(self) -> bool:
        """Its running tasks stay (same definition): kept tasks get new parameters by
        config_change, not by a restart."""
        return self.op == "scale"


@dataclass(frozen=True)
class StopStep:
    """Stop one service (scale to 0) once what needs it among the stops has stopped."""

    service: str
    swarm_name: str
    needs: tuple


@dataclass(frozen=True)
class LabelChange:
    """Set (or, with None, remove) one node label."""

    node_id: str
    hostname: str
    key: str
    value: str | None


@dataclass(frozen=True)
class Deployment:
    """What a command will do, in order: labels, stops (removed when `remove`), launches."""

    shown: plan_mod.Plan
    network: Mapping = field(default_factory=dict)
    labels: tuple = ()
    stops: tuple = ()
    remove: bool = False
    launches: tuple = ()
    pins: Mapping = field(default_factory=dict)   # slot -> server, to record
    addresses: tuple = ()                         # orchestrator.address.AddressStep
    images: tuple = ()     # ReleaseImage: every ready server holds them before a launch
    jobs_gone: tuple = ()  # Swarm names of job services whose job left the spec: removed

    def launched(self) -> list[str]:
        """The spec's names of what is launched (a slot's service once), for parameters."""
        return list(dict.fromkeys(step.params_of or step.service for step in self.launches))


def wanted_spec(spec: AppSpec, name: str, pinned: Mapping, slot=None,
                encrypted: bool = False) -> dict:
    """The Swarm service spec of `name` (a unit; `slot` when it is one), its image pinned
    by image ID; the spec's own image name as a label (outside the hash, as services
    already deployed were made); `encrypted`: the app's network is (`network_of`)."""
    service = spec.services[name]
    behind = any(name in s.backends for s in spec.services.values() if s.kind == "service")
    result = specs.service_spec(spec.app, name, service, pinned[service.image], slot=slot,
                                encrypted=encrypted,
                                drained=behind and not service.storage and not service.ports)
    result["Labels"][naming.IMAGE_LABEL] = service.image
    return result


def network_of(observation: Observation) -> tuple[bool, str | None]:
    """(is the app's network encrypted, a note for the plan): as it is when it exists
    (Swarm cannot change that), else as shared/overlay.decide says for these servers."""
    if observation.network is not None:
        return overlay.is_encrypted(observation.network), None
    return overlay.decide(observation.nodes)


def running_of(observation: Observation) -> dict:
    """spec name -> plan.Running of each service on Swarm (from its labels)."""
    found = {}
    for name, state in observation.services.items():
        needs = tuple(n for n in state.labels.get(naming.NEEDS_LABEL, "").split(",") if n)
        found[name] = plan_mod.Running(state.labels.get(naming.IMAGE_LABEL, ""), None,
                                       state.replicas, needs)
    return found


def redefined(spec: AppSpec, observation: Observation, name: str, slot=None) -> bool:
    """Whether `name` runs on Swarm from another definition than the one wanted."""
    state = observation.services.get(name)
    wanted = wanted_spec(spec, name, observation.pinned, slot,
                         network_of(observation)[0])["Labels"][naming.SPEC_LABEL]
    return state is not None and state.spec_hash != wanted


def wanted_job(spec: AppSpec, name: str, observation: Observation) -> dict:
    """The Swarm service spec of job `name`, its image pinned by image ID, the spec's image
    name as a label (outside the hash)."""
    job = spec.jobs[name]
    result = jobs_mod.job_spec(spec.app, name, job, observation.pinned[job.image],
                               network_of(observation)[0])
    result["Labels"][naming.IMAGE_LABEL] = job.image
    return result


def job_decisions(spec: AppSpec, observation: Observation) -> dict:
    """job -> (run or skip, why), from the portal's record of its last run."""
    return {name: jobs_mod.decide(job_parts(spec, name, observation),
                                  observation.runs.get(name))
            for name in spec.jobs}


def job_parts(spec: AppSpec, name: str, observation: Observation) -> dict:
    return jobs_mod.parts(observation.pinned[spec.jobs[name].image],
                          wanted_job(spec, name, observation),
                          observation.job_params.get(name))


def job_step(units: slotting.Units, observation: Observation, step: plan_mod.Step) -> LaunchStep:
    """How job `step.service` comes: skipped, run, or run again (its last service gone)."""
    spec, name = units.spec, step.service
    if step.action == "skip":
        op = "skip"
    else:
        op = "rerun" if name in observation.jobs else "run"
    return LaunchStep(name, naming.swarm_service(spec.app, name), tuple(spec.jobs[name].needs()),
                      0 if op == "skip" else 1, op, wanted_job(spec, name, observation),
                      timeout=float(spec.jobs[name].timeout),
                      parts=job_parts(spec, name, observation), reasons=step.reasons)


def jobs_gone(spec: AppSpec, observation: Observation) -> tuple[tuple, tuple]:
    """(the Swarm names of job services whose job left the spec, a note on each)."""
    gone = sorted(set(observation.jobs) - set(spec.jobs))
    return (tuple(observation.jobs[name].name for name in gone),
            tuple(f"job {name} is no longer in the spec: its last run's service is removed"
                  for name in gone))


def shown_plan(spec: AppSpec, observation: Observation,
               units: slotting.Units | None = None) -> plan_mod.Plan:
    """app.plan's plan of the units, with "change" also for a kept one whose definition
    changed (ports, resources, placement, a new digest under the same tag...), and notes
    saying where each slot stays, is placed or waits. A job runs or is skipped as its
    last run says (`job_decisions`)."""
    units = units or slotting.expand(spec, observation.nodes,
                                     remembered=observation.remembered)
    result = plan_mod.plan(units.spec, running_of(observation),
                           job_decisions(units.spec, observation))
    waves = tuple(tuple(_redefined_step(units, observation, step) for step in wave)
                  for wave in result.start_waves)
    return dataclasses.replace(result, start_waves=waves, notes=result.notes + units.notes())


def step_launch(units: slotting.Units, observation: Observation, step: plan_mod.Step,
                force: bool = False) -> LaunchStep:
    """The launch of a start wave's step: a job's (`job_step`) or a unit's (`launch_step`)."""
    if step.kind == "job":
        return job_step(units, observation, step)
    return launch_step(units, observation, step.service, force)


def _redefined_step(units: slotting.Units, observation: Observation, step: plan_mod.Step):
    if step.action == "keep" and redefined(units.spec, observation, step.service,
                                           units.slots.get(step.service)):
        return dataclasses.replace(step, action="change", reasons=(DEFINITION,))
    return step


def launch_step(units: slotting.Units, observation: Observation, name: str,
                force: bool = False) -> LaunchStep:
    """How unit `name` comes up: created when not on Swarm, updated when its definition
    changed (or `force`), else scaled to its replicas (nothing when they match)."""
    spec, slot = units.spec, units.slots.get(name)
    service = spec.services[name]
    if name not in observation.services:
        op = "create"
    elif force or redefined(spec, observation, name, slot):
        op = "update"
    else:
        op = "scale"
    return LaunchStep(name, naming.swarm_service(spec.app, name), tuple(service.needs()),
                      service.replicas, op, wanted_spec(spec, name, observation.pinned, slot,
                                                     network_of(observation)[0]),
                      force and op == "update", units.base(name) if slot else "",
                      units.waiting.get(name, ""))


def images_of(units: slotting.Units, observation: Observation, launches,
              addresses=()) -> tuple:
    """The images the launches run (those with tasks) and, with a moving address kept
    or made, its keepalived's: each once, by name (pure)."""
    members = units.spec.members()
    wanted = [members[step.service].image for step in launches if step.replicas]
    if any(step.op != "remove" for step in addresses):
        wanted.append(address.IMAGE)
    return tuple(ReleaseImage(image, observation.pinned[image], observation.pulls.get(image, ""))
                 for image in sorted(set(wanted)) if image in observation.pinned)


def placement_labels(spec: AppSpec, nodes) -> tuple:
    """The node labels to change so that each service's (and job's) `placement.servers`
    label is on exactly the servers it lists."""
    changes = []
    for name, service in spec.members().items():
        key = naming.placement_label(spec.app, name)
        wanted = set(service.placement.servers)
        for node in nodes:
            value = "true" if node.hostname in wanted else None
            if node.labels.get(key) != value:
                changes.append(LabelChange(node.id, node.hostname, key, value))
    return tuple(changes)


def placed(spec: AppSpec, observation: Observation) -> slotting.Units:
    """The units of `spec`, every slot with a server (SlotsUnplaced when one finds none:
    a slot is never left free to start anywhere)."""
    units = slotting.expand(spec, observation.nodes, remembered=observation.remembered)
    if units.problems:
        raise SlotsUnplaced(units.problems)
    return units


def deploy(spec: AppSpec, observation: Observation) -> Deployment:
    """`apply`: place, stop (and remove) what left the spec, launch every service."""
    units = placed(spec, observation)
    shown = shown_plan(spec, observation, units)
    running = running_of(observation)
    stops = tuple(StopStep(s.service, naming.swarm_service(spec.app, s.service),
                           running[s.service].needs)
                  for wave in shown.stop_waves for s in wave)
    launches = tuple(step_launch(units, observation, s)
                     for wave in shown.start_waves for s in wave)
    addresses = address_steps(spec, observation)
    encrypted, note = network_of(observation)
    gone, gone_notes = jobs_gone(spec, observation)
    shown = dataclasses.replace(shown, notes=shown.notes + tuple(
        address_note(step) for step in addresses) + ((note,) if note else ()) + gone_notes)
    return Deployment(shown, specs.network_spec(spec.app, encrypted),
                      placement_labels(units.spec, observation.nodes), stops, True, launches,
                      dict(units.pins), addresses,
                      images_of(units, observation, launches, addresses), gone)


def address_steps(spec: AppSpec, observation: Observation) -> tuple:
    """The moving addresses' steps; AddressImageMissing when one is wanted and the portal
    registry lacks the keepalived image."""
    steps = address.plan(spec, observation)
    if any(s.op != "remove" for s in steps) and address.IMAGE not in observation.pinned:
        raise AddressImageMissing(address.IMAGE)
    return steps


def address_note(step: address.AddressStep) -> str:
    """What happens to a moving address, for the plan's notes."""
    said = {"create": "held by a live server of {s} (new)", "update": "changed",
            "keep": "kept", "remove": "removed: {s} no longer has it"}
    return f"address {step.address} of {step.service}: " + said[step.op].format(
        s=step.service)


def start(spec: AppSpec, observation: Observation, name: str,
          force: bool = False) -> Deployment:
    """`start NAME` (a service, or one slot: `store-2`): it and everything it needs,
    leaves first; `force`: new tasks of `name` even if nothing changed."""
    units = placed(spec, observation)
    names = _units_named(units, spec, name)
    shown = plan_mod.start_plan(units.spec, names, running_of(observation),
                                job_decisions(units.spec, observation))
    shown = dataclasses.replace(shown, notes=shown.notes + units.notes())
    launches = tuple(step_launch(units, observation, s, force and s.service in names)
                     for wave in shown.start_waves for s in wave)
    slots_only = units.spec.model_copy(update={"services": {
        unit: units.spec.services[unit] for unit in units.slots}})
    return Deployment(shown, specs.network_spec(spec.app, network_of(observation)[0]),
                      placement_labels(slots_only, observation.nodes), launches=launches,
                      pins=dict(units.pins), images=images_of(units, observation, launches))


def stop(spec: AppSpec, name: str) -> Deployment:
    """`stop NAME` (a service, or one slot): it and what only it needs, roots first (the
    notes say what stays)."""
    units = slotting.expand(spec, (), place_new=False)
    shown = plan_mod.stop_plan(units.spec, _units_named(units, spec, name))
    stops = tuple(StopStep(s.service, naming.swarm_service(spec.app, s.service),
                           tuple(units.spec.services[s.service].needs()))
                  for wave in shown.stop_waves for s in wave)
    return Deployment(shown, stops=stops)


def _units_named(units: slotting.Units, spec: AppSpec, name: str) -> list[str]:
    """The units a command's service name stands for; UnknownService when none."""
    found = units.units_of(name)
    if not found:
        raise UnknownService(name, list(spec.services) + list(units.slots))
    return found
