"""What a lab is made of, as pure data: names, addresses, run options, rules.

Nothing here touches Docker, iptables or /proc: the adapters (docker_cli,
host) run what these functions describe, so the shape of a lab is readable
(and checkable) without bringing one up.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import shlex
from collections.abc import Iterable, Mapping

from .errors import LabError

BARE_IMAGE = "dragonball-bare:bookworm"
LAB_LABEL = "io.dragonball.lab"
MODE_LABEL = "io.dragonball.lab.mode"
SERVER_LABEL = "io.dragonball.lab.server"
PRIVILEGED, CAPABILITIES = "privileged", "capabilities"
MAX_SERVERS = 200
FIRST_HOST = 10  # s1 gets the subnet's address .11, s2 .12, ...
# /24s to choose from: outside Docker's default pools (172.17-31/16, 192.168/20)
# and small enough that a lab takes one. Checked against networks and routes at run time.
SUBNET_POOL = ipaddress.IPv4Network("10.213.0.0/16")
SUBNET_PREFIX = 24
# systemd units that have nothing to do in a container and fail or hang there.
MASKED_UNITS = (
    "getty.target", "console-getty.service", "getty@.service", "serial-getty@.service",
    "systemd-udevd.service", "systemd-udevd-control.socket", "systemd-udevd-kernel.socket",
    "systemd-udev-trigger.service", "systemd-udev-settle.service",
    "systemd-modules-load.service", "systemd-firstboot.service", "systemd-resolved.service",
)
# What the fallback needs when --privileged is refused (MACHINE.md: the host engine's
# bounding set lacks CAP_SYS_RESOURCE, so "all capabilities" cannot be granted).
CAPABILITY_OPTIONS = (
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--security-opt", "systempaths=unconfined", "--device-cgroup-rule", "a *:* rwm",
)
# /run and /run/lock as systemd expects them; /tmp executable and unbounded like a
# server's /tmp on disk (Docker's --tmpfs default is noexec and would fail a .bin).
COMMON_OPTIONS = (
    "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp:exec,mode=1777",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--stop-signal", "SIGRTMIN+3", "-e", "container=docker",
)
TMPFS_DIRS = ("/run", "/tmp")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")


@dataclasses.dataclass(frozen=True)
class LabSpec:
    """A lab as asked for: `servers` bare servers on one bridge network."""

    name: str
    servers: int
    internal: bool = False
    subnet: ipaddress.IPv4Network | None = None
    image: str = BARE_IMAGE
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    fresh_host_keys: bool = False
    #: Servers on another image than `image` (another userland): {"s2": "dragonball-bare:bullseye"}
    images: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def image_of(self, server: str) -> str:
        return self.images.get(server, self.image)

    @property
    def network(self) -> str:
        return f"{self.name}-net"

    @property
    def server_names(self) -> list[str]:
        return [f"s{i}" for i in range(1, self.servers + 1)]

    def container(self, server: str) -> str:
        return f"{self.name}-{server}"

    def volume(self, server: str) -> str:
        return f"{self.name}-{server}-docker"

    def all_labels(self) -> dict[str, str]:
        """The labels every object of this lab carries."""
        return {**self.labels, LAB_LABEL: self.name}


def validate(spec: LabSpec) -> None:
    """Raise `LabError` listing every problem of `spec` at once."""
    problems = []
    if not _NAME.match(spec.name):
        problems.append(f"name {spec.name!r}: use 1-31 of a-z, 0-9 and '-', starting "
                        "with a letter or digit")
    if not 1 <= spec.servers <= MAX_SERVERS:
        problems.append(f"servers={spec.servers}: a lab has 1 to {MAX_SERVERS} servers")
    elif spec.subnet is not None and spec.subnet.num_addresses < FIRST_HOST + spec.servers + 2:
        problems.append(f"subnet {spec.subnet} is too small for {spec.servers} servers "
                        f"(s1 is address .{FIRST_HOST + 1})")
    strays = sorted(set(spec.images) - set(spec.server_names))
    if strays:
        problems.append(f"images for {', '.join(strays)}: the lab has "
                        f"{', '.join(spec.server_names)}")
    if problems:
        raise LabError(f"lab {spec.name!r} is not valid:\n" +
                       "\n".join(f"  - {p}" for p in problems),
                       "fix the listed values and try again")


def server_name(server: str | int) -> str:
    """'s2' for 2 or 's2'."""
    return f"s{server}" if isinstance(server, int) else server


def server_ip(subnet: ipaddress.IPv4Network, server: str) -> str:
    """The fixed address of `server` ('s1', 's2', ...) in `subnet`."""
    return str(subnet.network_address + FIRST_HOST + int(server[1:]))


def host_ip(subnet: ipaddress.IPv4Network) -> str:
    """This machine's address on the lab bridge: the engine gives the bridge the subnet's
    first address (its gateway), and the tests' connections to the servers come from it."""
    return str(subnet.network_address + 1)


def pick_subnet(taken: Iterable[ipaddress.IPv4Network],
                skip: Iterable[ipaddress.IPv4Network] = ()) -> ipaddress.IPv4Network:
    """The first /24 of the pool that overlaps no network in `taken` or `skip`."""
    avoid = [*taken, *skip]
    for candidate in SUBNET_POOL.subnets(new_prefix=SUBNET_PREFIX):
        if not any(candidate.overlaps(net) for net in avoid):
            return candidate
    raise LabError(f"no free /{SUBNET_PREFIX} left in {SUBNET_POOL} for a lab network",
                   "remove old labs ('scripts/lab.sh down NAME') or pass subnet=...")


def parse_routes(ip_route_output: str) -> list[ipaddress.IPv4Network]:
    """The destinations of `ip -4 route show table all` lines, except the default route."""
    networks = []
    for line in ip_route_output.splitlines():
        words = line.split()
        if words and words[0] in ("local", "broadcast", "unicast", "multicast"):
            words = words[1:]
        if not words or words[0] == "default":
            continue
        try:
            networks.append(ipaddress.IPv4Network(words[0], strict=False))
        except ValueError:
            continue
    return networks


def boot_script(machine_id: str, fresh_host_keys: bool = False) -> str:
    """The sh run as PID 1 before systemd: rw /sys, masks, a first boot of its own.

    On its first boot a server gets its own machine-id (the image holds the one made
    at debootstrap time, the same in every container) and, with `fresh_host_keys`,
    its own SSH host keys (~0.45 s of CPU each, mostly RSA: off by default, the lab's
    servers share the image's keys). Later boots find the id written and keep both.
    """
    masks = " ".join(MASKED_UNITS)
    keys = "  rm -f /etc/ssh/ssh_host_*; ssh-keygen -A >/dev/null\n" if fresh_host_keys else ""
    return (
        "mount -o remount,rw /sys\n"
        f"for u in {masks}; do ln -sf /dev/null /etc/systemd/system/$u; done\n"
        f"if [ \"$(cat /etc/machine-id)\" != {machine_id} ]; then\n"
        f"  echo {machine_id} >/etc/machine-id; cp /etc/machine-id /var/lib/dbus/machine-id\n"
        f"{keys}"
        "fi\n"
        "exec /sbin/init\n")


def run_argv(spec: LabSpec, server: str, ip: str, mode: str, machine_id: str,
             own_dns: bool = False) -> list[str]:
    """`docker run` arguments (after 'docker') that start `server` with systemd as PID 1.

    `own_dns` points Docker's resolver at the server itself for names it does not
    know, so such queries die inside the server (see `forwards_from_host`).
    """
    labels = {**spec.all_labels(), SERVER_LABEL: server, MODE_LABEL: mode}
    security = ["--privileged"] if mode == PRIVILEGED else list(CAPABILITY_OPTIONS)
    dns = ["--dns", ip] if own_dns else []
    return ["run", "-d", "--name", spec.container(server), "--hostname", server,
            "--network", spec.network, "--ip", ip, "--network-alias", server, *dns,
            *_label_args(labels), *security, *COMMON_OPTIONS,
            "-v", f"{spec.volume(server)}:/var/lib/docker",
            spec.image_of(server), "sh", "-c", boot_script(machine_id, spec.fresh_host_keys)]


def nameservers(resolv_conf: str) -> list[str]:
    """The `nameserver` addresses of a resolv.conf."""
    return [line.split()[1] for line in resolv_conf.splitlines()
            if line.startswith("nameserver") and len(line.split()) > 1]


def forwards_from_host(upstream: Iterable[str]) -> bool:
    """Whether Docker's resolver would send an internal network's queries out of the host.

    Docker forwards names it does not know to the host's nameservers; for one on a
    loopback address it does so from the *host's* network namespace, past the
    internal network's drop rules and past the leak counter (fixed only in Docker
    23.0.11/25.0.4/26: CVE-2024-29018). Any other nameserver is asked from inside
    the server, through FORWARD, where the counter sees it and Docker drops it.
    """
    return any(ipaddress.ip_address(ns.split("%")[0]).is_loopback for ns in upstream)


def network_argv(spec: LabSpec, subnet: ipaddress.IPv4Network) -> list[str]:
    """`docker network create` arguments for the lab's bridge."""
    internal = ["--internal"] if spec.internal else []
    return ["network", "create", "--driver", "bridge", "--subnet", str(subnet), *internal,
            *_label_args(spec.all_labels()), spec.network]


def volume_argv(spec: LabSpec, server: str) -> list[str]:
    """`docker volume create` arguments for the server's /var/lib/docker."""
    return ["volume", "create", *_label_args(spec.all_labels()), spec.volume(server)]


def _label_args(labels: Mapping[str, str]) -> list[str]:
    return [arg for key, value in sorted(labels.items()) for arg in ("--label", f"{key}={value}")]


def under_tmpfs(path: str) -> bool:
    """Whether `path` in a server lies on a tmpfs, where `docker cp` writes out of sight."""
    clean = "/" + path.strip("/")
    return any(clean == d or clean.startswith(d + "/") for d in TMPFS_DIRS)


# --- the leak counter: one iptables rule per internal lab ------------------------------

def leak_comment(lab: str) -> str:
    return f"dragonball-lab:{lab}"


def leak_rule(bridge: str, lab: str) -> list[str]:
    """A rule with no target: it only counts packets that enter from the lab's bridge
    and are routed anywhere but back to it, i.e. that try to leave the lab."""
    return ["-i", bridge, "!", "-o", bridge, "-m", "comment", "--comment", leak_comment(lab)]


def parse_leak_rules(iptables_s_v: str, lab: str) -> list[tuple[list[str], int]]:
    """From `iptables -S CHAIN -v` output, the lab's rules as (rule args, packet count)."""
    found = []
    for line in iptables_s_v.splitlines():
        words = shlex.split(line)
        if len(words) < 2 or words[0] != "-A" or leak_comment(lab) not in words:
            continue
        args, packets = words[2:], 0
        if "-c" in args:
            at = args.index("-c")
            packets = int(args[at + 1])
            del args[at:at + 3]
        found.append((args, packets))
    return found


# --- host limits -------------------------------------------------------------------------

def inotify_targets(servers: int) -> dict[str, int]:
    """Minimum fs.inotify limits for a lab of `servers` (MACHINE.md: systemd stalls past
    ~18 servers on the default 128 instances; each idle server holds ~7)."""
    return {"max_user_instances": 64 * servers + 256,
            "max_user_watches": 8192 * servers + 131072}
