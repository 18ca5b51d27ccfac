"""What preflight knows of a host: `probe(root)` reads it, mostly from files under `root`.

Files come from ``<root>/proc``, ``<root>/sys``, ``<root>/etc``, ``<root>/lib/modules``
(distro's ``root_dir`` idea), so a captured tree under tests/unit/data/hosts/ is a
host. The few facts no file holds (uname, euid, free disk, ports, glibc, the
Docker engine) come from a `System` (dragonball.installer.preflight.system), whose
answers are plain data and are recorded next to a captured tree.
Nothing here writes anything.
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
import os
import zlib

import distro

from dragonball.installer.preflight import kernel, parse

log = logging.getLogger(__name__)

#: Kernel parameters the installer sets (dragonball.installer.osprep): their values now.
SYSCTL_KEYS = ("net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables",
               "net.bridge.bridge-nf-call-ip6tables", "fs.file-max",
               "fs.inotify.max_user_instances", "fs.inotify.max_user_watches")


@dataclasses.dataclass
class Facts:
    """Plain, JSON-ready facts of one host; the rules read nothing else."""

    euid: int
    arch: str
    kernel: str
    hostname: str
    distro: dict       # {"id", "version", "name", "codename", "like"}
    glibc: str | None
    cpus: int
    memory: int        # bytes
    swap: int          # bytes of active swap
    kernel_features: dict  # name -> {"state", "source"} (kernel.py)
    cgroups: dict      # {"v1": [controllers], "unified": mount point | None, "v2_controllers"}
    paths: dict        # "data"/"temp"/"docker"/"runtime" -> absolute path
    mounts: dict       # same keys -> {"target", "fstype", "options"} of the mount holding it
    disk: dict         # same keys -> {"path", "free", "total", "device"} or None
    selinux: dict      # {"mode": enforcing|permissive|disabled, "config": ... or None}
    firewall: dict     # {"firewalld": bool, "ufw": bool}
    docker: dict       # {"binary", "client", "server", "dockerd", "swarm", "error"}
    ports: dict        # "2377/tcp" -> "free" | "in use" | other text
    sysctl: dict = dataclasses.field(default_factory=dict)  # SYSCTL_KEYS -> "value" | None
    init: dict = dataclasses.field(default_factory=dict)  # {"pid1": comm, "systemd": booted}
    limits: dict = dataclasses.field(default_factory=dict)  # {"nr_open", "nofile_hard", "sys_resource"}
    portal: dict | None = None   # {"address", "ports": {"8443/tcp": "open" | reason}}
    cluster: dict | None = None  # from the join step: {"hostnames": [...], "portal_time": t}
    time: float | None = None    # this host's clock when probed (epoch seconds)
    #: SYSTEM_DIRS -> the mount holding each ({"target", "fstype", "options"} or None)
    system_mounts: dict = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def relative(path: str) -> str:
    """A host path as relative to the host's root: "/sys/fs/cgroup" -> "sys/fs/cgroup"."""
    return os.path.normpath("/" + path).lstrip("/")


class HostFiles:
    """Read-only access to the files of a host rooted at `root` ("/" for this one)."""

    def __init__(self, root: str = "/") -> None:
        self.root = root

    def path(self, rel: str) -> str:
        return os.path.join(self.root, relative(rel))

    def text(self, rel: str) -> str | None:
        """The file's text, or None when it is missing or unreadable."""
        try:
            with open(self.path(rel), "rb") as f:
                data = f.read()
        except OSError:
            return None
        if rel.endswith(".gz"):
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError, zlib.error):
                log.debug("%s is not gzip", rel)
                return None
        return data.decode("utf-8", errors="replace")

    def names(self, rel: str) -> list[str]:
        try:
            return sorted(os.listdir(self.path(rel)))
        except OSError:
            return []

    def exists(self, rel: str) -> bool:
        return os.path.lexists(self.path(rel))


def probe(system, paths: dict, ports: list, root: str = "/", portal: str | None = None,
          files: HostFiles | None = None) -> Facts:
    """Facts of the host under `root`, with `system` answering what no file holds.

    `paths` maps "data", "temp", "docker" to absolute paths (they may not exist yet);
    `ports` are the `Port`s to test; `portal` ("host" or "host:port") is tried when given.
    `files` replaces the reader of `root` (a recorder, when capturing a host).
    """
    files = files or HostFiles(root)
    uname = system.uname()
    release = (files.text("proc/sys/kernel/osrelease") or uname["release"]).strip()
    table = parse.mounts(files.text("proc/mounts") or "")
    meminfo = parse.meminfo(files.text("proc/meminfo") or "")
    return Facts(
        euid=system.euid(), arch=uname["machine"], kernel=release,
        hostname=_hostname(files), distro=_distro(files.root), glibc=system.glibc(),
        cpus=parse.cpu_count(files.text("proc/cpuinfo") or ""),
        memory=meminfo.get("MemTotal", 0),
        swap=sum(s["size"] for s in parse.swaps(files.text("proc/swaps") or "")),
        kernel_features=kernel.features(_kernel_evidence(files, release)),
        cgroups=_cgroups(files, table), paths=dict(paths),
        mounts={key: _mount_fact(path, table) for key, path in paths.items()},
        disk={key: system.disk(path) for key, path in paths.items()},
        selinux=_selinux(files), firewall=_firewall(files), docker=system.docker(),
        ports=system.ports(ports), sysctl=_sysctl(files), init=_init(files),
        limits=_limits(files),
        portal=system.portal(portal) if portal else None,
        time=system.now(),
        system_mounts={path: _mount_fact(path, table) for path in SYSTEM_DIRS})


def _sysctl(files: HostFiles) -> dict:
    """Each of SYSCTL_KEYS -> its value now (text, as /proc/sys shows it), None if absent."""
    values = {}
    for key in SYSCTL_KEYS:
        text = files.text("proc/sys/" + key.replace(".", "/"))
        values[key] = " ".join(text.split()) if text is not None else None
    return values


def _init(files: HostFiles) -> dict:
    """PID 1's name, and whether systemd booted this host (sd_booted: /run/systemd/system)."""
    return {"pid1": (files.text("proc/1/comm") or "").strip() or None,
            "systemd": files.exists("run/systemd/system")}


#: CAP_SYS_RESOURCE (linux/capability.h): needed to raise a hard limit.
CAP_SYS_RESOURCE = 24


def _limits(files: HostFiles) -> dict:
    """How many open files a process may get here: the kernel's ceiling (nr_open), this
    process's hard limit, and whether it may raise it (CAP_SYS_RESOURCE in its bounding
    set; without it, as in a container that drops it, nothing goes above the hard limit)."""
    nr_open = (files.text("proc/sys/fs/nr_open") or "").strip()
    hard = None
    for line in (files.text("proc/self/limits") or "").splitlines():
        if line.startswith("Max open files"):
            field = line.split()[4]
            hard = int(field) if field.isdigit() else None
    bounding = None
    for line in (files.text("proc/self/status") or "").splitlines():
        if line.startswith("CapBnd:"):
            bounding = bool(int(line.split()[1], 16) >> CAP_SYS_RESOURCE & 1)
    return {"nr_open": int(nr_open) if nr_open.isdigit() else None, "nofile_hard": hard,
            "sys_resource": bounding}


def _hostname(files: HostFiles) -> str:
    text = files.text("proc/sys/kernel/hostname") or files.text("etc/hostname") or ""
    return text.strip()


def _distro(root: str) -> dict:
    found = distro.LinuxDistribution(root_dir=root, include_lsb=False, include_uname=False,
                                     include_oslevel=False)
    return {"id": found.id(), "version": found.version(), "name": found.name(pretty=True),
            "codename": found.codename(), "like": found.like()}


def _kernel_evidence(files: HostFiles, release: str) -> kernel.Evidence:
    modules_dir = next((d for d in (f"lib/modules/{release}", f"usr/lib/modules/{release}")
                        if files.exists(d)), None)

    def module_list(name: str) -> frozenset | None:
        text = files.text(f"{modules_dir}/{name}") if modules_dir else None
        return frozenset(parse.module_names(text)) if text is not None else None

    config, config_source = None, ""
    for rel in ("proc/config.gz", f"boot/config-{release}"):
        text = files.text(rel)
        if text is not None:
            config, config_source = parse.kernel_config(text), "/" + rel
            break
    return kernel.Evidence(
        loaded=frozenset(parse.module_names(files.text("proc/modules") or "")),
        sys_module=frozenset(files.names("sys/module")), active=_active_features(files),
        builtin=module_list("modules.builtin"), available=module_list("modules.dep"),
        config=config, config_source=config_source)


def _active_features(files: HostFiles) -> dict:
    """Features whose use shows in /proc (only they create these entries) -> where."""
    active = {}
    if "overlay" in parse.filesystems(files.text("proc/filesystems") or ""):
        active["overlay"] = "in /proc/filesystems"
    if files.exists("proc/sys/net/bridge"):
        active["br_netfilter"] = "/proc/sys/net/bridge exists"
    if files.exists("proc/net/ip_tables_names"):
        active["netfilter"] = "/proc/net/ip_tables_names exists"
    return active


def _cgroups(files: HostFiles, table: list) -> dict:
    unified = next((m.target for m in table if m.fstype == "cgroup2"), None)
    controllers = files.text(f"{unified}/cgroup.controllers") if unified else None
    return parse.cgroups(table, controllers)


#: Where the install writes outside the data directory: the engine's programs and units
#: (/usr, /etc), the runtime (/opt), the engine's and DragonBall's state (/var/lib).
SYSTEM_DIRS = ("/usr", "/etc", "/opt", "/var/lib")


def _mount_fact(path: str, table: list) -> dict | None:
    mount = parse.mount_of(os.path.normpath(path), table)
    if mount is None:
        return None
    return {"target": mount.target, "fstype": mount.fstype, "options": list(mount.options)}


def _selinux(files: HostFiles) -> dict:
    enforce = (files.text("sys/fs/selinux/enforce") or "").strip()
    mode = {"1": "enforcing", "0": "permissive"}.get(enforce, "disabled")
    config = parse.key_values(files.text("etc/selinux/config") or "").get("SELINUX")
    return {"mode": mode, "config": config.lower() if config else None}


def _firewall(files: HostFiles) -> dict:
    comms = [files.text(f"proc/{pid}/comm") or "" for pid in files.names("proc") if pid.isdigit()]
    ufw = parse.key_values(files.text("etc/ufw/ufw.conf") or "").get("ENABLED", "")
    return {"firewalld": "firewalld" in parse.process_names(comms),
            "ufw": ufw.lower() == "yes"}
