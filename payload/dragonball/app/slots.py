"""Slots of a service with storage, and the server each one is pinned to (pure).

A service with `storage: true` runs as numbered slots (`store-1`, `store-2`, ...), one task
each. Once a slot has a server, its data lives there and the slot runs only there: while that
server is down the slot *waits* (it never starts empty elsewhere). A slot without a server yet
(the first apply, a scale-up) gets one here, spread over the servers that fit the service's
placement: the ready server holding the fewest slots of this service, then the fewest slots
of any service, then by name. Moving a slot is an explicit command, never a plan's side effect.

    pins = place(spec, "store", recorded={1: "s1"}, servers=[...])   # -> Placement
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from dragonball.app.model import ServiceSpec


@dataclasses.dataclass(frozen=True)
class Server:
    """A server as slot placement sees it: name, ready or not, its node labels."""

    name: str
    ready: bool = True
    labels: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Placement:
    """Slot number -> server for every slot of one service, and what could not be placed."""

    service: str
    pins: dict            # slot number -> server name (recorded ones kept as they were)
    new: tuple = ()       # slot numbers that got a server now
    problems: tuple = ()  # one message per slot that found no server

    def waiting(self, servers: list[Server]) -> dict:
        """Slot name -> server, for slots pinned to a server that is not ready."""
        ready = {s.name for s in servers if s.ready}
        return {slot_name(self.service, n): server for n, server in sorted(self.pins.items())
                if server not in ready}


def slot_name(service: str, number: int) -> str:
    """The slot's stable name: its DNS name on the app's network."""
    return f"{service}-{number}"


def slot_names(service: str, replicas: int) -> list[str]:
    return [slot_name(service, n) for n in range(1, replicas + 1)]


def fits(service: ServiceSpec, server: Server) -> bool:
    """Whether `server` is one the service's placement allows (servers and labels)."""
    placement = service.placement
    if placement.servers and server.name not in placement.servers:
        return False
    return all(server.labels.get(key) == value for key, value in placement.labels.items())


def place(spec_service: ServiceSpec, name: str, recorded: dict, servers: list[Server],
          taken: Counter | None = None) -> Placement:
    """Pins for slots 1..replicas of service `name`.

    `recorded`: slot number -> server already pinned (kept, whatever that server's state);
    `taken`: server -> slots of other services already there (spreads the load).
    """
    pins = {n: recorded[n] for n in range(1, spec_service.replicas + 1) if n in recorded}
    load = Counter(taken or {})
    mine = Counter(pins.values())
    new, problems = [], []
    candidates = [s for s in servers if s.ready and fits(spec_service, s)]
    for number in range(1, spec_service.replicas + 1):
        if number in pins:
            continue
        if not candidates:
            problems.append(f"{slot_name(name, number)}: no ready server fits its placement "
                            f"({_placement_text(spec_service)})")
            continue
        best = min(candidates, key=lambda s: (mine[s.name], load[s.name], s.name))
        pins[number] = best.name
        mine[best.name] += 1
        load[best.name] += 1
        new.append(number)
    return Placement(name, pins, tuple(new), tuple(problems))


def _placement_text(service: ServiceSpec) -> str:
    parts = []
    if service.placement.servers:
        parts.append("servers " + ", ".join(service.placement.servers))
    if service.placement.labels:
        parts.append("labels " + ", ".join(f"{k}={v}" for k, v in
                                           sorted(service.placement.labels.items())))
    return "; ".join(parts) or "any server"
