"""The cluster's firewall, described (pure): which ports only members reach, who the
members are, and the files every server's chain is made from (docs/security.md, "The
network").

Every server has an iptables chain of its own, `DRAGONBALL`, jumped to from INPUT (inserted
first; and through FORWARD_CHAIN from DOCKER-USER, for connections Docker forwards to a
published cluster port, the agent's):
the portal's HTTPS port from anywhere; the cluster ports (`cluster_ports`) from the
members and the administrator's sources only, dropped from any other source; everything
else falls through to the administrator's own rules. The chain is rendered on the server
by a POSIX sh script (installer/firewall.sh: devices have no Python) from two files:

    MEMBERS_FILE  the cluster's servers: written at install, then by the node agent each
                  time the leading portal sends a new list (PUT /v1/firewall)
    ALLOW_FILE    the administrator's own sources (answers: firewall_allow): written at
                  install only, never by the portal

One IPv4 or IPv6 address or CIDR per line. The script and the agent check every line
again: a file is data, never shell.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from dragonball.shared import ports

CHAIN = "DRAGONBALL"
#: DOCKER-USER's jump: on to CHAIN for connections DNATed from a cluster port only
FORWARD_CHAIN = "DRAGONBALL-FORWARD"
FOLDER = "/var/lib/dragonball/firewall"
MEMBERS_FILE = f"{FOLDER}/members"
ALLOW_FILE = f"{FOLDER}/allow"
SCRIPT = "/usr/local/libexec/dragonball-firewall"
UNIT = "dragonball-firewall"   # .service (oneshot) and .path (PathChanged= on the files)
#: Loopback is always a member: a server's own calls to its own ports.
LOOPBACK = ("127.0.0.0/8", "::1/128")
#: A members list longer than this is refused (by the agent too): a cluster has servers
#: by the hundred, not by the ten thousand, and each line is a rule in the chain.
MAX_MEMBERS = 2000
MAX_LINE = 64   # "ffff:...:ffff/128" is 43 characters


class BadAddress(ValueError):
    """A text that is not one IPv4 or IPv6 address or network."""


def cluster_ports() -> tuple[ports.Port, ...]:
    """The ports only members reach: every port a server may listen on, but the portal's
    HTTPS port (people and devices reach it before they are members)."""
    return tuple(p for p in ports.ports_for("portal") if p.number != ports.PORTAL)


def source(text: str) -> str:
    """One address or network, normalised ("10.0.0.7", "10.0.0.0/24", "fd00::/64");
    BadAddress saying why not. A network with host bits set is refused (a typo, mostly)."""
    if not isinstance(text, str) or not text.strip():
        raise BadAddress("empty: give an IPv4 or IPv6 address or network, like 10.0.0.0/24")
    text = text.strip()
    if len(text) > MAX_LINE:
        raise BadAddress(f"{text[:20]!r}... is longer than {MAX_LINE} characters")
    try:
        if "/" in text:
            network = ipaddress.ip_network(text, strict=True)
            return str(network.network_address if network.prefixlen ==
                       network.max_prefixlen else network)
        return str(ipaddress.ip_address(text))
    except ValueError as e:
        raise BadAddress(f"{text!r} is not an IPv4 or IPv6 address or network ({e})") from e


def sources(texts: Iterable[str]) -> tuple[str, ...]:
    """Every text normalised, duplicates dropped, in a stable order (IPv4 first); the
    first BadAddress stops it."""
    found = {source(t) for t in texts}
    return tuple(sorted(found, key=_order))


def _order(text: str) -> tuple:
    network = ipaddress.ip_network(text, strict=False)
    return (network.version, int(network.network_address), network.prefixlen)


def host_of(address: str) -> str | None:
    """The IP address in "10.0.0.1", "10.0.0.1:8443", "[fd00::1]:8443" or
    "https://10.0.0.1:8443"; None for a host name (it is not resolved here)."""
    text = address.split("://", 1)[-1].split("/", 1)[0]
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def members(addresses: Iterable[str]) -> tuple[str, ...]:
    """The members list from servers' addresses (anything `host_of` reads): the ones that
    are IP addresses, with loopback, normalised and in order."""
    hosts = [h for h in (host_of(a) for a in addresses if a) if h]
    return sources([*LOOPBACK, *hosts])


def file_text(addresses: Iterable[str], what: str) -> str:
    """The content of MEMBERS_FILE or ALLOW_FILE: a comment, then one source a line."""
    return (f"# {what}: one IPv4 or IPv6 address or network a line (docs/security.md)\n"
            + "".join(f"{a}\n" for a in addresses))


def read_sources(text: str | None) -> tuple[str, ...]:
    """The valid sources of a members or allow file (comments, blanks, bad lines skipped)."""
    found = []
    for line in (text or "").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            try:
                found.append(source(line))
            except BadAddress:
                continue
    return sources(found)
