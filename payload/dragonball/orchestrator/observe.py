"""Observe: what a command's plan needs of the cluster, read once into a pure value.

    observation = Observer(swarm, registry, "10.0.0.5:5000").observe("notes", images)
    spec = app_spec.load(text, file, observation.checks())     # checked against the world
    deployment = planning.deploy(spec, observation)             # pure: no engine call

An `Observation` holds the Swarm's nodes, the app's services as they are (by unit name:
the spec's, or a slot's, orchestrator.slotting),
the image ID of each image the spec names in the registry (what its tasks run: named by ID,
a server starts them from what it holds, orchestrator.images) with the reference a server
pulls it by (registry@digest), and, for `status`, each service's tasks. One-shot jobs'
Swarm services (kind `job`) are apart from the services (`jobs`), with the portal's record
of each job's last run and the revision its parameters will run with (`runs`,
`job_params`: the Control adds them from its store, orchestrator.jobs). The planner reads
only this; the executor may look again while it rolls out (health waits are execution,
not planning).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Mapping

import dragonball

from dragonball.app import document
from dragonball.app.checks import normal_image
from dragonball.app.model import Observed
from dragonball.errors import AppError, Unavailable
from dragonball.orchestrator import naming
from dragonball.registry.client import RegistryUnreachable
from dragonball.swarm import Node, ServiceState

log = logging.getLogger(__name__)

#: The image of a moving address's keepalived (orchestrator.address, built with the release)
ADDRESS_IMAGE = f"dragonball/keepalived:{dragonball.__version__}"


@dataclass(frozen=True)
class Observation:
    """The cluster as one command saw it (pure data; tests build it by hand)."""

    app: str
    nodes: tuple = ()                                        # Node, each server
    services: Mapping[str, ServiceState] = field(default_factory=dict)  # unit name ->
    pinned: Mapping[str, str] = field(default_factory=dict)  # spec image -> its image ID
    tasks: Mapping[str, tuple] = field(default_factory=dict)  # unit name -> its Tasks
    remembered: Mapping[str, str] = field(default_factory=dict)  # slot -> server (store)
    addresses: Mapping[str, ServiceState] = field(default_factory=dict)  # service -> its
    #                                            moving address's keepalived (orchestrator.address)
    taken: Mapping[str, str] = field(default_factory=dict)  # other apps' addresses -> app/service
    ports: Mapping[tuple, list] = field(default_factory=dict)  # other apps' published ports
    pulls: Mapping[str, str] = field(default_factory=dict)   # spec image -> registry@digest
    network: Mapping | None = None   # the app network's driver options; None: not made yet
    jobs: Mapping[str, ServiceState] = field(default_factory=dict)  # job -> its Swarm service
    runs: Mapping = field(default_factory=dict)        # job -> its last run (jobs.JobRun)
    job_params: Mapping = field(default_factory=dict)  # job -> its parameters' revision to
    #                                                    run with (None: written anew)

    def checks(self) -> Observed:
        """What the spec's checks need: images in the registry, servers, their labels and
        addresses, the other apps' moving addresses."""
        return Observed(images=frozenset(self.pinned),
                        servers=frozenset(n.hostname for n in self.nodes),
                        labels={n.hostname: dict(n.labels) for n in self.nodes},
                        addresses={n.hostname: n.address for n in self.nodes},
                        taken=dict(self.taken), ports=dict(self.ports))

    def ready_nodes(self) -> list[Node]:
        return [n for n in self.nodes if n.ready]


class ManifestUnreadable(AppError, Unavailable):
    """The registry's manifest of an image does not say its image ID."""


def _address_units(addresses: Mapping) -> dict:
    """The keepalived services of moving addresses by a name of their own (status)."""
    return {f"{name} address": state for name, state in addresses.items()}


def split_image(ref: str) -> tuple[str, str]:
    """'notes/api:0.1.0' -> ('notes/api', '0.1.0')."""
    ref = normal_image(ref)
    repository, _, tag = ref.rpartition(":")
    return repository, tag


def names_in(text: str) -> tuple[str, list[str]] | None:
    """(the app's name, the images its services and jobs name, with the keepalived image
    when a Service has an address) of a spec's text, read before its checks so the world
    can be looked up for them; None when it is not a mapping of services."""
    data = document.read(text, "").data  # bounded: the spec's own limits (safe_yaml)
    services = data.get("services") if isinstance(data, dict) else None
    if not isinstance(services, dict):
        return None
    app = data.get("app") if isinstance(data.get("app"), str) else ""
    jobs = data.get("jobs") if isinstance(data.get("jobs"), dict) else {}
    images = [s["image"] for s in [*services.values(), *jobs.values()]
              if isinstance(s, dict) and isinstance(s.get("image"), str)]
    moving = any(isinstance(s, dict) and s.get("address") for s in services.values())
    return app, images + [ADDRESS_IMAGE] * moving


class Observer:
    """Reads an Observation through the Swarm adapter and the registry client."""

    def __init__(self, swarm, registry, registry_address: str) -> None:
        self.swarm, self.registry, self.registry_address = swarm, registry, registry_address

    def observe(self, app: str, images=(), tasks: bool = False) -> Observation:
        """Nodes, the app's services and moving addresses, the pinned `images` (with the
        keepalived image among them, the other apps' addresses too: what apply checks);
        each service's tasks too when `tasks`."""
        every = self.swarm.services() if app else []    # one listing: this app's and others'
        listed = [s for s in every if s.labels.get(naming.APP_LABEL) == app]
        services, addresses = self.by_unit(listed), self.by_address(listed)
        jobs = self.by_job(listed)
        found = {name: tuple(self.swarm.tasks(state.name))
                 for name, state in {**services, **_address_units(addresses)}.items()
                 } if tasks else {}
        taken = self.taken(app, every) if ADDRESS_IMAGE in images else {}
        pinned, pulls = self.pin(images)
        network = self.swarm.network_options(naming.network(app)) if app else None
        nodes = tuple(self.swarm.nodes())
        return Observation(app, nodes, services, pinned, found, addresses=addresses,
                           taken=taken, pulls=pulls, network=network,
                           ports=self.ports_of_others(app, nodes, every), jobs=jobs)

    def services(self, app: str) -> dict:
        """unit name -> ServiceState of the app's services on Swarm (by their labels): the
        spec's name, or a slot's (`store-2`, orchestrator.slotting)."""
        return self.by_unit(self.swarm.services({naming.APP_LABEL: app}))

    @staticmethod
    def by_unit(listed) -> dict:
        """unit name -> ServiceState of the services among `listed` (not the jobs)."""
        found = {}
        for state in listed:
            if state.labels.get(naming.KIND_LABEL) == naming.JOB_KIND:
                continue
            name = state.labels.get(naming.SLOT_LABEL) or state.labels.get(naming.SERVICE_LABEL)
            if name:
                found[name] = state
        return found

    @staticmethod
    def by_job(listed) -> dict:
        """job name -> the ServiceState of its Swarm service (its last run)."""
        return {s.labels[naming.SERVICE_LABEL]: s for s in listed
                if s.labels.get(naming.KIND_LABEL) == naming.JOB_KIND
                and s.labels.get(naming.SERVICE_LABEL)}

    @staticmethod
    def by_address(listed) -> dict:
        """spec service -> the ServiceState of its moving address's keepalived."""
        return {s.labels[naming.ADDRESS_LABEL]: s for s in listed
                if s.labels.get(naming.ADDRESS_LABEL)}

    def taken(self, app: str, every=None) -> dict:
        """The moving addresses of every other app: address -> "app/service" (`every`: the
        services as listed already)."""
        return {s.labels.get(naming.ADDRESS_IP_LABEL, ""):
                f"{s.labels.get(naming.APP_LABEL)}/{s.labels[naming.ADDRESS_LABEL]}"
                for s in (self.swarm.services() if every is None else every)
                if s.labels.get(naming.ADDRESS_LABEL) and s.labels.get(naming.APP_LABEL) != app}

    def ports_of_others(self, app: str, nodes, every) -> dict:
        """(port, protocol) -> [("app/service", where)] of every other app's published
        ports: `where`, the hostnames its running tasks are on (host mode), or None for an
        ingress port (every server)."""
        hostnames = {n.id: n.hostname for n in nodes}
        found: dict = {}
        for state in every:
            other = state.labels.get(naming.APP_LABEL)
            if not other or other == app or not state.ports:
                continue
            holder = f"{other}/{state.labels.get(naming.SERVICE_LABEL) or state.name}"
            on = frozenset(hostnames.get(t.node_id, t.node_id)
                           for t in self.swarm.tasks(state.name) if t.desired_state == "running")
            for port, protocol, mode in state.ports:
                found.setdefault((port, protocol), []).append(
                    (holder, None if mode == "ingress" else on))
        return found

    def pin(self, images) -> tuple[dict, dict]:
        """({spec image: its image ID}, {spec image: `<registry>/<repository>@<digest>`}),
        for those the registry has: the ID is its manifest's config digest. While the
        registry (on the first server) does not answer, a manager still starts and changes
        what is installed: the IDs of the images this engine loaded from its own .bin
        (every server holds the release's, installer/images.py), with no pull reference."""
        try:
            return self.pin_in_registry(images)
        except RegistryUnreachable as e:
            log.warning("the registry does not answer (%s): images pinned by what this "
                        "server holds", e.message)
            found = {image: self.swarm.local_image_id(image) for image in sorted(set(images))}
            return {image: found_id for image, found_id in found.items() if found_id}, {}

    def pin_in_registry(self, images) -> tuple[dict, dict]:
        pinned, pulls = {}, {}
        for image in sorted(set(images)):
            repository, tag = split_image(image)
            digest = self.registry.tag_digest(repository, tag)
            if digest:
                manifest, _ = self.registry.get_manifest(repository, digest)
                pinned[image] = config_digest(manifest, image)
                pulls[image] = f"{self.registry_address}/{repository}@{digest}"
        return pinned, pulls


def config_digest(manifest: bytes, image: str) -> str:
    """The image ID a manifest's config names (pure); ManifestUnreadable when it has none."""
    try:
        digest = json.loads(manifest)["config"]["digest"]
    except (ValueError, KeyError, TypeError) as e:
        raise ManifestUnreadable(f"the registry's manifest of {image} names no config "
                                 f"({e!r})", "push the image again: dragonball images "
                                 "push") from e
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        raise ManifestUnreadable(f"the registry's manifest of {image} names no sha256 config",
                                 "push the image again: dragonball images push")
    return digest
