"""The portal's wiring, in one place: which engine, store, agents and registry the
application layer works with on this portal, made from the portal's settings."""

from __future__ import annotations

import threading
from collections.abc import Callable

from dragonball.agent_client import AgentClient
from dragonball.orchestrator.control import Control
from dragonball.orchestrator.engine import SwarmEngine
from dragonball.orchestrator.state import AppStore
from dragonball.portal.settings import Settings, read_registry_credentials
from dragonball.portal.store import Store
from dragonball.registry.client import RegistryClient


def control(settings: Settings, store: Store | None = None, progress=None,
            wait_s: float = 300.0) -> Control:
    """The portal's own Control: its engine (logged in to its registry), store, agents."""
    username, password = read_registry_credentials(settings.registry_credentials)
    engine = SwarmEngine(settings.docker_socket, (settings.registry, username, password))
    registry = RegistryClient(settings.registry, settings.ca_cert, username, password)
    app_store = AppStore(store or Store.open(settings.db_path))
    return Control(engine, app_store, AgentClient(), registry, settings.registry,
                   progress=progress, wait_s=wait_s)


def control_factory(store: Store, settings: Settings) -> Callable[[], Control]:
    """The portal's Control maker: its engine, store, agents and registry, made once
    (credentials read, registry logged in, schema checked) and shared; each call gets a
    Control of its own over them (a job sets its own progress)."""
    made: list = []
    lock = threading.Lock()

    def make() -> Control:
        with lock:
            if not made:
                made.append(control(settings, store=store))
        base = made[0]
        return Control(base.engine, base.store, base.agents, base.registry,
                       base.registry_address)
    return make
