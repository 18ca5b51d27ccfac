"""The status of an app's services, pure: the spec and an Observation (with tasks) in,
the rows `dragonball services --json` and the portal's API give out."""

from __future__ import annotations

from dragonball.app import graph, plan as plan_mod
from dragonball.app.model import AppSpec
from dragonball.orchestrator.observe import Observation


def state(deployed: bool, desired: int, healthy: int) -> str:
    """absent, stopped (0 desired), healthy, degraded (some healthy) or down."""
    if not deployed:
        return "absent"
    if desired == 0:
        return "stopped"
    return "healthy" if healthy >= desired else ("degraded" if healthy else "down")


def rows(spec: AppSpec, observation: Observation) -> list[dict]:
    """One row per service, leaves first: deployed, desired, healthy, its tasks."""
    servers = {n.id: n.hostname for n in observation.nodes}
    order = [n for wave in graph.waves(plan_mod.dependencies(spec)) for n in wave]
    return [row(spec, name, observation, servers) for name in order]


def row(spec: AppSpec, name: str, observation: Observation, servers: dict) -> dict:
    service, found = spec.services[name], observation.services.get(name)
    desired = (found.replicas or 0) if found else 0
    up = [t for t in observation.tasks.get(name, ()) if t.desired_state == "running"]
    healthy = sum(t.state == "running" for t in up)
    return {"service": name, "kind": service.kind, "image": service.image,
            "needs": service.needs(), "deployed": found is not None,
            "desired": desired, "healthy": healthy,
            "state": state(found is not None, desired, healthy),
            "tasks": [{"slot": t.slot, "server": servers.get(t.node_id, ""),
                       "state": t.state} for t in up]}
