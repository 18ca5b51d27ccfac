"""The moving address of a Service, checked (pure): docs/app-address.md.

    web:
      kind: service
      ports: [{published: 8080, target: 8080}]
      address: 10.0.0.100/24       # the prefix is the servers' network (default /24)

An address is one IPv4 in the servers' network, no server's own, no other app's, on a
Service that publishes a TCP port (where the address's holder checks the Service answers)
and may run on two servers or more (else there is nowhere to move to). Each check adds its
problems to the document; none stops the others.
"""

from __future__ import annotations

import ipaddress

from dragonball.app.document import Document
from dragonball.app.model import Observed, ServiceSpec

DEFAULT_PREFIX = 24


def interface(text: str) -> ipaddress.IPv4Interface:
    """'10.0.0.100' -> 10.0.0.100/24; '10.0.0.100/16' as given. ValueError when invalid."""
    return ipaddress.IPv4Interface(text if "/" in text else f"{text}/{DEFAULT_PREFIX}")


def router_id(text: str) -> int:
    """The VRRP virtual router id (1..255) of an address: from its value, so two addresses
    within 255 of each other never share one; another app's that does is refused."""
    return int(interface(text).ip) % 255 + 1


def tcp_port(spec: ServiceSpec) -> int | None:
    """The published port the address's holder checks: the Service's first TCP one."""
    return next((p.published for p in spec.ports if p.protocol == "tcp"), None)


def check_addresses(doc: Document, services: dict, observed: Observed, where) -> None:
    """Every problem of every `address`; `where(spec)`: the servers a Service may run on
    (None: not known)."""
    seen: dict = {}
    for name in sorted(services):
        spec = services[name]
        if spec.address is None:
            continue
        path = ("services", name, "address")
        ip = _parsed(doc, path, spec.address)
        _check_service(doc, path, name, spec, where(spec))
        if ip is None:
            continue
        if ip.ip in seen:
            doc.problem(path, f"{ip.ip} is also the address of {seen[ip.ip]}",
                        "give each Service an address of its own")
        seen.setdefault(ip.ip, name)
        _check_world(doc, path, ip, observed, where(spec))


def _parsed(doc: Document, path: tuple, text: str) -> ipaddress.IPv4Interface | None:
    try:
        ip = interface(text)
    except ValueError as e:
        doc.problem(path, f"{text!r} is not an IPv4 address: {e}",
                    "write it as 10.0.0.100, or with the network's prefix: 10.0.0.100/24")
        return None
    net = ip.network
    if (ip.ip.is_loopback or ip.ip.is_multicast or ip.ip.is_unspecified or
            ip.ip.is_link_local or ip.ip.is_reserved or
            (net.prefixlen < 31 and ip.ip in (net.network_address, net.broadcast_address))):
        doc.problem(path, f"{ip.ip} cannot be a server's address in {net}",
                    "pick a free unicast address in the servers' network")
        return None
    return ip


def _check_service(doc: Document, path: tuple, name: str, spec: ServiceSpec, servers) -> None:
    if spec.kind != "service":
        doc.problem(path, "only a Service (kind: service) has an address",
                    f"give the address to the Service in front of {name}")
    if tcp_port(spec) is None:
        doc.problem(path, "an address needs a published TCP port: its holder is the server "
                    "where the Service answers on it", "add ports: [{published: 8080, "
                    "target: 8080}], or remove the address")
    if servers is not None and len(servers) < 2:
        doc.problem(path, f"the address cannot move: the placement allows only "
                    f"{', '.join(sorted(servers)) or 'no server'}",
                    "allow at least two servers (placement), or remove the address")


def _within(address: str, network: ipaddress.IPv4Network) -> bool:
    """Whether a server's address is in `network` (one not known, or not IPv4, is not)."""
    try:
        return ipaddress.IPv4Address(address) in network
    except ValueError:
        return False


def _check_world(doc: Document, path: tuple, ip: ipaddress.IPv4Interface,
                 observed: Observed, servers) -> None:
    owners = {a: s for s, a in observed.addresses.items()}
    if str(ip.ip) in owners:
        doc.problem(path, f"{ip.ip} is the address of server {owners[str(ip.ip)]}",
                    "pick a free address in the servers' network")
    outside = [f"{s} ({a})" for s, a in sorted(observed.addresses.items())
               if (servers is None or s in servers) and not _within(a, ip.network)]
    if outside:
        doc.problem(path, f"{', '.join(outside)} not in {ip.network}: the address must be in "
                    "the network of every server it may move to",
                    "pick an address in the servers' network, or give its prefix "
                    "(10.0.0.100/16)")
    for other, owner in sorted(observed.taken.items()):
        if str(interface(other).ip) == str(ip.ip):
            doc.problem(path, f"{ip.ip} is the address of {owner}", "pick a free address")
        elif router_id(other) == router_id(str(ip)):
            doc.problem(path, f"{ip.ip} shares its VRRP router id with {owner}'s address "
                        f"{other}", "pick another address (one within 255 of it is fine)")
