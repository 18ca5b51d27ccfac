"""The status of an app's services, pure: its units (orchestrator.slotting) and an
Observation (with tasks) in, the rows `dragonball services --json` and the portal's API give
out. A service with storage has one row per slot, saying which server holds its data and,
while that server is down, that the slot waits for it; a Service with a moving address says
it, and the servers that may hold it."""

from __future__ import annotations

from dragonball.app import graph, plan as plan_mod
from dragonball.orchestrator import naming
from dragonball.orchestrator.observe import Observation
from dragonball.orchestrator.slotting import Units


def state(deployed: bool, desired: int, healthy: int) -> str:
    """absent, stopped (0 desired), healthy, degraded (some healthy) or down."""
    if not deployed:
        return "absent"
    if desired == 0:
        return "stopped"
    return "healthy" if healthy >= desired else ("degraded" if healthy else "down")


def rows(units: Units, observation: Observation) -> list[dict]:
    """One row per unit, leaves first: deployed, desired, healthy, its tasks; a slot's row
    also its `slot`, `server` and, while that server is down, `waiting` (its name)."""
    servers = {n.id: n.hostname for n in observation.nodes}
    order = [n for wave in graph.waves(plan_mod.dependencies(units.spec)) for n in wave]
    return [row(units, name, observation, servers) for name in order]


def row(units: Units, name: str, observation: Observation, servers: dict) -> dict:
    service, found = units.spec.services[name], observation.services.get(name)
    desired = (found.replicas or 0) if found else 0
    up = [t for t in observation.tasks.get(name, ()) if t.desired_state == "running"]
    healthy = sum(t.state == "running" for t in up)
    result = {"service": name, "kind": service.kind, "image": service.image,
              "needs": service.needs(), "deployed": found is not None,
              "desired": desired, "healthy": healthy,
              "state": state(found is not None, desired, healthy),
              "tasks": [{"slot": t.slot, "server": servers.get(t.node_id, ""),
                         "state": t.state} for t in up]}
    if service.address:
        result["address"] = address_row(name, service.address, observation, servers)
    slot = units.slots.get(name)
    if slot:
        result.update({"of": slot.service, "slot": slot.number,
                       "server": units.pins.get(name, ""), "waiting": units.waiting.get(name)})
        if units.waiting.get(name) and desired and healthy < desired:
            result["state"] = "waiting"
    return result


def address_row(name: str, address: str, observation: Observation, servers: dict) -> dict:
    """A Service's moving address: the address, whether its keepalived is on Swarm, the
    servers where it runs (the address's peers: one of them holds it)."""
    state = observation.addresses.get(name)
    up = [t for t in observation.tasks.get(f"{name} address", ())
          if t.desired_state == "running" and t.state == "running"]
    return {"address": address.split("/")[0],
            "network": state.labels.get(naming.ADDRESS_IP_LABEL, address) if state else address,
            "deployed": state is not None,
            "peers": sorted(servers.get(t.node_id, "") for t in up)}
