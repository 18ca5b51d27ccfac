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

from dragonball.app.model import ServiceSpec, memory_bytes
from dragonball.orchestrator import naming
from dragonball.shared import node_labels, overlay

STOP_GRACE_NS = 30 * 10**9     # the supervisor's stop scripts, then its leftovers
#: The module's status action as the health check, every 5 s (the base image says 10 s):
#: Swarm reports a task running only after its first healthy check, so this interval is
#: most of each service's start time; a check is one short python3 run (~60 ms of CPU).
HEALTH = {"Test": ["CMD", "/opt/dragon_ball/bin/run.sh", "status"], "Interval": 5 * 10**9,
          "Timeout": 90 * 10**9, "StartPeriod": 120 * 10**9, "Retries": 3}
RESTART_DELAY_NS = 5 * 10**9
#: Between two tasks of a rolling update, new task first: longer than the built-in Service's
#: default resolve_interval (5 s), so that a Service in front re-reads the addresses of its
#: backends between two replacements and never holds only stopped ones (an upgrade, a
#: rollback: no failed request).
UPDATE_DELAY_NS = 6 * 10**9
#: A backend a Service load-balances to keeps serving this long after Swarm took it out of
#: the names (its stop begins), before its stop scripts run: the Service in front re-reads
#: the addresses (every 5 s by default) and stops sending to it first, so no request is
#: sent to a backend that is closing (a write is never retried: it may have been done).
DRAIN_S = 7
DRAIN_ENV, GRACE_ENV = "DRAGONBALL_DRAIN_S", "DRAGONBALL_STOP_GRACE"
PEERS_ENV = "DRAGONBALL_PEERS"


def constraints(app: str, name: str, service: ServiceSpec,
                encrypted: bool = False) -> list[str]:
    """A server the portal enrolled (shared/node_labels.py), one that can encrypt when the
    app's network is encrypted (shared/overlay.py), `placement.servers` (any of them: a
    node label the orchestrator sets on each, since Swarm ANDs constraints) and
    `placement.labels` (all of them)."""
    found = [node_labels.ENROLLED_CONSTRAINT]
    if encrypted:
        found.append(overlay.CAPABLE_CONSTRAINT)
    if service.placement.servers:
        found.append(f"node.labels.{naming.placement_label(app, name)}==true")
    found += [f"node.labels.{key}=={value}"
              for key, value in sorted(service.placement.labels.items())]
    return found


def mounts(app: str, name: str, service: ServiceSpec, slot=None) -> list[dict]:
    """The parameters (read-only from the host) and, with `storage: true`, storage/ and log/
    as the slot's volumes on its server."""
    base = slot.service if slot else name
    found = [{"Type": "bind", "Source": naming.params_dir(app, base),
              "Target": naming.PARAMS_MOUNT, "ReadOnly": True}]
    if service.storage:
        module = service.module or naming.module_of(service.image)
        number = slot.number if slot else 1
        for what in ("storage", "log"):
            found.append({"Type": "volume", "Source": naming.volume(app, base, what, number),
                          "Target": f"{naming.SERVICE_ROOT}/{module}/{what}",
                          "VolumeOptions": {"Labels": {**labels(app, base, service, slot)}}})
    return found


def labels(app: str, name: str, service: ServiceSpec, slot=None) -> dict:
    """The app, the spec's service, its kind and, for a slot, the slot's name."""
    found = {naming.APP_LABEL: app, naming.SERVICE_LABEL: slot.service if slot else name,
             naming.KIND_LABEL: service.kind}
    if slot:
        found[naming.SLOT_LABEL] = slot.name
    return found


def environment(app: str, name: str, service: ServiceSpec, slot=None,
                drained: bool = False) -> list[str]:
    """What every task is told; a slot also its number, its name and its peers'
    (docs/module-spec.md, "Stateful slots and replication"); a backend behind a Service
    (`drained`) how long to keep serving once its stop begins, within its grace."""
    env = [f"DRAGONBALL_APP={app}", f"DRAGONBALL_SERVICE={slot.service if slot else name}",
           f"DRAGONBALL_PARAMS_FROM={naming.PARAMS_FILE}", "DRAGONBALL_PARAMS_OWNER=portal"]
    if drained:
        env += [f"{DRAIN_ENV}={DRAIN_S}", f"{GRACE_ENV}={STOP_GRACE_NS // 10**9}"]
    if service.module:
        env.append(f"DRAGONBALL_MODULE={service.module}")
    if slot:
        env += [f"DRAGONBALL_SLOT={slot.number}", f"DRAGONBALL_SLOT_NAME={slot.name}",
                f"{PEERS_ENV}={','.join(slot.peers)}"]
    return env


def limits(resources) -> dict:
    """A task's Resources.Limits of the spec's `resources` (cpus, memory): none, {}."""
    found = {}
    if resources.cpus:
        found["NanoCPUs"] = int(resources.cpus * 1e9)
    if resources.memory is not None:
        found["MemoryBytes"] = memory_bytes(resources.memory)
    return found


def service_spec(app: str, name: str, service: ServiceSpec, image: str,
                 replicas: int | None = None, slot=None, encrypted: bool = False,
                 drained: bool = False) -> dict:
    """The ServiceSpec JSON of `name`; `image` is the reference the servers pull (the
    registry's, pinned by digest); `replicas` overrides the spec's (0: stopped); `slot`
    (orchestrator.slotting.SlotOf): `name` is that slot of a service with storage;
    `encrypted`: the app's network is (its tasks only on servers that can)."""
    found = limits(service.resources)
    ports = [{"Protocol": p.protocol, "TargetPort": p.target, "PublishedPort": p.published,
              "PublishMode": "host"} for p in service.ports]
    task = {
        "ContainerSpec": {"Image": image, "Labels": labels(app, name, service, slot),
                          "Env": environment(app, name, service, slot, drained),
                          "Mounts": mounts(app, name, service, slot),
                          "Hostname": slot.name if slot else f"{name}-{{{{.Task.Slot}}}}",
                          "StopGracePeriod": STOP_GRACE_NS, "Healthcheck": HEALTH},
        "Resources": {"Limits": found} if found else {},
        "RestartPolicy": {"Condition": "any", "Delay": RESTART_DELAY_NS},
        "Placement": {"Constraints": constraints(app, name, service, encrypted)},
        "Networks": [{"Target": naming.network(app),
                      "Aliases": [slot.name, slot.service] if slot else [name]}],
    }
    spec = {
        "Name": naming.swarm_service(app, name),
        "Labels": {**labels(app, name, service, slot),
                   naming.NEEDS_LABEL: ",".join(service.needs())},
        "TaskTemplate": task,
        "Mode": {"Replicated": {"Replicas": service.replicas if replicas is None
                                else replicas}},
        # host-mode ports cannot hold two tasks on one server, nor may two tasks share a
        # slot's storage: stop the old one first
        "UpdateConfig": {"Parallelism": 1,
                         "Order": "stop-first" if ports or service.storage else "start-first",
                         "FailureAction": "pause", "Monitor": 5 * 10**9,
                         **({} if ports or service.storage else {"Delay": UPDATE_DELAY_NS})},
        "EndpointSpec": {"Mode": "dnsrr", "Ports": ports},
    }
    spec["Labels"][naming.SPEC_LABEL] = spec_hash(spec)
    return spec


def spec_hash(spec: dict) -> str:
    """What a Swarm service was made from, without its replica count (scaling is not a
    change of what runs) or its update's delay (how an update goes), without this label
    itself and, for a slot, with its peers only as "one" or "several": a new slot does not
    restart the others (they hear of it by notification), but a store going from one slot to
    several, or back, runs differently and is restarted."""
    shown = {k: v for k, v in spec.items() if k != "Mode"}
    if "Delay" in (spec.get("UpdateConfig") or {}):   # how an update goes, not what runs
        shown["UpdateConfig"] = {k: v for k, v in spec["UpdateConfig"].items() if k != "Delay"}
    container = spec.get("TaskTemplate", {}).get("ContainerSpec", {})
    peers = [e for e in container.get("Env", []) if e.startswith(PEERS_ENV + "=")]
    stopping = (DRAIN_ENV + "=", GRACE_ENV + "=")   # how a stop goes, not what runs
    if peers or any(e.startswith(stopping) for e in container.get("Env", [])):
        kind = "several" if peers and "," in peers[0] else "one"
        env = [f"{PEERS_ENV}=<{kind}>" if e in peers else e for e in container["Env"]
               if not e.startswith(stopping)]
        shown["TaskTemplate"] = {**spec["TaskTemplate"],
                                 "ContainerSpec": {**container, "Env": env}}
    shown["Labels"] = {k: v for k, v in spec.get("Labels", {}).items()
                       if k != naming.SPEC_LABEL}
    return hashlib.sha256(json.dumps(shown, sort_keys=True).encode()).hexdigest()[:16]


def network_spec(app: str, encrypted: bool = False) -> dict:
    """The app's overlay network: attachable so an operator can debug with a container;
    IPsec between servers when `encrypted` (shared/overlay.py decides)."""
    return {"Name": naming.network(app), "Driver": "overlay", "Attachable": True,
            "Labels": {naming.APP_LABEL: app},
            "Options": {overlay.OPTION: ""} if encrypted else {}}
