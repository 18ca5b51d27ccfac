"""The one Swarm adapter: the docker SDK over the local engine's socket (a Swarm manager).

    swarm = Swarm("/var/run/docker.sock", registry=("10.0.0.5:5000", user, password))
    swarm.nodes()                     # [Node]
    swarm.update_node(node_id, labels={"zone": "a", "old": None}, promote=True)
    swarm.services({"io.dragonball.app": "notes"})   # [ServiceState]
    swarm.tasks("notes_api")          # [Task]
    swarm.create_service(spec); swarm.update_service(name, spec); swarm.scale(name, 0)

The low-level `APIClient` with a pinned API version (1.41, Docker 20.10: the oldest engine we
bundle or accept), so creating it does not connect (MACHINE.md). It logs in to the portal's
registry in memory, once, before the first service it creates or updates, so the servers get
the registry credential with the service (what `--with-registry-auth` does): nothing is
written to disk, and a registry that is down does not stop node or token calls.
Every docker or socket exception becomes a `SwarmError` here (`raise ... from e`); what
comes back is a domain type (dragonball.swarm.model), never inspect JSON.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time

from dragonball.swarm.model import (Node, ServiceState, SwarmError, Task, node_of, parse_time,
                                    service_of, task_of)

log = logging.getLogger(__name__)

API_VERSION = "1.41"
TIMEOUT_S = 30
UPDATE_PATIENCE_S = 30.0
HINT = "see 'docker service ls' and 'docker node ls' on the portal (a Swarm manager)"
# Both pass by themselves: another update bumped the node's version in between, or the
# node is being promoted and raft does not list it as a manager yet (two servers that
# join at once: the first one's report promotes both while the second one reports).
_TRANSIENT = ("update out of sequence", "can't find manager in raft memberlist")


_ENDED_TASK_STATES = ("complete", "shutdown", "failed", "rejected", "orphaned", "remove")


def transient_update_error(message: str) -> bool:
    """Whether a node update failed for a reason that passes by itself (pure)."""
    return any(fragment in message for fragment in _TRANSIENT)


def merged_node_spec(spec: dict, labels: dict | None, promote: bool,
                     availability: str | None = None, demote: bool = False) -> dict:
    """A node's spec with `labels` set (a None value removes the label), with `promote`
    the manager role (`demote`: the worker role), with `availability` ("active", "drain")
    that availability (pure)."""
    merged = dict(spec)
    current = dict(spec.get("Labels") or {})
    for key, value in (labels or {}).items():
        if value is None:
            current.pop(key, None)
        else:
            current[key] = value
    merged["Labels"] = current
    if promote:
        merged["Role"] = "manager"
    if demote:
        merged["Role"] = "worker"
    if availability:
        merged["Availability"] = availability
    return merged


class Swarm:
    """The local engine's Swarm (docs/orchestrator.md "On Swarm"; docs/enrollment.md)."""

    def __init__(self, socket_path: str = "/var/run/docker.sock",
                 registry: tuple | None = None, api=None,
                 clock=time.monotonic, sleep=time.sleep) -> None:
        """`registry`: (address, username, password) to log in to, in memory; `api`: an
        APIClient-shaped object (tests), else one is made on first use."""
        self._url = f"unix://{socket_path}"
        self._registry = registry
        self._client, self._logged_in = api, False
        self._lock = threading.Lock()
        self._clock, self._sleep = clock, sleep

    # -- the boundary: every foreign exception is translated here ---------------------------
    def _api(self):
        with self._lock:
            if self._client is None:
                import docker  # only what talks to the engine needs the SDK
                self._client = docker.APIClient(base_url=self._url, version=API_VERSION,
                                                timeout=TIMEOUT_S)
            return self._client

    def _call(self, what: str, call, missing_ok: bool = False):
        """`call(api)`, its errors as SwarmError; `missing_ok`: a 404 gives None."""
        import docker
        try:
            return call(self._api())
        except docker.errors.NotFound as e:
            if missing_ok:
                return None
            raise SwarmError(f"the engine could not {what}: {e.explanation or 'not found'}",
                             HINT) from e
        except docker.errors.APIError as e:
            raise SwarmError(f"the engine could not {what}: {e.explanation or e}", HINT) from e
        except (docker.errors.DockerException, OSError) as e:
            raise SwarmError(f"the engine could not {what}: {e}",
                             "run this on the portal (a Swarm manager), as root; check "
                             "that Docker runs there") from e

    def local_image_id(self, reference: str) -> str | None:
        """The ID of the image this engine holds under `reference` (`notes/api:0.1.0`, as
        every server loaded it from its .bin), or None."""
        found = self._call(f"inspect the image {reference}",
                           lambda api: api.inspect_image(reference), missing_ok=True)
        return (found or {}).get("Id") or None

    def _login(self) -> None:
        """Log in to the registry once, in memory (the credential goes with services)."""
        if self._registry is None or self._logged_in:
            return
        address, username, password = self._registry
        self._call(f"log in to the registry {address}", lambda api: api.login(
            username, password, registry=address, reauth=True))
        self._logged_in = True

    # -- the Swarm itself --------------------------------------------------------------------
    def join_token(self) -> str:
        """The worker join token; SwarmError when this engine is not a manager."""
        info = self._call("give the Swarm's join token", lambda api: api.inspect_swarm())
        if not info or not info.get("JoinTokens"):
            raise SwarmError("this engine is not a Swarm manager",
                             "run the portal install again: it initializes the Swarm")
        return info["JoinTokens"]["Worker"]

    def rotate_join_tokens(self) -> None:
        """New worker and manager join tokens (`docker swarm join-token --rotate`): the old
        ones join nothing from now on; the nodes already in are not touched."""
        def rotate(api):
            info = api.inspect_swarm()
            api.update_swarm(version=info["Version"]["Index"], swarm_spec=info["Spec"],
                             rotate_worker_token=True, rotate_manager_token=True)
        self._call("rotate the Swarm's join tokens", rotate)

    def ca_config(self) -> tuple[datetime.timedelta, str]:
        """(the node certificates' lifetime, the Swarm root CA's PEM): `GET /swarm`."""
        info = self._call("inspect the Swarm", lambda api: api.inspect_swarm()) or {}
        ns = ((info.get("Spec") or {}).get("CAConfig") or {}).get("NodeCertExpiry") or 0
        trust_root = (info.get("TLSInfo") or {}).get("TrustRoot") or ""
        return datetime.timedelta(microseconds=ns // 1000), trust_root

    def remove_node(self, node_id: str) -> None:
        """`docker node rm --force`: a node that can never come back with its identity."""
        self._call(f"remove node {node_id}", lambda api: api.remove_node(node_id, force=True),
                   missing_ok=True)

    def local_node_id(self) -> str:
        """This engine's own Swarm node ID; "" when it is in no Swarm."""
        info = self._call("read the engine's info", lambda api: api.info()) or {}
        return (info.get("Swarm") or {}).get("NodeID") or ""

    def now(self) -> datetime.datetime:
        """The engine's clock, to tell tasks of this rollout from older ones."""
        return parse_time(self._call("read the engine's clock",
                                     lambda api: api.info())["SystemTime"])

    # -- nodes -------------------------------------------------------------------------------
    def node(self, node_id: str) -> Node | None:
        data = self._call(f"inspect node {node_id}", lambda api: api.inspect_node(node_id),
                          missing_ok=True)
        return node_of(data) if data else None

    def nodes(self) -> list[Node]:
        return [node_of(n) for n in self._call("list the Swarm's nodes",
                                               lambda api: api.nodes()) or []]

    def update_node(self, node_id: str, labels: dict | None = None,
                    promote: bool = False, availability: str | None = None,
                    demote: bool = False) -> bool:
        """Set node labels (None removes one), with `promote` make it a manager, with
        `availability` drain it or make it active; whether anything changed. A version
        race or a promotion raft has not caught up with is tried again for up to
        UPDATE_PATIENCE_S."""
        deadline = self._clock() + UPDATE_PATIENCE_S
        while True:
            try:
                return self._update_node_once(node_id, labels, promote, availability, demote)
            except SwarmError as e:
                if not transient_update_error(e.message) or self._clock() >= deadline:
                    raise
                log.info("node %s: %s; trying again", node_id, e.message)
                self._sleep(0.5)

    def _update_node_once(self, node_id: str, labels: dict | None, promote: bool,
                          availability: str | None, demote: bool = False) -> bool:
        data = self._call(f"inspect node {node_id}", lambda api: api.inspect_node(node_id),
                          missing_ok=True)
        if data is None:
            raise SwarmError(f"node {node_id} is not in this Swarm",
                             "see 'docker node ls' on the portal")
        spec = merged_node_spec(data["Spec"], labels, promote, availability, demote)
        if spec == data["Spec"]:
            return False
        self._call(f"update node {node_id}", lambda api: api.update_node(
            node_id, data["Version"]["Index"], spec))
        log.info("node %s updated (labels %s%s%s)", node_id, sorted(labels or {}),
                 ", promoted to manager" if promote else ", demoted" if demote else "",
                 f", {availability}" if availability else "")
        return True

    # -- networks ----------------------------------------------------------------------------
    def ensure_network(self, spec: dict) -> None:
        """Create the network `spec` (Name, Driver, Attachable, Labels, Options) unless it
        exists."""
        name = spec["Name"]

        def ensure(api):
            if any(n["Name"] == name for n in api.networks(names=[name])):
                return
            api.create_network(name, driver=spec["Driver"], attachable=spec["Attachable"],
                               labels=spec["Labels"], options=spec.get("Options") or None,
                               check_duplicate=True)
            log.info("network %s created", name)
        self._call(f"create the overlay network {name}", ensure)

    def network_options(self, name: str) -> dict | None:
        """The driver options of the network `name` (`{"encrypted": ""}`), None when there
        is no such network."""
        def options(api):
            found = [n for n in api.networks(names=[name]) if n["Name"] == name]
            return dict(found[0].get("Options") or {}) if found else None
        return self._call(f"list the network {name}", options)

    def remove_network(self, name: str) -> None:
        self._call(f"remove network {name}", lambda api: api.remove_network(name),
                   missing_ok=True)

    # -- services ----------------------------------------------------------------------------
    def services(self, labels: dict | None = None) -> list[ServiceState]:
        """The services carrying every one of `labels`, with their task counts."""
        wanted = [f"{k}={v}" for k, v in sorted((labels or {}).items())]
        found = self._call("list the services", lambda api: api.services(
            filters={"label": wanted} if wanted else None, status=True))
        return [service_of(s) for s in found or []]

    def service(self, name: str) -> ServiceState | None:
        data = self._inspect_service(name)
        return service_of(data) if data else None

    def _inspect_service(self, name: str) -> dict | None:
        return self._call(f"inspect service {name}", lambda api: api.inspect_service(name),
                          missing_ok=True)

    def create_service(self, spec: dict) -> str:
        """Create the service of `spec` (the Engine API's ServiceSpec); its ID. A job's
        (Mode ReplicatedJob) has no UpdateConfig: Swarm has none for jobs."""
        self._login()
        return self._call(f"create service {spec['Name']}", lambda api: api.create_service(
            spec["TaskTemplate"], name=spec["Name"], labels=spec["Labels"], mode=spec["Mode"],
            update_config=spec.get("UpdateConfig"),
            endpoint_spec=spec.get("EndpointSpec")))["ID"]

    def update_service(self, name: str, spec: dict, force: bool = False) -> None:
        """Put `spec` in force on the service `name`; `force`: new tasks even if nothing
        changed (a restart)."""
        current = self._inspect_service(name)
        if current is None:
            raise SwarmError(f"the engine could not update service {name}: not found", HINT)
        task = dict(spec["TaskTemplate"])
        old_force = current["Spec"].get("TaskTemplate", {}).get("ForceUpdate", 0)
        task["ForceUpdate"] = old_force + 1 if force else old_force
        self._login()
        self._call(f"update service {name}", lambda api: api.update_service(
            current["ID"], current["Version"]["Index"], task_template=task,
            name=spec["Name"], labels=spec["Labels"], mode=spec["Mode"],
            update_config=spec["UpdateConfig"], endpoint_spec=spec["EndpointSpec"]))

    def scale(self, name: str, replicas: int) -> None:
        """Ask for `replicas` tasks (nothing when it has them; a service that does not
        exist is stopped already)."""
        def scale(api):
            data = api.inspect_service(name)
            spec = data["Spec"]
            if spec.get("Mode", {}).get("Replicated", {}).get("Replicas") == replicas:
                return
            api.update_service(data["ID"], data["Version"]["Index"],
                               task_template=spec["TaskTemplate"], name=spec["Name"],
                               labels=spec.get("Labels"),
                               mode={"Replicated": {"Replicas": replicas}},
                               update_config=spec.get("UpdateConfig"),
                               endpoint_spec=spec.get("EndpointSpec"))
        self._call(f"scale service {name} to {replicas}", scale, missing_ok=True)

    def remove_service(self, name: str) -> None:
        self._call(f"remove service {name}", lambda api: api.remove_service(name),
                   missing_ok=True)

    def running_on(self, node_id: str) -> int:
        """How many tasks Swarm still runs, or means to run, on the node."""
        found = self._call(f"list the tasks on node {node_id}", lambda api: api.tasks(
            filters={"node": node_id, "desired-state": "running"}), missing_ok=True)
        return sum(1 for t in found or []
                   if t.get("Status", {}).get("State") not in _ENDED_TASK_STATES)

    def tasks(self, service: str) -> list[Task]:
        """Every task Swarm still lists of the service (its name or ID); none when there
        is no such service (the engine answers 404 to the filter)."""
        found = self._call(f"list the tasks of {service}",
                           lambda api: api.tasks(filters={"service": service}), missing_ok=True)
        return [task_of(t) for t in found or []]
