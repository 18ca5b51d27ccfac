"""The portal's wiring, in one place: which Swarm adapter, store, agents and registry the
enrollment API and the application layer work with on this portal, made from its settings."""

from __future__ import annotations

import threading
from collections.abc import Callable

from dragonball.agent_client import AgentClient
from dragonball.orchestrator.control import Control
from dragonball.orchestrator.state import AppStore
from dragonball.portal.identity_pins import IdentityPins
from dragonball.portal.settings import Settings, read_registry_credentials
from dragonball.portal.statelog import open_store
from dragonball.portal.store import Store
from dragonball.registry.client import RegistryClient
from dragonball.swarm import Swarm


def swarm(settings: Settings) -> Swarm:
    """The portal's one Swarm adapter: its engine's socket, logged in to its registry (in
    memory, when a service is first created or updated) with the pull account: that is what
    the services carry to every server."""
    username, password = read_registry_credentials(settings.registry_credentials, "pull")
    return Swarm(settings.docker_socket, (settings.registry, username, password))


def control(settings: Settings, store: Store | None = None, progress=None,
            wait_s: float = 300.0, engine: Swarm | None = None) -> Control:
    """The portal's own Control: its Swarm adapter (`engine`, else a new one), store,
    agents and registry."""
    username, password = read_registry_credentials(settings.registry_credentials)
    registry = RegistryClient(settings.registry, settings.ca_cert, username, password,
                              pull=read_registry_credentials(settings.registry_credentials,
                                                             "pull"))
    store = store or open_store(settings)
    return Control(engine or swarm(settings), AppStore(store),
                   AgentClient(pins=IdentityPins(store)), registry,
                   settings.registry, progress=progress, wait_s=wait_s)


def control_factory(store: Store, settings: Settings,
                    engine: Swarm | None = None) -> Callable[[], Control]:
    """The portal's Control maker: its Swarm adapter (`engine`: the one the enrollment API
    uses too), store, agents and registry, made once (credentials read, schema checked)
    and shared; each call gets a Control of its own over them (a job sets its own
    progress)."""
    made: list = []
    lock = threading.Lock()

    def make() -> Control:
        with lock:
            if not made:
                made.append(control(settings, store=store, engine=engine))
        base = made[0]
        return Control(base.engine, base.store, base.agents, base.registry,
                       base.registry_address)
    return make
