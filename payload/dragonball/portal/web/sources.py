"""Where the pages' data comes from: the adapters behind one small interface.

`Sources` is what a page may read (and the one action "Add device" takes); the real one,
`PortalSources`, reads the store, asks the agents over mutual TLS and the registry over
TLS. Tests give the app a fake with the same methods (``app.state.sources = Fake()``).
Errors of the agents and the registry come back as values or `SourceError`, never as a
foreign exception.
"""

from __future__ import annotations

import logging
from typing import Protocol

from dragonball.errors import DragonBallError, PortalError, Unavailable
from dragonball.portal import settings as settings_mod
from dragonball.portal.enrollment import join_instructions
from dragonball.portal.portals import join_arguments
from dragonball.shared import fingerprints
from dragonball.portal.store import Device, Store

log = logging.getLogger(__name__)

#: Pages poll the agents: an agent that does not answer must not hold a page for long.
AGENT_TIMEOUT_S = 3.0
REGISTRY_LIMIT = 1000


class SourceError(PortalError, Unavailable):
    """A page's data cannot be had (the registry does not answer, a file is missing)."""


class Sources(Protocol):
    """What the pages read, and the actions they take (tests pass a fake)."""

    def devices(self) -> list[Device]: ...

    def metrics(self, addresses: list[str]) -> dict:
        """{address: the agent's metrics dict, or the exception saying why not}."""

    def images(self) -> dict[str, list[str]]:
        """{repository: [tags]} of the registry; SourceError when it cannot be read."""

    def image_holdings(self) -> dict[str, dict]:
        """{hostname: orchestrator.images.holdings' row}: the applied apps' images each
        server holds; {} when no app is applied; SourceError when Swarm cannot be read."""

    def events(self, before_id: int | None, limit: int, kind_prefix: str = "") -> list[dict]:
        """The audit log newest first, below `before_id`, the kinds starting with
        `kind_prefix` ("upgrade.": the upgrades' history)."""

    def nodes(self) -> list:
        """The Swarm's nodes (dragonball.swarm.Node: their labels say which DragonBall and
        release each server runs); SourceError when the Swarm cannot be read."""

    def services(self) -> list:
        """Every app's services as a tree (views_apps.TreeRow: `app`, `name`, `state`,
        `depth`...) for the dashboard; SourceError when the cluster cannot be read."""

    def new_enrollment(self, ttl_s: float, actor: str, client: str) -> dict:
        """A one-time code and the join instructions (cli.join_instructions' dict)."""

    def certificates(self) -> dict:
        """{certificates, warnings[, note]}: portal.certificates.report's answer."""


class PortalSources:
    """The real sources of a running portal."""

    def __init__(self, store: Store, settings: settings_mod.Settings,
                 agent_files: dict | None = None, control_factory=None) -> None:
        """`agent_files`: AgentClient's ca/cert/key paths when not the portal's defaults;
        `control_factory`: the orchestrator's Control maker (services; none: no services)."""
        self.store, self.settings = store, settings
        self.agent_files = agent_files or {}
        self.control_factory = control_factory

    def devices(self) -> list[Device]:
        return self.store.devices()

    def metrics(self, addresses: list[str]) -> dict:
        from dragonball.agent_client import AgentClient, AgentError
        from dragonball.portal.identity_pins import IdentityPins
        try:
            client = AgentClient(timeout=AGENT_TIMEOUT_S, pins=IdentityPins(self.store),
                                 **self.agent_files)
        except AgentError as e:  # the portal's client certificate is missing
            return {address: e for address in addresses}
        with client:
            return client.metrics_of(addresses)

    def images(self) -> dict[str, list[str]]:
        from dragonball.registry.client import RegistryClient, RegistryError
        try:
            user, password = settings_mod.read_registry_credentials(
                self.settings.registry_credentials)
            with RegistryClient(self.settings.registry, self.settings.ca_cert, user,
                                password) as registry:
                return {name: registry.tags(name)
                        for name in registry.catalog(REGISTRY_LIMIT)}
        except (RegistryError, settings_mod.SettingsError) as e:
            raise SourceError(e.message, e.hint) from e

    def image_holdings(self) -> dict[str, dict]:
        from dragonball.orchestrator.state import AppStore
        if self.control_factory is None or not AppStore(self.store).apps():
            return {}
        try:
            return {row["server"]: row for row in self.control_factory().image_holdings()}
        except DragonBallError as e:
            raise SourceError(f"the images per server cannot be read: {e.message}",
                              e.hint) from e

    def events(self, before_id: int | None, limit: int, kind_prefix: str = "") -> list[dict]:
        return self.store.events_before(before_id, limit, kind_prefix)

    def nodes(self) -> list:
        from dragonball.swarm import Swarm, SwarmError
        try:
            return Swarm(self.settings.docker_socket).nodes()
        except SwarmError as e:
            raise SourceError(f"the servers' versions cannot be read: {e.message}",
                              e.hint) from e

    def services(self) -> list:
        from dragonball.orchestrator.state import AppStore
        from dragonball.portal.web.views_apps import tree
        apps = AppStore(self.store).apps()
        if self.control_factory is None or not apps:
            return []   # no app: nothing to ask the cluster
        try:
            control = self.control_factory()
            return [row for app in apps for row in tree(app, control.status(app))]
        except DragonBallError as e:
            raise SourceError(f"the services cannot be read: {e.message}", e.hint) from e

    def certificates(self) -> dict:
        from dragonball.portal import certificates
        from dragonball.swarm import Swarm
        return certificates.report(self.settings.tls_cert, Swarm(self.settings.docker_socket),
                                   self.settings.hostname,
                                   identities=self.store.device_identities())

    def new_enrollment(self, ttl_s: float, actor: str, client: str) -> dict:
        try:
            with open(self.settings.ca_cert, "rb") as f:
                fingerprint = fingerprints.of_certificate(f.read())
        except OSError as e:
            raise SourceError(f"cannot read the cluster CA {self.settings.ca_cert}: "
                              f"{e.strerror}", "run the portal install again") from e
        code, record = self.store.create_code(ttl_s, actor=actor, client=client)
        return join_instructions(self.settings, code, record.expires, fingerprint,
                                 join_arguments(self.settings))
