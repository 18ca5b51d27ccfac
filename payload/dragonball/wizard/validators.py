"""One pure validator per answer: the same callables check a prompt and an answers file.

Each returns True or a message that says what is wrong and what to do (questionary's
validator contract); the facts a rule depends on (this server's addresses, its
hostname) are arguments, never looked up here. `normalize_*` turn a valid answer
into the form the installer uses.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re

from dragonball.shared import fingerprints, firewall, passwords, ports
from dragonball.shared.names import hostname
from dragonball.wizard.model import ROLES, Interface, Verdict

MIN_PASSWORD = passwords.MIN_LENGTH
_CLUSTER = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def closest(word: str, known) -> str | None:
    """The one of `known` that `word` is most likely a typo of, or None."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def suggestion(word: str, known) -> str:
    """' (did you mean X?)' for the closest of `known`, or ''."""
    close = closest(word, known)
    return f" (did you mean {close!r}?)" if close else ""


def role(value: str) -> Verdict:
    if value in ROLES:
        return True
    return f"not a role{suggestion(value, ROLES)}: give portal (the first server) or device"


def _ip(value: str):
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def address(value: str, interfaces: tuple[Interface, ...]) -> Verdict:
    """This server's address: an IP address that one of its interfaces holds."""
    ip = _ip(value)
    listed = ", ".join(str(i) for i in interfaces) or "none found"
    if ip is None:
        return f"not an IP address: give one of this server's: {listed}"
    if any(_ip(i.address) == ip for i in interfaces):
        return True
    return f"not an address of this server: give one of {listed}"


def normalize_address(value: str) -> str:
    return str(ipaddress.ip_address(value.strip()))


def _split_host_port(value: str) -> tuple[str, str] | None:
    """"host", "host:port", "[v6]" or "[v6]:port", or a bare IPv6 address -> (host, port)."""
    text = value.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return None
        return host, rest[1:]
    if text.count(":") > 1:
        return text, ""
    host, _, port = text.partition(":")
    return host, port


def portal(value: str, own_addresses: tuple[str, ...] = ()) -> Verdict:
    """The portal to join: HOST or HOST:PORT (an IPv6 address in brackets with a port)."""
    split = _split_host_port(value)
    if "://" in value or split is None or not split[0]:
        return f"not an address: give the portal's HOST or HOST:PORT, like 10.0.0.10"
    host, port = split
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        return f"the port must be a number from 1 to 65535 (the portal's is {ports.PORTAL})"
    ip = _ip(host)
    if ip is None and hostname(host) is not True:
        return "neither an IP address nor a hostname: give the address the portal printed"
    if ip is not None and any(_ip(a) == ip for a in own_addresses):
        return "that is this server: to make it the portal, choose the role portal"
    return True


#: A cluster has 3 managers, 5 or 7 at most (raft): more addresses than that is a mistake.
MAX_PORTALS = 7


def split_portals(value: str) -> list[str]:
    """The items of ``HOST[,HOST...]``, stripped (empty items kept: `portals` says so)."""
    return [item.strip() for item in value.split(",")]


def portals(value: str, own_addresses: tuple[str, ...] = ()) -> Verdict:
    """The portals to join: one HOST[:PORT], or every manager's, separated by commas (what
    'dragonball enroll' prints); tried in order by the join."""
    items = split_portals(value)
    if not value.strip() or not any(items):
        return "empty: give the portal's HOST or HOST:PORT, like 10.0.0.10"
    if len(items) > MAX_PORTALS:
        return (f"{len(items)} addresses: a cluster has at most {MAX_PORTALS} managers; give "
                "the ones 'dragonball enroll' printed")
    for n, item in enumerate(items, 1):
        if not item:
            return f"address {n} of {len(items)} is empty: remove the extra comma"
        verdict = portal(item, own_addresses)
        if verdict is not True:
            return verdict if len(items) == 1 else f"{item!r}: {verdict}"
    normalized = [normalize_portal(item) for item in items]
    twice = sorted({p for p in normalized if normalized.count(p) > 1})
    if twice:
        return f"{', '.join(twice)} is given twice: give each manager once"
    return True


def normalize_portals(value: str) -> str:
    """``host:port[,host:port...]``, each normalized, in the order given."""
    return ",".join(normalize_portal(item) for item in split_portals(value))


def normalize_portal(value: str) -> str:
    """"host:port" with the default port filled in; IPv6 in brackets."""
    host, port = _split_host_port(value)
    ip = _ip(host)
    host = (f"[{ip}]" if ip.version == 6 else str(ip)) if ip else host.lower()
    return f"{host}:{port or ports.PORTAL}"


def ca_fingerprint(value: str) -> Verdict:
    """The portal CA's fingerprint, as 'dragonball enroll' printed it with the code."""
    if fingerprints.normalize(value):
        return True
    return "not a CA fingerprint: copy the SHA256:... that 'dragonball enroll' printed"


def password(value: str, hostnames: tuple[str, ...] = ()) -> Verdict:
    """The portal admin's password: long, mixed, and not guessable from the server."""
    return passwords.verdict(value, hostnames)


def data_dir(value: str) -> Verdict:
    """Where DragonBall keeps its data: an absolute path, not a system folder itself."""
    if not value.startswith("/"):
        return "not an absolute path: start it with / (like /var/lib/dragonball)"
    if any(c.isspace() or c == ":" for c in value):
        return "has a space or a colon, which Docker volumes cannot carry: choose another"
    if os.path.normpath(value) in _SYSTEM_FOLDERS:
        return "a system folder: give a folder of DragonBall's own, like /var/lib/dragonball"
    return True


_SYSTEM_FOLDERS = {"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/opt", "/proc",
                   "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var",
                   "/var/lib", "/var/log", "/var/lib/docker"}


def normalize_data_dir(value: str) -> str:
    return os.path.normpath(value)


def cluster_name(value: str) -> Verdict:
    if _CLUSTER.match(value):
        return True
    return "not a cluster name: use lower-case letters, digits, hyphens (like plant-7)"


#: Administrator's sources the answers may list (each one is rules on every server).
MAX_ALLOW = 64


def firewall_allow(value: str) -> Verdict:
    """The administrator's sources that may reach the cluster ports besides the cluster's
    servers (docs/security.md, "The network"): addresses or networks, separated by commas."""
    if not value.strip():
        return True  # an empty list: none
    items = [item.strip() for item in value.split(",")]
    if len(items) > MAX_ALLOW:
        return f"{len(items)} sources: at most {MAX_ALLOW}; give networks (10.0.0.0/24) instead"
    for n, item in enumerate(items, 1):
        if not item:
            return f"source {n} of {len(items)} is empty: remove the extra comma"
        try:
            firewall.source(item)
        except firewall.BadAddress as e:
            return (f"source {n} of {len(items)}: {e}: give an address or a network, like "
                    "10.0.0.0/24")
    return True


def normalize_firewall_allow(value: str) -> str:
    return ",".join(firewall.sources(item for item in value.split(",") if item.strip()))


def default_cluster_name(host: str) -> str:
    """The cluster's name when none is given: this server's short name, made valid."""
    short = re.sub(r"[^a-z0-9-]+", "-", host.split(".")[0].lower()).strip("-")[:63]
    return short.strip("-") or "cluster"


YES, NO = ("yes", "true", "y", "on", "1"), ("no", "false", "n", "off", "0")


def yes_no(value: str) -> Verdict:
    """yes or no (true/false, y/n, on/off, 1/0 too)."""
    if str(value).strip().lower() in YES + NO:
        return True
    return f"{value!r} is neither yes nor no: answer yes or no"


def is_yes(value: str | None) -> bool:
    return value is not None and str(value).strip().lower() in YES
