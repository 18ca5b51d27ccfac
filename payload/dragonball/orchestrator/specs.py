"""Swarm service specs from an app spec (pure): the Engine API's JSON, as dicts.

    spec = service_spec(app, "api", app.services["api"], image="10.0.0.5:5000/notes/api@sha256:..")

Every choice here is one of DESIGN.md's settled ones: endpoint_mode dnsrr and host-mode
ports (kernels without IPVS), the overlay network with the spec name as alias, placement
constraints, storage/ and log/ volumes on the task's server, the portal-owned parameters
bound read-only from the host.
"""

from __future__ import annotations

import hashlib
import json
import re

from dragonball.app.model import AppSpec, ServiceSpec
from dragonball.orchestrator import naming

STOP_GRACE_NS = 30 * 10**9     # the supervisor's stop scripts, then its leftovers
#: The module's status action as the health check, every 5 s (the base image says 10 s):
#: Swarm reports a task running only after its first healthy check, so this interval is
#: most of each service's start time; a check is one short python3 run (~60 ms of CPU).
HEALTH = {"Test": ["CMD", "/opt/dragon_ball/bin/run.sh", "status"], "Interval": 5 * 10**9,
          "Timeout": 90 * 10**9, "StartPeriod": 120 * 10**9, "Retries": 3}
RESTART_DELAY_NS = 5 * 10**9
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def memory_bytes(value: int | str | None) -> int | None:
    """512k, 256m, 2g or a number of bytes (already checked by the model's pattern)."""
    if value is None or isinstance(value, int):
        return value
    number, unit = re.fullmatch(r"([0-9]+)([kmgKMG]?)", value).groups()
    return int(number) * _UNITS[unit.lower()]


def constraints(app: str, name: str, service: ServiceSpec) -> list[str]:
    """`placement.servers` (any of them: a node label the orchestrator sets on each, since
    Swarm ANDs constraints) and `placement.labels` (all of them)."""
    found = []
    if service.placement.servers:
        found.append(f"node.labels.{naming.placement_label(app, name)}==true")
    found += [f"node.labels.{key}=={value}"
              for key, value in sorted(service.placement.labels.items())]
    return found


def mounts(app: str, name: str, service: ServiceSpec) -> list[dict]:
    """The parameters (read-only from the host) and, with `storage: true`, storage/ and log/
    as volumes on the task's server, one per task slot."""
    found = [{"Type": "bind", "Source": naming.params_dir(app, name),
              "Target": naming.PARAMS_MOUNT, "ReadOnly": True}]
    if service.storage:
        module = service.module or naming.module_of(service.image)
        for what in ("storage", "log"):
            found.append({"Type": "volume", "Source": naming.volume(app, name, what),
                          "Target": f"{naming.SERVICE_ROOT}/{module}/{what}",
                          "VolumeOptions": {"Labels": {naming.APP_LABEL: app,
                                                       naming.SERVICE_LABEL: name}}})
    return found


def labels(app: str, name: str, service: ServiceSpec) -> dict:
    return {naming.APP_LABEL: app, naming.SERVICE_LABEL: name, naming.KIND_LABEL: service.kind}


def service_spec(app: str, name: str, service: ServiceSpec, image: str,
                 replicas: int | None = None) -> dict:
    """The ServiceSpec JSON of `name`; `image` is the reference the servers pull (the
    registry's, pinned by digest); `replicas` overrides the spec's (0: stopped)."""
    env = [f"DRAGONBALL_APP={app}", f"DRAGONBALL_SERVICE={name}",
           f"DRAGONBALL_PARAMS_FROM={naming.PARAMS_FILE}", "DRAGONBALL_PARAMS_OWNER=portal"]
    if service.module:
        env.append(f"DRAGONBALL_MODULE={service.module}")
    limits = {}
    if service.resources.cpus:
        limits["NanoCPUs"] = int(service.resources.cpus * 1e9)
    if service.resources.memory is not None:
        limits["MemoryBytes"] = memory_bytes(service.resources.memory)
    ports = [{"Protocol": p.protocol, "TargetPort": p.target, "PublishedPort": p.published,
              "PublishMode": "host"} for p in service.ports]
    task = {
        "ContainerSpec": {"Image": image, "Labels": labels(app, name, service), "Env": env,
                          "Mounts": mounts(app, name, service),
                          "Hostname": f"{name}-{{{{.Task.Slot}}}}",
                          "StopGracePeriod": STOP_GRACE_NS, "Healthcheck": HEALTH},
        "Resources": {"Limits": limits} if limits else {},
        "RestartPolicy": {"Condition": "any", "Delay": RESTART_DELAY_NS},
        "Placement": {"Constraints": constraints(app, name, service)},
        "Networks": [{"Target": naming.network(app), "Aliases": [name]}],
    }
    spec = {
        "Name": naming.swarm_service(app, name),
        "Labels": {**labels(app, name, service),
                   naming.NEEDS_LABEL: ",".join(service.needs())},
        "TaskTemplate": task,
        "Mode": {"Replicated": {"Replicas": service.replicas if replicas is None
                                else replicas}},
        # host-mode ports cannot hold two tasks on one server: stop the old one first
        "UpdateConfig": {"Parallelism": 1, "Order": "stop-first" if ports else "start-first",
                         "FailureAction": "pause", "Monitor": 5 * 10**9},
        "EndpointSpec": {"Mode": "dnsrr", "Ports": ports},
    }
    spec["Labels"][naming.SPEC_LABEL] = spec_hash(spec)
    return spec


def spec_hash(spec: dict) -> str:
    """What a Swarm service was made from, without its replica count (scaling is not a
    change of what runs) and without this label itself."""
    shown = {k: v for k, v in spec.items() if k != "Mode"}
    shown["Labels"] = {k: v for k, v in spec.get("Labels", {}).items()
                       if k != naming.SPEC_LABEL}
    return hashlib.sha256(json.dumps(shown, sort_keys=True).encode()).hexdigest()[:16]


def network_spec(app: str) -> dict:
    """The app's overlay network: attachable so an operator can debug with a container."""
    return {"Name": naming.network(app), "Driver": "overlay", "Attachable": True,
            "Labels": {naming.APP_LABEL: app}}


def all_specs(spec: AppSpec, images: dict) -> dict:
    """name -> its Swarm service spec; `images`: spec image -> pinned registry reference."""
    return {name: service_spec(spec.app, name, service, images[service.image])
            for name, service in spec.services.items()}
