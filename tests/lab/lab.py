"""`Lab`: N bare Debian servers on one machine, each a container with systemd as PID 1.

    with Lab("demo", servers=3, internal=True) as lab:
        lab.copy_in("s1", "dist/DragonBall-0.1.0.bin")
        lab.exec("s1", ["sh", "/root/DragonBall-0.1.0.bin", "install"], timeout=600)

Everything a lab creates carries the label io.dragonball.lab=<name> (plus any
`labels` given), so `Lab(name).down()` removes it from any process, even after
a crash. docs/lab.md tells how it works and what was measured.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence

from . import host, plan
from .boot import BootWatch
from .docker_cli import Docker, Outcome
from .errors import LabError

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 20
_PARALLEL = 8  # docker runs at once: more only queues in the engine on 2 cores
_mode_here: str | None = None  # the run mode this engine accepted, found once per process


class Lab:
    """A lab of `servers` bare servers named s1..sN on the bridge `<name>-net`."""

    def __init__(self, name: str = "dblab", servers: int = 3, internal: bool = False,
                 subnet: str | None = None, image: str = plan.BARE_IMAGE,
                 labels: Mapping[str, str] | None = None, fresh_host_keys: bool = False,
                 boot_timeout: float | None = None, docker: Docker | None = None,
                 images: Mapping[str, str] | None = None) -> None:
        """`images`: servers on another image than `image` ({"s2": "dragonball-bare:bullseye"})."""
        self.spec = plan.LabSpec(name, servers, internal, _subnet_arg(subnet), image,
                                 dict(labels or {}), fresh_host_keys, dict(images or {}))
        plan.validate(self.spec)
        self.boot_timeout = boot_timeout or 60 + 6 * servers
        self.docker = docker or Docker()
        self.subnet = self.spec.subnet
        self.mode: str | None = None
        self.own_dns = False
        self.degraded: dict[str, list[str]] = {}
        self._boot = BootWatch(self.docker, self.spec.container)

    @classmethod
    def attach(cls, name: str, docker: Docker | None = None) -> Lab:
        """The lab `name` as it exists now (brought up by another process, say)."""
        docker = docker or Docker()
        network = docker.inspect("network", plan.LabSpec(name, 1).network)
        servers = docker.names("container", f"{plan.LAB_LABEL}={name}")
        if network is None and not servers:
            raise LabError(f"there is no lab {name!r} on this machine",
                           f"bring one up: sudo bash scripts/lab.sh --name {name} up 3")
        count = max([int(c.rsplit("-s", 1)[1]) for c in servers] or [1])
        subnet = network["IPAM"]["Config"][0]["Subnet"] if network else None
        return cls(name, count, bool(network and network["Internal"]), subnet, docker=docker)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def servers(self) -> list[str]:
        return self.spec.server_names

    # --- whole lab -------------------------------------------------------------------

    def up(self) -> Lab:
        """Create network, volumes and servers; return once every server has booted.

        Booted means `systemctl is-system-running` says running or degraded (the
        failed units of a degraded server are logged and kept in `degraded`). On any
        failure everything created so far is removed and `LabError` says why.
        """
        self._refuse_existing()
        try:
            host.raise_inotify_limits(self.spec.servers)
            self._create_network()
            self._each(self._create_volume)
            self._start_first(self.servers[0])
            self._each(self._create_server, self.servers[1:])
            deadline = time.monotonic() + self.boot_timeout
            self._each(lambda server: self._wait_booted(server, deadline))
        except BaseException:
            self._down_quietly()
            raise
        return self

    def down(self) -> None:
        """Remove every container, volume, network and firewall rule of this lab."""
        label = f"{plan.LAB_LABEL}={self.name}"
        containers = self.docker.names("container", label)
        if containers:
            self.docker("rm", "-f", "-v", *containers)
        host.remove_leak_counters(self.name)
        for network in self.docker.names("network", label):
            self.docker("network", "rm", network)
        volumes = self.docker.names("volume", label)
        if volumes:
            self.docker("volume", "rm", "-f", *volumes)

    def __enter__(self) -> Lab:
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down()

    def leak_packets(self) -> int:
        """Packets that tried to leave an internal lab's network (0 is the goal)."""
        packets = host.leak_packets(self.name)
        if packets is None:
            raise LabError(f"lab {self.name!r} has no leak counter",
                           "only an internal lab that is up has one: Lab(..., internal=True)")
        return packets

    def status(self) -> list[dict[str, str]]:
        """One row per server container that exists: server, container, state, ip, system."""
        rows = []
        for container in self.docker.names("container", f"{plan.LAB_LABEL}={self.name}"):
            info = self.docker.inspect("container", container) or {}
            server = info.get("Config", {}).get("Labels", {}).get(plan.SERVER_LABEL, "?")
            running = info.get("State", {}).get("Running", False)
            rows.append({"server": server, "container": container,
                         "state": info.get("State", {}).get("Status", "gone"),
                         "ip": _address(info, self.spec.network),
                         "system": self._boot.state(container) if running else "-",
                         "mode": info.get("Config", {}).get("Labels", {}).get(plan.MODE_LABEL, "")})
        return sorted(rows, key=lambda row: int(row["server"][1:] or 0))

    def memory_mib(self) -> dict[str, float]:
        """Memory each running server's cgroup holds now (page cache included), in MiB.

        Read from the host's cgroup files: `docker stats` shows 0 B for these
        containers here (cgroup v1, systemd moves its processes into sub-groups).
        """
        usage = {}
        for server in self.servers:
            info = self.docker.inspect("container", self.spec.container(server)) or {}
            if info.get("State", {}).get("Running"):
                usage[server] = host.cgroup_memory_bytes(info["Id"]) / 2**20
        return usage

    # --- one server ------------------------------------------------------------------

    def container(self, server: str | int) -> str:
        """The container name of `server` ('s1' or 1)."""
        name = plan.server_name(server)
        if name not in self.servers:
            raise LabError(f"lab {self.name!r} has no server {server!r}",
                           f"its servers are {', '.join(self.servers)}")
        return self.spec.container(name)

    def ip(self, server: str | int) -> str:
        """The fixed IPv4 address of `server` on the lab network."""
        self.container(server)
        return plan.server_ip(self._subnet(), plan.server_name(server))

    @property
    def host_ip(self) -> str:
        """This machine's address on the lab network (the bridge's): where tests call from."""
        return plan.host_ip(self._subnet())

    def exec(self, server: str | int, argv: Sequence[str], stdin: bytes | str | None = None,
             timeout: float = 120, check: bool = False,
             env: Mapping[str, str] | None = None) -> Outcome:
        """Run `argv` as root on `server`; `check` raises `LabError` on non-zero status."""
        args = self.exec_argv(server, argv, interactive=stdin is not None, env=env)
        return self.docker(*args[1:], stdin=stdin, timeout=timeout, check=check,
                           hint=f"the command failed on {plan.server_name(server)}")

    def exec_argv(self, server: str | int, argv: Sequence[str], interactive: bool = False,
                  tty: bool = False, env: Mapping[str, str] | None = None) -> list[str]:
        """The `docker exec` command line, to run yourself (in a pty, with Popen...)."""
        flags = (["-i"] if interactive or tty else []) + (["-t"] if tty else [])
        envs = [arg for k, v in (env or {}).items() for arg in ("-e", f"{k}={v}")]
        return self.docker.argv("exec", *flags, *envs, self.container(server), *argv)

    def copy_in(self, server: str | int, local_path: str | os.PathLike,
                dest_dir: str = "/root") -> str:
        """Copy a file or folder into `dest_dir` on `server`; return its path there."""
        if plan.under_tmpfs(dest_dir):
            raise LabError(f"cannot copy into {dest_dir} on {plan.server_name(server)}: "
                           "it is a tmpfs, and docker cp writes under it, out of sight",
                           "copy to /root (the default) or another folder on disk")
        if not os.path.exists(local_path):
            raise LabError(f"cannot copy {local_path} into the lab: no such file")
        self.exec(server, ["mkdir", "-p", dest_dir], check=True)
        self.docker("cp", os.fspath(local_path), f"{self.container(server)}:{dest_dir}/",
                    timeout=600)
        return f"{dest_dir.rstrip('/')}/{os.path.basename(os.path.normpath(local_path))}"

    def restart(self, server: str | int) -> None:
        """Reboot `server`: systemd shuts down cleanly, boots again; /tmp and /run empty."""
        self.docker("restart", "-t", str(STOP_TIMEOUT_S), self.container(server))
        self._wait_booted(plan.server_name(server))

    def kill(self, server: str | int) -> None:
        """Cut `server`'s power: SIGKILL to everything in it. `start()` boots it again."""
        self.docker("kill", self.container(server))

    def start(self, server: str | int) -> None:
        """Boot a stopped or killed `server`; return once it has booted."""
        self.docker("start", self.container(server))
        self._wait_booted(plan.server_name(server))

    # --- steps of up() ---------------------------------------------------------------

    def _refuse_existing(self) -> None:
        for image in sorted({self.spec.image, *self.spec.images.values()}):
            if self.docker.inspect("image", image) is None:
                target = "bare" if image == plan.BARE_IMAGE else \
                    f"bare-{image.rpartition(':')[2]}"
                raise LabError(f"image {image} is missing",
                               f"build it: .venv/bin/python build.py {target}")
        leftovers = (self.docker.names("container", f"{plan.LAB_LABEL}={self.name}") or
                     self.docker.inspect("network", self.spec.network))
        if leftovers:
            raise LabError(f"lab {self.name!r} already exists",
                           f"take it down first: sudo bash scripts/lab.sh --name {self.name} down")

    def _create_network(self) -> None:
        tried: list[ipaddress.IPv4Network] = []
        while True:
            subnet = self.spec.subnet or plan.pick_subnet(self._taken_subnets(), tried)
            outcome = self.docker(*plan.network_argv(self.spec, subnet), check=False)
            if outcome.ok:
                break
            # Another lab may have taken the same subnet a moment ago: try the next one.
            if self.spec.subnet or "overlap" not in outcome.stderr or len(tried) >= 5:
                raise LabError(f"cannot create network {self.spec.network} on {subnet}: "
                               f"{outcome.stderr.strip()}",
                               "pass another subnet, or remove the network in the way")
            tried.append(subnet)
        self.subnet = subnet
        log.info("network %s: %s%s", self.spec.network, subnet,
                 " (internal)" if self.spec.internal else "")
        if self.spec.internal:
            host.add_leak_counter(self._bridge(), self.name)
            self.own_dns = plan.forwards_from_host(host.docker_upstream_dns())
            if self.own_dns:
                log.warning("the host's nameserver is on loopback: Docker would ask it from the "
                            "host's namespace, out of the internal network; servers get --dns "
                            "<own address>, so unknown names fail inside them (docs/lab.md)")

    def _taken_subnets(self) -> list[ipaddress.IPv4Network]:
        taken = [ipaddress.ip_network(s, strict=False) for s in self.docker.subnets()
                 if ":" not in s]
        return taken + plan.parse_routes(host.host_routes())

    def _bridge(self) -> str:
        info = self.docker.inspect("network", self.spec.network) or {}
        return (info.get("Options", {}).get("com.docker.network.bridge.name")
                or f"br-{info['Id'][:12]}")

    def _create_volume(self, server: str) -> None:
        self.docker(*plan.volume_argv(self.spec, server))

    def _start_first(self, server: str) -> None:
        """Start the first server, finding out (once per process) which mode works here."""
        global _mode_here
        if _mode_here is not None:
            self.mode = _mode_here
            return self._create_server(server)
        self.mode = plan.PRIVILEGED
        outcome = self.docker(*self._run_args(server), check=False)
        if not outcome.ok:
            reason = (outcome.stderr.strip().splitlines() or ["no message"])[-1]
            log.info("--privileged refused here (%s); using the capability set of MACHINE.md",
                     reason.removeprefix("docker: "))
            self.docker("rm", "-f", self.spec.container(server))
            self.mode = plan.CAPABILITIES
            self._create_server(server)
        _mode_here = self.mode

    def _create_server(self, server: str) -> None:
        self.docker(*self._run_args(server),
                    hint="both --privileged and the capability set failed: read the error")

    def _run_args(self, server: str) -> list[str]:
        ip = plan.server_ip(self._subnet(), server)
        return plan.run_argv(self.spec, server, ip, self.mode, uuid.uuid4().hex, self.own_dns)

    def _wait_booted(self, server: str, deadline: float | None = None) -> None:
        left = self.boot_timeout if deadline is None else deadline - time.monotonic()
        failed = self._boot.wait(server, max(left, 1))
        if failed:
            self.degraded[server] = failed
            log.warning("%s booted degraded; failed units: %s", server, ", ".join(failed))
        else:
            self.degraded.pop(server, None)

    def _each(self, step: Callable[[str], None], servers: Sequence[str] | None = None) -> None:
        """Run `step` for every server in parallel; raise the first failure."""
        servers = self.servers if servers is None else servers
        with concurrent.futures.ThreadPoolExecutor(max_workers=_PARALLEL) as pool:
            for future in [pool.submit(step, s) for s in servers]:
                future.result()

    def _subnet(self) -> ipaddress.IPv4Network:
        if self.subnet is None:
            info = self.docker.inspect("network", self.spec.network)
            if info is None:
                raise LabError(f"lab {self.name!r} is not up (no network {self.spec.network})",
                               f"bring it up: sudo bash scripts/lab.sh --name {self.name} up N")
            self.subnet = ipaddress.IPv4Network(info["IPAM"]["Config"][0]["Subnet"])
        return self.subnet

    def _down_quietly(self) -> None:
        try:
            self.down()
        except LabError as e:
            log.error("cleaning up lab %s after a failed up() failed too: %s", self.name, e)


def _subnet_arg(subnet: str | None) -> ipaddress.IPv4Network | None:
    try:
        return ipaddress.IPv4Network(subnet) if subnet else None
    except ValueError as e:
        raise LabError(f"subnet {subnet!r} is not an IPv4 network ({e})",
                       "give one like 10.213.7.0/24") from e


def _address(info: dict, network: str) -> str:
    networks = info.get("NetworkSettings", {}).get("Networks", {})
    return networks.get(network, {}).get("IPAddress", "") or "-"
