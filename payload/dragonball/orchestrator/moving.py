"""`dragonball move SERVICE.SLOT --to SERVER`: a slot's data to another server, verified.

    target = parse_slot("store.2", spec)                  # ("store", 2); "store-2" too
    move = plan_move(spec, units, nodes, target, "s3")    # pure: MoveRefused, or the plan
    Mover(control).run(move)                              # stop, copy, re-pin, start

The plan is checked whole before anything changes (MoveRefused, nothing changed): a slot
of a service with storage, a known and ready target that the service's placement allows,
not the slot's own server, not a server holding another slot of the service (two copies of
a replicated store on one server survive nothing), a source server that is up (its agent
packs the data). Then: the slot stops (its Swarm service scaled to 0, so the data is
quiescent); each of its volumes (storage/, log/) is copied by the agents, streamed,
checksummed, resumed after a broken connection (dragonball.volume_copy); only then does
the pin move (the node label and the store's record) and the slot start on the new server,
healthy before the command ends. The source volumes are kept: `dragonball volumes` lists
them as owned by no slot until the admin removes them. A copy that fails leaves the pin
where it was and starts the slot again on its old server, in force, and says how to retry.

A slot whose server is gone for good (down, or removed from the Swarm) cannot be copied: it
moves only with `data_lost`, which says so (DESIGN, day 2, answer 3): the slot starts empty
on the new server, and a replicated module re-syncs it from its peers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dragonball.app import slots as slots_mod
from dragonball.app.errors import UnknownService
from dragonball.app.model import AppSpec
from dragonball.errors import AppError, Conflict, InvalidInput, NotFound, Unavailable
from dragonball.orchestrator import naming
from dragonball.orchestrator.rollout import Launch
from dragonball.orchestrator.slotting import Units
from dragonball.volume_copy import copy_volume

VOLUMES = ("storage", "log")


class MoveRefused(AppError, InvalidInput):
    """A move that cannot be done as asked: nothing was changed."""


class MoveTargetUnknown(AppError, NotFound):
    """The target server is not in the cluster."""


class MoveTargetDown(AppError, Unavailable):
    """The target (or the source) server is not ready."""


class MoveConflict(AppError, Conflict):
    """The slot is already there, or its service has another slot on the target."""


@dataclass(frozen=True)
class Move:
    """One slot's move: where from, where to, which volumes."""

    app: str
    service: str
    number: int
    source: str
    target: str
    source_address: str
    target_address: str
    data_lost: bool = False   # the source is gone: nothing is copied, the slot starts empty

    @property
    def slot(self) -> str:
        return slots_mod.slot_name(self.service, self.number)

    @property
    def swarm_name(self) -> str:
        return naming.swarm_service(self.app, self.slot)

    @property
    def label(self) -> str:
        return naming.placement_label(self.app, self.slot)

    def volumes(self) -> list[str]:
        return [naming.volume(self.app, self.service, what, self.number) for what in VOLUMES]


_SLOT = re.compile(r"^(?P<service>[A-Za-z0-9][A-Za-z0-9_-]*?)(?:[.-](?P<number>[0-9]{1,4}))?$")


def parse_slot(text: str, spec: AppSpec) -> tuple[str, int]:
    """`store.2` or `store-2` -> ("store", 2); `store` alone when it has one slot.
    UnknownService or MoveRefused for anything else."""
    match = _SLOT.match(text or "")
    service = match and match["service"]
    if not match or service not in spec.services:
        if text in spec.services:       # a service whose name ends in -<digits>
            service, number = text, None
        else:
            raise UnknownService(text, [f"{n}.<slot>" for n, s in spec.services.items()
                                        if s.storage] or spec.services)
    else:
        number = int(match["number"]) if match["number"] else None
    found = spec.services[service]
    if not found.storage:
        raise MoveRefused(f"{service} has no storage: there is no data to move",
                          "its tasks run wherever its placement allows; change placement "
                          "in the spec (or on the Placement page) instead")
    if number is None:
        if found.replicas != 1:
            raise MoveRefused(f"{service} has {found.replicas} slots: say which one",
                              f"e.g. dragonball move {service}.1 --to SERVER")
        number = 1
    if not 1 <= number <= found.replicas:
        raise MoveRefused(f"{service} has no slot {number} (its slots: 1..{found.replicas})",
                          f"name one of {', '.join(slots_mod.slot_names(service, found.replicas))}")
    return service, number


def plan_move(spec: AppSpec, units: Units, nodes, target: tuple[str, int],
              server: str, data_lost: bool = False) -> Move:
    """The move of slot `target` (service, number) to `server`, checked (pure);
    `data_lost`: only when its server is down or gone, and then nothing is copied."""
    service, number = target
    slot = slots_mod.slot_name(service, number)
    by_name = {n.hostname: n for n in nodes}
    source = units.pins.get(slot)
    if server not in by_name:
        raise MoveTargetUnknown(f"no server {server!r} in the cluster",
                                f"name one of: {', '.join(sorted(by_name)) or 'none'}")
    if not source:
        raise MoveRefused(f"{slot} has never run: it has no data yet",
                          "apply the spec: the slot is placed then (its placement decides)")
    if source == server:
        raise MoveConflict(f"{slot} is on {server} already", "nothing to do")
    target_node, source_node = by_name[server], by_name.get(source)
    if not target_node.ready:
        raise MoveTargetDown(f"{server} is down", "bring it back first, or pick a ready server")
    if not slots_mod.fits(spec.services[service], slots_mod.Server(
            server, True, dict(target_node.labels))):
        raise MoveRefused(f"{server} is not among the servers {service}'s placement allows",
                          "pick one that it allows, or change the placement in the spec")
    others = [u for u, s in units.pins.items() if s == server and units.base(u) == service]
    if others:
        raise MoveConflict(f"{server} holds {', '.join(others)} already: two slots of "
                           f"{service} on one server would fall together",
                           "pick a server without a slot of it")
    source_up = source_node is not None and source_node.ready
    if data_lost and source_up:
        raise MoveRefused(f"{slot}'s server {source} is up: its data can be copied",
                          f"move it without --data-lost: dragonball move {slot} --to {server}")
    if not source_up and not data_lost:
        gone = "is not in the cluster any more" if source_node is None else "is down"
        raise MoveTargetDown(f"{slot}'s server {source} {gone}: its data is there and "
                             "cannot be read", f"bring {source} back, then move the slot; "
                             f"if {source} is gone for good, dragonball move {slot} --to "
                             f"{server} --data-lost starts it empty there (a replicated "
                             "store re-syncs from its peers)")
    return Move(spec.app, service, number, source, server,
                source_node.address if source_node else "", target_node.address, data_lost)


#: Room the target must have beyond the data: the staged tar and the extracted volume
#: both sit on the engine's disk for a moment, plus a margin for what else runs there.
ROOM_FACTOR, ROOM_MARGIN = 2, 256 << 20


class Mover:
    """Carries out a Move through the Swarm adapter and the agents (control's)."""

    def __init__(self, control, copy=None) -> None:
        """`control`: an orchestrator.control.Control; `copy`: volume_copy.copy_volume
        (tests give their own)."""
        self.control, self.copy = control, copy or copy_volume

    def room(self, move: Move) -> dict:
        """{volume: size} of the slot's volumes at the source; MoveRefused when the target
        has not the room for them (or the source lacks them: nothing to move)."""
        agents = self.control.agents
        found = {v["name"]: v for v in agents.volumes(move.source_address, sizes=True)}
        sizes = {name: (found[name].get("size") or 0) for name in move.volumes()
                 if name in found}
        if move.volumes()[0] not in sizes:
            raise MoveRefused(f"{move.slot}'s volume {move.volumes()[0]} is not on "
                              f"{move.source}", "dragonball volumes lists where each is")
        free = agents.volume_report(move.target_address).get("free_bytes")
        need = ROOM_FACTOR * sum(sizes.values()) + ROOM_MARGIN
        if free is not None and free < need:
            raise MoveRefused(f"{move.target} has {free >> 20} MiB free; {move.slot}'s data "
                              f"needs {need >> 20} MiB there", "free space on it, or pick "
                              "another server")
        target = {v["name"] for v in agents.volumes(move.target_address)}
        clash = sorted(target & set(move.volumes()))
        if clash:
            raise MoveConflict(f"{move.target} holds {', '.join(clash)} already (left by an "
                               "earlier move?)", f"look at it (dragonball volumes), remove "
                               f"it on {move.target} if it is not needed, then move again")
        return sizes

    def run(self, move: Move) -> dict:
        """Stop, copy, re-pin, start (module docstring); the copies' sizes and checksums.
        `move` as Control.check_move gave it: planned and its room checked."""
        report = self.control.progress
        rollout = self.control.executor().rollout()
        rollout.stop({move.slot: (move.swarm_name, ())})
        copied = []
        try:
            for name in ([] if move.data_lost else move.volumes()):
                labels = {naming.APP_LABEL: move.app, naming.SERVICE_LABEL: move.service,
                          naming.SLOT_LABEL: move.slot}
                report(move.slot, "copying", f"{name}: {move.source} -> {move.target}")
                copied.append(self.copy(self.control.agents, move.source_address,
                                        move.target_address, name, labels,
                                        _progress(report, move.slot, name)))
        except Exception:
            self._start(rollout, move)   # its data never left: in force again, where it was
            raise
        self._repin(move)
        self._start(rollout, move)
        return {"app": move.app, "slot": move.slot, "from": move.source, "to": move.target,
                "volumes": copied, "data_lost": move.data_lost,
                "kept": [] if move.data_lost else [f"{name} on {move.source}"
                                                   for name in move.volumes()]}

    def _repin(self, move: Move) -> None:
        engine = self.control.engine
        nodes = {n.hostname: n for n in engine.nodes()}
        engine.update_node(nodes[move.target].id, labels={move.label: "true"})
        if move.source in nodes:
            engine.update_node(nodes[move.source].id, labels={move.label: None})
        self.control.store.set_pins(move.app, {move.slot: move.target})

    def _start(self, rollout, move: Move) -> None:
        engine = self.control.engine
        rollout.start([_launch(move, lambda: engine.scale(move.swarm_name, 1))])


def _launch(move: Move, act) -> Launch:
    return Launch(move.slot, move.swarm_name, (), 1, act, fresh_only=True)


def _progress(report, slot: str, name: str):
    last = [-1]

    def progress(done: int, total: int) -> None:
        percent = int(100 * done / total) if total else 100
        if percent // 10 != last[0] // 10:
            last[0] = percent
            report(slot, "copying", f"{name}: {percent}% of {total >> 20} MiB")
    return progress
