"""What a lab reads and changes on the host itself: inotify limits, the leak counter
rule, routes, cgroup memory."""

from __future__ import annotations

import json
import logging
import pathlib

from . import plan
from .docker_cli import iptables, run
from .errors import LabError

log = logging.getLogger(__name__)

INOTIFY_DIR = pathlib.Path("/proc/sys/fs/inotify")
CGROUP_ROOT = pathlib.Path("/sys/fs/cgroup")
# Docker's chain for the administrator's rules: FORWARD jumps to it first and the
# engine never rewrites it, so a rule there sees every packet before Docker's
# isolation rules drop it. Plain FORWARD is the fallback on an engine without it.
CHAINS = ("DOCKER-USER", "FORWARD")


def raise_inotify_limits(servers: int, folder: pathlib.Path = INOTIFY_DIR) -> dict[str, int]:
    """Raise (never lower) fs.inotify limits to what `servers` servers need.

    Returns the limits changed, name -> new value.
    """
    changed = {}
    for name, target in plan.inotify_targets(servers).items():
        path = folder / name
        current = int(path.read_text())
        if current < target:
            path.write_text(f"{target}\n")
            changed[name] = target
            log.info("fs.inotify.%s raised from %d to %d for %d servers",
                     name, current, target, servers)
    return changed


def cgroup_memory_bytes(container_id: str, root: pathlib.Path = CGROUP_ROOT) -> int:
    """Bytes a container's memory cgroup holds (cgroup v1 or v2, Docker's cgroupfs layout)."""
    for relative in (f"memory/docker/{container_id}/memory.usage_in_bytes",
                     f"docker/{container_id}/memory.current",
                     f"system.slice/docker-{container_id}.scope/memory.current"):
        path = root / relative
        if path.is_file():
            return int(path.read_text())
    raise LabError(f"no memory cgroup found for container {container_id[:12]} under {root}",
                   "is the engine using another cgroup layout? see 'docker info'")


def docker_upstream_dns(etc: pathlib.Path = pathlib.Path("/etc"),
                        run_dir: pathlib.Path = pathlib.Path("/run")) -> list[str]:
    """The nameservers Docker forwards containers' queries to: daemon.json's "dns", else the
    host's resolv.conf (systemd-resolved's upstream file when that names only 127.0.0.53)."""
    daemon = etc / "docker" / "daemon.json"
    if daemon.is_file():
        configured = json.loads(daemon.read_text() or "{}").get("dns")
        if configured:
            return list(configured)
    servers = plan.nameservers(_read(etc / "resolv.conf"))
    resolved = run_dir / "systemd" / "resolve" / "resolv.conf"
    if servers == ["127.0.0.53"] and resolved.is_file():
        servers = plan.nameservers(_read(resolved))
    return servers


def _read(path: pathlib.Path) -> str:
    return path.read_text() if path.is_file() else ""


def host_routes() -> str:
    """`ip -4 route show table all`, to keep a lab's subnet off the host's networks."""
    return run(["ip", "-4", "route", "show", "table", "all"]).stdout


def leak_chain() -> str:
    """The chain the leak counter goes in (DOCKER-USER where the engine made it)."""
    return CHAINS[0] if iptables("-S", CHAINS[0], check=False).ok else CHAINS[1]


def add_leak_counter(bridge: str, lab: str) -> None:
    """Insert the counting rule for `lab`'s bridge at the top of the chain."""
    iptables("-I", leak_chain(), "1", *plan.leak_rule(bridge, lab))


def leak_packets(lab: str) -> int | None:
    """Packets counted leaving `lab` so far; None when it has no counter rule."""
    rules = _leak_rules(lab)
    return sum(packets for _, _, packets in rules) if rules else None


def remove_leak_counters(lab: str) -> int:
    """Delete every counting rule of `lab` (also ones a crashed run left); return how many."""
    rules = _leak_rules(lab)
    for chain, args, _ in rules:
        iptables("-D", chain, *args)
    return len(rules)


def _leak_rules(lab: str) -> list[tuple[str, list[str], int]]:
    found = []
    for chain in CHAINS:
        listing = iptables("-S", chain, "-v", check=False)
        if listing.ok:
            found += [(chain, args, n) for args, n in plan.parse_leak_rules(listing.stdout, lab)]
    return found
