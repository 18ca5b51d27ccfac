"""The application networks this node's engine still holds (docs/agent.md, "Networks").

    GET /v1/networks    {"networks": [{"name", "id", "app", "scope", "containers"}]}

An app's overlay network is Swarm's, but each server keeps a copy of it while a task there
is attached, and lets it go only once that task's container is removed: `dragonball remove`
asks every server until its copy is gone, so that what it answers ("the network went") is
true on every server and not on the managers only. Labelled networks (io.dragonball.app)
only; read-only: nothing here changes the engine.
"""

from __future__ import annotations

from agent_engine import Engine
from agent_transfers import APP_LABEL
from agent_volumes import engine_answers


def network_entry(network: dict) -> dict:
    """One network of the engine's list, as GET /v1/networks answers it (pure)."""
    return {"name": network.get("Name", ""), "id": network.get("Id", ""),
            "app": (network.get("Labels") or {}).get(APP_LABEL),
            "scope": network.get("Scope", ""),
            "containers": len(network.get("Containers") or {})}


class NetworksApi:
    """GET /v1/networks."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def routes(self) -> dict:
        return {("GET", "/v1/networks"): engine_answers(self.networks)}

    def networks(self, query: dict, body) -> tuple:
        found = self.engine.networks(APP_LABEL)
        return 200, {"networks": sorted((network_entry(n) for n in found),
                                        key=lambda n: n["name"])}
