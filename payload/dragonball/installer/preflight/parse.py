"""Pure parsers of the host files preflight reads: text in, plain data out.

Each takes the text of one file (``/proc/mounts``, ``/proc/meminfo``...) so a
captured file is a test case; none opens a file or runs anything.
"""

from __future__ import annotations

import dataclasses
import json
import re

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")
CGROUP_V1_CONTROLLERS = frozenset((
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "net_cls",
    "net_prio", "perf_event", "hugetlb", "rdma", "misc"))


@dataclasses.dataclass(frozen=True)
class Mount:
    """One line of /proc/mounts."""

    source: str
    target: str
    fstype: str
    options: tuple[str, ...]


def version_tuple(text: str | None) -> tuple[int, ...]:
    """The leading dotted numbers of a version: "6.18.44-fc" -> (6, 18, 44); "" -> ()."""
    match = re.match(r"\s*(\d+(?:\.\d+)*)", text or "")
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


def mounts(text: str) -> list[Mount]:
    """/proc/mounts -> mounts in mount order (octal escapes such as ``\\040`` decoded)."""
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            source, target, fstype, options = (_unescape(f) for f in fields[:4])
            found.append(Mount(source, target, fstype, tuple(options.split(","))))
    return found


def _unescape(field: str) -> str:
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def mount_of(path: str, table: list[Mount]) -> Mount | None:
    """The mount that holds `path` (absolute): the longest mount point above it, latest wins."""
    best = None
    for mount in table:
        target = mount.target.rstrip("/") or "/"
        inside = path == target or path.startswith(target if target == "/" else target + "/")
        if inside and (best is None or len(target) >= len(best.target.rstrip("/") or "/")):
            best = mount
    return best


def meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo -> field -> bytes ("MemTotal: 24684096 kB" -> 25276514304)."""
    values = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            scale = 1024 if fields[1:] == ["kB"] else 1
            values[name.strip()] = int(fields[0]) * scale
    return values


def cpu_count(cpuinfo_text: str) -> int:
    """/proc/cpuinfo -> how many logical CPUs it lists."""
    return sum(1 for line in cpuinfo_text.splitlines()
               if line.split(":")[0].strip() == "processor")


def filesystems(text: str) -> list[str]:
    """/proc/filesystems -> the file system types this kernel knows now."""
    return [line.split()[-1] for line in text.splitlines() if line.strip()]


def swaps(text: str) -> list[dict]:
    """/proc/swaps -> [{"name", "type", "size" (bytes)}]; the header line is skipped."""
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3 and fields[2].isdigit():
            found.append({"name": _unescape(fields[0]), "type": fields[1],
                          "size": int(fields[2]) * 1024})
    return found


def module_names(text: str) -> set[str]:
    """modules.builtin, modules.dep or /proc/modules -> module names ("br_netfilter").

    Paths such as ``kernel/net/bridge/br_netfilter.ko.xz:`` give their base name;
    ``-`` and ``_`` are the same in module names, so ``_`` is used.
    """
    names = set()
    for line in text.splitlines():
        first = line.split(":")[0].split()[0] if line.strip() else ""
        base = first.rsplit("/", 1)[-1]
        base = re.sub(r"\.ko(\.(xz|gz|zst))?$", "", base)
        if base:
            names.add(base.replace("-", "_"))
    return names


def kernel_config(text: str) -> dict[str, str]:
    """A kernel .config (/proc/config.gz unpacked, /boot/config-*) -> {"CONFIG_X": "y"|"m"|...}."""
    config = {}
    for line in text.splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name.startswith("CONFIG_"):
            config[name] = value.strip('"')
    return config


def key_values(text: str) -> dict[str, str]:
    """``KEY=value`` lines (/etc/selinux/config, /etc/ufw/ufw.conf); comments skipped."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip("\"'")
    return values


def cgroups(table: list[Mount], v2_controllers_text: str | None) -> dict:
    """Which cgroup hierarchies are mounted: {"v1": [controllers], "unified", "v2_controllers"}.

    v1 controllers come from the options of each ``cgroup`` mount; "unified" is where
    cgroup2 is mounted (None: nowhere), its controllers from its cgroup.controllers
    (empty when that was not read).
    """
    v1 = sorted({o for m in table if m.fstype == "cgroup" for o in m.options
                 if o in CGROUP_V1_CONTROLLERS})
    unified = next((m.target for m in table if m.fstype == "cgroup2"), None)
    controllers = sorted(v2_controllers_text.split()) if v2_controllers_text else []
    return {"v1": v1, "unified": unified, "v2_controllers": controllers}


def process_names(comms: list[str]) -> set[str]:
    """The contents of every /proc/<pid>/comm -> the set of process names."""
    return {c.strip() for c in comms if c.strip()}


def docker_version(text: str) -> dict:
    """``docker version --format '{{json .}}'`` -> {"client", "server"} (None when absent).

    The server's version is the Engine component's, else the top-level one (19.03
    and older print no components).
    """
    try:
        data = json.loads(text)
    except ValueError:
        return {"client": None, "server": None}
    client = (data.get("Client") or {}).get("Version")
    server_data = data.get("Server") or {}
    engine = [c for c in server_data.get("Components") or [] if c.get("Name") == "Engine"]
    server = engine[0].get("Version") if engine else server_data.get("Version")
    return {"client": client, "server": server}


def dockerd_version(text: str) -> str | None:
    """``dockerd --version`` ("Docker version 20.10.24+dfsg1, build 5d6db84") -> "20.10.24+dfsg1"."""
    match = re.search(r"version\s+([0-9][^\s,]*)", text)
    return match.group(1) if match else None


def glibc_version(confstr: str | None) -> str | None:
    """`getconf GNU_LIBC_VERSION` ("glibc 2.36") -> "2.36"; None for another libc."""
    if confstr and confstr.startswith("glibc "):
        return confstr.split()[1]
    return None


def address(text: str, default_port: int) -> tuple[str, int]:
    """"host", "host:port", "[v6]:port" or a bare IPv6 address -> (host, port).

    Raises ValueError with a message a person can act on.
    """
    text = text.strip()
    if "://" in text:
        raise ValueError(f"{text!r}: give HOST or HOST:PORT, without a scheme")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ("" if not rest else None)
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if not host or port is None or any(c.isspace() or c in "/@" for c in host):
        raise ValueError(f"{text!r} is not an address: give HOST or HOST:PORT")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    return host, int(port) if port else default_port


#: Distribution families by os-release ID, and by the IDs they name in ID_LIKE: what
#: preflight and OS preparation say and do differs by family (docs/preflight.md).
FAMILIES = {
    "debian": ("debian", "ubuntu", "linuxmint", "raspbian", "pop", "elementary", "deepin",
               "uos", "kali"),
    "rhel": ("rhel", "centos", "rocky", "almalinux", "ol", "fedora", "openeuler", "kylin",
             "anolis", "euleros", "circle", "amzn", "alinux", "tencentos", "opencloudos"),
    "suse": ("sles", "sled", "suse", "opensuse", "opensuse-leap", "opensuse-tumbleweed",
             "sle_hpc"),
}
FAMILY_NAMES = {"debian": "Debian family", "rhel": "RHEL family", "suse": "SUSE family"}


def family(distro_id: str | None, like: str | None) -> str | None:
    """"debian", "rhel", "suse" or None: by the ID first, then by each ID_LIKE word (in
    its order: `ID_LIKE="rhel centos fedora"` is RHEL's family)."""
    by_id = {i: name for name, ids in FAMILIES.items() for i in ids}
    for word in [(distro_id or "").lower(), *(like or "").lower().split()]:
        if word in by_id:
            return by_id[word]
    return None
