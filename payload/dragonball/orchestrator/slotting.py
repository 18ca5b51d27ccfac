"""An app spec as the Swarm runs it: each service with storage split into its slots (pure).

A service with `storage: true` and `replicas: 3` runs as three *units* `store-1`, `store-2`,
`store-3`: each one Swarm service with one task, pinned to the server that holds its data
(app.slots places a slot once; the pin is the node label ``dragonball.placement.<app>.<unit>``
on that server, which Swarm keeps in its replicated store and enforces as a constraint).
Every other service runs as one unit named as in the spec; what needs `store` needs every
slot of it (a one-shot job that depends on it too).

    units = expand(spec, observation.nodes)          # apply: new slots get a server
    units.spec.services["store-2"].placement.servers  # ["s3"]: where its data is
    units.waiting                                    # {"store-1": "s2"} while s2 is down

The planner, the rollout and `status` work on `units.spec`; parameters, logs and the app's
own commands stay with the spec's names (`units.base("store-2") == "store"`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Mapping

from dragonball.app import slots as slots_mod
from dragonball.app.model import AppSpec, Placement, ServiceSpec
from dragonball.orchestrator import naming


@dataclass(frozen=True)
class SlotOf:
    """A unit that is a slot: its service's spec name, its number, every slot's name."""

    service: str
    number: int
    peers: tuple

    @property
    def name(self) -> str:
        return slots_mod.slot_name(self.service, self.number)


@dataclass(frozen=True)
class Units:
    """The spec as units, and where each slot is pinned."""

    spec: AppSpec
    slots: Mapping[str, SlotOf] = field(default_factory=dict)   # unit -> its slot
    pins: Mapping[str, str] = field(default_factory=dict)       # unit -> server
    new: tuple = ()                                             # units placed just now
    waiting: Mapping[str, str] = field(default_factory=dict)    # unit -> its server, down
    problems: tuple = ()                                        # slots with no server
    misplaced: tuple = ()       # units pinned to a server their placement no longer allows

    def base(self, unit: str) -> str:
        """The spec's name of a unit: `store` for `store-2`, `api` for `api`."""
        slot = self.slots.get(unit)
        return slot.service if slot else unit

    def units_of(self, name: str) -> list[str]:
        """The units of a spec name (its slots, in order) or of a unit name (itself);
        empty when neither."""
        if name in self.spec.services:
            return [name]
        return [unit for unit, slot in self.slots.items() if slot.service == name]

    def notes(self) -> tuple:
        """What a plan says about slots: where each stays, is placed, or waits."""
        found = []
        for unit in sorted(self.pins, key=_unit_order(self.slots)):
            server = self.pins[unit]
            if unit in self.waiting:
                found.append(f"{unit} waits for {server}, which is down: its data is there "
                             f"(it starts when {server} is back; or: dragonball move {unit} "
                             "--to SERVER)")
            elif unit in self.new:
                found.append(f"{unit} is placed on {server} and stays there (its storage)")
            elif unit in self.misplaced:
                found.append(f"{unit} stays on {server}, which its placement no longer "
                             f"allows: its data is there (dragonball move {unit} --to SERVER)")
            else:
                found.append(f"{unit} stays on {server} (its storage is there)")
        return tuple(found) + tuple(self.problems)


def recorded_pins(app: str, name: str, nodes) -> dict:
    """slot number -> server, as the node labels record them (every slot ever placed,
    kept while its node is in the Swarm, whatever the spec's replicas now)."""
    prefix = f"{naming.PLACEMENT_LABEL}.{app}.{name}-"
    found = {}
    for node in sorted(nodes, key=lambda n: n.hostname):
        for key, value in node.labels.items():
            number = key[len(prefix):]
            if key.startswith(prefix) and value == "true" and number.isdigit():
                found.setdefault(int(number), node.hostname)
    return found


def expand(spec: AppSpec, nodes, place_new: bool = True,
           remembered: Mapping[str, str] | None = None) -> Units:
    """The units of `spec`; `place_new`: slots without a pin get a server now (apply,
    start), else they stay unplaced (status, stop). `remembered`: slot -> server as the
    portal's store records them, for the slots no node label pins (their node was removed
    from the Swarm: the slot waits for it, it is not placed again)."""
    servers = [slots_mod.Server(n.hostname, n.ready, dict(n.labels)) for n in nodes]
    ready = {s.name for s in servers if s.ready}
    recorded = {name: _with_remembered(name, recorded_pins(spec.app, name, nodes),
                                       remembered or {})
                for name, service in spec.services.items() if service.storage}
    taken = Counter(server for pins in recorded.values() for server in pins.values())
    services, slots, pins, new, problems = {}, {}, {}, [], []
    for name, service in spec.services.items():
        if not service.storage:
            services[name] = _with_needs(service, spec)
            continue
        mine = recorded[name]
        placement = (slots_mod.place(service, name, mine, servers, taken - Counter(mine.values()))
                     if place_new else slots_mod.Placement(name, {
                         n: s for n, s in mine.items() if n <= service.replicas}))
        problems += placement.problems
        peers = tuple(slots_mod.slot_names(name, service.replicas))
        for number in range(1, service.replicas + 1):
            unit = slots_mod.slot_name(name, number)
            server = placement.pins.get(number)
            slots[unit] = SlotOf(name, number, peers)
            services[unit] = _slot_service(service, spec, server)
            if server:
                pins[unit] = server
                if number in placement.new:
                    new.append(unit)
    waiting = {unit: server for unit, server in pins.items() if server not in ready}
    known = {s.name: s for s in servers}
    misplaced = tuple(unit for unit, server in pins.items() if server in known and not
                      slots_mod.fits(spec.services[slots[unit].service], known[server]))
    expanded = spec.model_copy(update={"services": services, "jobs": {
        name: _with_needs(job, spec) for name, job in spec.jobs.items()}})
    return Units(expanded, slots, pins, tuple(new), waiting, tuple(problems), misplaced)


def _with_remembered(name: str, labelled: dict, remembered: Mapping[str, str]) -> dict:
    """The node labels' pins of `name`'s slots, and the store's for the slots they lack."""
    found = dict(labelled)
    prefix = f"{name}-"
    for slot, server in remembered.items():
        number = slot[len(prefix):]
        if slot.startswith(prefix) and number.isdigit():
            found.setdefault(int(number), server)
    return found


def slotted_names(spec: AppSpec) -> dict:
    """spec name -> its slot names, for each service with storage."""
    return {name: slots_mod.slot_names(name, service.replicas)
            for name, service in spec.services.items() if service.storage}


def _with_needs(service, spec: AppSpec):
    """`service` (or a job) needing the slots of what it needs instead of their service."""
    slotted = slotted_names(spec)
    if not any(n in slotted for n in service.needs()):
        return service
    swap = lambda names: [u for n in names for u in slotted.get(n, [n])]  # noqa: E731
    update = {"depends_on": swap(service.depends_on)}
    if isinstance(service, ServiceSpec):
        update["backends"] = swap(service.backends)
    return service.model_copy(update=update)


def _slot_service(service: ServiceSpec, spec: AppSpec, server: str | None) -> ServiceSpec:
    """One slot of `service`: one task, on its server (no server yet: nowhere it may run
    is named, and planning refuses it)."""
    return _with_needs(service, spec).model_copy(update={
        "replicas": 1, "placement": Placement(servers=[server] if server else [])})


def _unit_order(slots: Mapping[str, SlotOf]):
    return lambda unit: (slots[unit].service, slots[unit].number) if unit in slots else (unit, 0)
