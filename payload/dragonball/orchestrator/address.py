"""A Service's moving address on Swarm (pure): the keepalived service and its plan.

    steps = plan(spec, observation)    # AddressStep each: create, update, keep or remove

Each Service with an `address` gets one global Swarm service (`notes_web_address`) from
the image dragonball/keepalived, placed exactly where the Service may run (its constraints),
on the host network with NET_ADMIN, NET_RAW and NET_BROADCAST; its configuration
(orchestrator.keepalived) rendered here, with the peers the observation shows, and given in
the environment. Why and how: docs/app-address.md.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Mapping

from dragonball.app.address import interface, tcp_port
from dragonball.app.checks import candidates
from dragonball.app.model import AppSpec, ServiceSpec
from dragonball.orchestrator import keepalived, naming, specs
from dragonball.orchestrator.observe import ADDRESS_IMAGE as IMAGE
CAPABILITIES = ["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_NET_BROADCAST"]
STOP_GRACE_NS = 15 * 10**9   # keepalived gives the address up at once on SIGTERM
RESTART_DELAY_NS = 2 * 10**9
QUORUM_FROM = 3              # managers: with fewer, losing one loses Swarm's quorum anyway


@dataclass(frozen=True)
class AddressStep:
    """Bring one moving address to what the spec says: `op` create, update, keep, remove."""

    service: str
    swarm_name: str
    op: str
    address: str = ""
    spec: Mapping = field(default_factory=dict)


def vrrp_of(app: str, name: str, service: ServiceSpec, observation) -> keepalived.Vrrp:
    """The VRRP of `name`'s address: its peers are the servers the Service may run on; its
    holder must reach a majority of the managers, when there are 3 or more (with 1 or 2
    there is no quorum to ask: VRRP alone decides, docs/app-address.md)."""
    where = candidates(service, observation.checks())
    peers = tuple((n.hostname, n.address) for n in sorted(observation.nodes,
                                                           key=lambda n: n.hostname)
                  if n.address and (where is None or n.hostname in where))
    managers = tuple(sorted(n.address for n in observation.nodes if n.manager and n.address))
    return keepalived.Vrrp(app, name, str(interface(service.address)), tcp_port(service) or 0,
                           peers, managers if len(managers) >= QUORUM_FROM else ())


def labels(app: str, name: str, address: str) -> dict:
    return {naming.APP_LABEL: app, naming.ADDRESS_LABEL: name,
            naming.ADDRESS_IP_LABEL: address}


def service_spec(app: str, name: str, service: ServiceSpec, image: str,
                 observation) -> dict:
    """The Swarm ServiceSpec of `name`'s moving address; `image`: dragonball/keepalived as
    the servers pull it (the registry's, pinned)."""
    vrrp = vrrp_of(app, name, service, observation)
    conf = base64.b64encode(keepalived.render(vrrp).encode()).decode()
    task = {
        "ContainerSpec": {
            "Image": image, "Labels": labels(app, name, vrrp.address),
            "Env": ["DRAGONBALL_NODE={{.Node.Hostname}}", f"DRAGONBALL_ADDRESS={vrrp.address}",
                    f"DRAGONBALL_KEEPALIVED_CONF={conf}"],
            "CapabilityAdd": list(CAPABILITIES), "StopGracePeriod": STOP_GRACE_NS},
        "RestartPolicy": {"Condition": "any", "Delay": RESTART_DELAY_NS},
        "Placement": {"Constraints": specs.constraints(app, name, service)},
        "Networks": [{"Target": "host"}],
    }
    spec = {"Name": naming.address_service(app, name),
            "Labels": labels(app, name, vrrp.address), "TaskTemplate": task,
            "Mode": {"Global": {}},
            "UpdateConfig": {"Parallelism": 1, "Order": "stop-first",
                             "FailureAction": "continue", "Monitor": 5 * 10**9},
            "EndpointSpec": {"Mode": "dnsrr"}}
    spec["Labels"][naming.SPEC_LABEL] = specs.spec_hash(spec)
    return spec


def plan(spec: AppSpec, observation) -> tuple:
    """The AddressSteps of `spec` against the addresses the observation shows: a Service's
    address created, updated (its definition's hash differs: another address, peers,
    image...) or kept; an address no Service has any more removed."""
    wanted = {name: s for name, s in sorted(spec.services.items()) if s.address}
    steps = [_step(spec.app, name, service, observation) for name, service in wanted.items()]
    steps += [AddressStep(name, state.name, "remove",
                          state.labels.get(naming.ADDRESS_IP_LABEL, ""))
              for name, state in sorted(observation.addresses.items()) if name not in wanted]
    return tuple(steps)


def _step(app: str, name: str, service: ServiceSpec, observation) -> AddressStep:
    image = observation.pinned.get(IMAGE, IMAGE)
    wanted = service_spec(app, name, service, image, observation)
    found = observation.addresses.get(name)
    if found is None:
        op = "create"
    elif found.spec_hash != wanted["Labels"][naming.SPEC_LABEL]:
        op = "update"
    else:
        op = "keep"
    return AddressStep(name, wanted["Name"], op, str(interface(service.address)), wanted)
