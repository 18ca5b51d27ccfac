"""The Swarm as the orchestrator sees it: services, tasks, nodes, networks (adapter).

The docker SDK over the portal's local socket (a manager), with a pinned API version so
creating the client does not connect (MACHINE.md). It logs in to the portal's registry in
memory so creating or updating a service sends the registry credential to the servers
(what `--with-registry-auth` does); nothing is written to disk.
"""

from __future__ import annotations

import dataclasses
import logging
import threading

from dragonball.errors import Unavailable
from dragonball.orchestrator import naming

log = logging.getLogger(__name__)

API_VERSION = "1.41"
TIMEOUT_S = 30


class EngineError(Unavailable):
    """The portal's engine refused or could not answer a Swarm request."""


@dataclasses.dataclass(frozen=True)
class NodeInfo:
    id: str
    hostname: str
    address: str
    ready: bool
    labels: dict


def node_info(data: dict) -> NodeInfo:
    spec, status = data.get("Spec", {}), data.get("Status", {})
    return NodeInfo(id=data["ID"], hostname=data.get("Description", {}).get("Hostname", ""),
                    address=status.get("Addr", ""), ready=status.get("State") == "ready",
                    labels=dict(spec.get("Labels") or {}))


class SwarmEngine:
    """What the orchestrator asks of the engine; tests of the rollout logic give a fake."""

    def __init__(self, socket_path: str = "/var/run/docker.sock",
                 registry: tuple | None = None) -> None:
        """`registry`: (address, username, password) to log in to, in memory."""
        self._url = f"unix://{socket_path}"
        self._registry = registry
        self._client = None
        self._lock = threading.Lock()

    def _api(self):
        with self._lock:
            if self._client is None:
                import docker
                client = docker.APIClient(base_url=self._url, version=API_VERSION,
                                          timeout=TIMEOUT_S)
                if self._registry:
                    address, username, password = self._registry
                    try:
                        client.login(username, password, registry=address, reauth=True)
                    except docker.errors.APIError as e:
                        raise EngineError(f"the engine could not log in to the registry "
                                          f"{address}: {e.explanation or e}",
                                          "check the registry runs on the portal "
                                          "(docker ps) and its credential file") from e
                self._client = client
            return self._client

    def _call(self, what: str, call, missing_ok: bool = False):
        import docker
        try:
            return call(self._api())
        except docker.errors.NotFound:
            if missing_ok:
                return None
            raise EngineError(f"the engine could not {what}: not found",
                              "see 'docker service ls' on the portal") from None
        except docker.errors.APIError as e:
            raise EngineError(f"the engine could not {what}: {e.explanation or e}",
                              "see 'docker service ls' and 'docker node ls' on the portal") from e
        except (docker.errors.DockerException, OSError) as e:
            raise EngineError(f"the engine could not {what}: {e}",
                              "run this on the portal (a Swarm manager), as root") from e

    # -- nodes ----------------------------------------------------------------------------
    def nodes(self) -> list[NodeInfo]:
        return [node_info(n) for n in self._call("list the Swarm's nodes",
                                                 lambda api: api.nodes())]

    def set_node_label(self, node_id: str, key: str, value: str | None) -> None:
        """Set (or, with None, remove) one label of a node."""
        def update(api):
            data = api.inspect_node(node_id)
            spec = dict(data["Spec"])
            labels = dict(spec.get("Labels") or {})
            if value is None:
                if key not in labels:
                    return
                labels.pop(key)
            elif labels.get(key) == value:
                return
            else:
                labels[key] = value
            spec["Labels"] = labels
            api.update_node(node_id, data["Version"]["Index"], spec)
        self._call(f"label node {node_id}", update)

    # -- networks -------------------------------------------------------------------------
    def ensure_network(self, spec: dict) -> None:
        name = spec["Name"]

        def ensure(api):
            if any(n["Name"] == name for n in api.networks(names=[name])):
                return
            api.create_network(name, driver=spec["Driver"], attachable=spec["Attachable"],
                               labels=spec["Labels"], check_duplicate=True)
            log.info("network %s created", name)
        self._call(f"create the overlay network {name}", ensure)

    def remove_network(self, name: str) -> None:
        self._call(f"remove network {name}", lambda api: api.remove_network(name),
                   missing_ok=True)

    # -- services --------------------------------------------------------------------------
    def services(self, app: str) -> dict:
        """Swarm service name -> its inspect data, for the app's services."""
        found = self._call(f"list the services of {app}", lambda api: api.services(
            filters={"label": f"{naming.APP_LABEL}={app}"}))
        return {s["Spec"]["Name"]: s for s in found}

    def service(self, name: str) -> dict | None:
        return self._call(f"inspect service {name}", lambda api: api.inspect_service(name),
                          missing_ok=True)

    def create(self, spec: dict) -> str:
        def create(api):
            return api.create_service(
                spec["TaskTemplate"], name=spec["Name"], labels=spec["Labels"],
                mode=spec["Mode"], update_config=spec["UpdateConfig"],
                endpoint_spec=spec["EndpointSpec"])["ID"]
        return self._call(f"create service {spec['Name']}", create)

    def update(self, current: dict, spec: dict, force: bool = False) -> None:
        """Put `spec` in force on the service `current` (its inspect data); `force`: new
        tasks even if nothing changed (a restart)."""
        task = dict(spec["TaskTemplate"])
        old_force = current["Spec"].get("TaskTemplate", {}).get("ForceUpdate", 0)
        task["ForceUpdate"] = old_force + 1 if force else old_force
        self._call(f"update service {spec['Name']}", lambda api: api.update_service(
            current["ID"], current["Version"]["Index"], task_template=task,
            name=spec["Name"], labels=spec["Labels"], mode=spec["Mode"],
            update_config=spec["UpdateConfig"], endpoint_spec=spec["EndpointSpec"]))

    def scale(self, name: str, replicas: int) -> None:
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
        # a service never made (an apply that failed before it) is stopped already
        self._call(f"scale service {name} to {replicas}", scale, missing_ok=True)

    def remove(self, name: str) -> None:
        self._call(f"remove service {name}", lambda api: api.remove_service(name),
                   missing_ok=True)

    def tasks(self, name: str) -> list[dict]:
        return self._call(f"list the tasks of {name}",
                          lambda api: api.tasks(filters={"service": name})) or []

    def now(self) -> str:
        """The engine's clock (RFC 3339), to tell tasks of this rollout from older ones."""
        return self._call("read the engine's clock", lambda api: api.info())["SystemTime"]
