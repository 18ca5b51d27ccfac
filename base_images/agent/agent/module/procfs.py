"""Node metrics from the text of /proc files: pure functions, no file is opened here.

The agent reads the host's /proc (mounted read-only at /host/proc) and hands the text to
these functions; the tests hand them captured files. Units: bytes, seconds, percent.

    parse_stat(text)            /proc/stat: cumulative cpu ticks, core count, processes
    cpu_usage(before, after)    percent busy / user / system / iowait / steal / idle
    memory(parse_meminfo(text)) /proc/meminfo: total, available, used, swap, in bytes
    parse_diskstats(text)       /proc/diskstats: sectors and operations per device
    io_summary(before, after)   whole disks only (no partitions, dm, md, loop, ram)
    tcp_states(text)            /proc/<pid>/net/tcp or tcp6: connection count per state
    load(text), uptime(text)    /proc/loadavg, /proc/uptime

Standard library only: it runs on the base image's python3.
"""

from __future__ import annotations

import re

SECTOR_BYTES = 512  # /proc/diskstats counts 512-byte sectors whatever the device's own size

#: /proc/net/tcp's "st" column (include/net/tcp_states.h), as lower-case names.
TCP_STATES = {
    "01": "established", "02": "syn_sent", "03": "syn_recv", "04": "fin_wait1",
    "05": "fin_wait2", "06": "time_wait", "07": "close", "08": "close_wait",
    "09": "last_ack", "0A": "listen", "0B": "closing", "0C": "new_syn_recv",
}

#: /proc/stat's cpu columns, in order (proc(5)); guest time is already in user time.
CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")

#: Block devices that would count the same bytes twice, or are no disk at all.
_NOT_A_DISK = re.compile(r"^(loop|ram|zram|dm-|md|sr|fd|nbd)\d")


class ProcError(ValueError):
    """A /proc file does not look like the kernel writes it."""


def _ints(fields, where: str) -> list[int]:
    try:
        return [int(f) for f in fields]
    except ValueError as e:
        raise ProcError(f"{where}: a number was expected ({e})") from e


# --- cpu -----------------------------------------------------------------------------------

def parse_stat(text: str) -> dict:
    """{"cpu": {field: ticks}, "cores": N, "procs_running": N, "procs_blocked": N}."""
    cpu, cores, extra = None, 0, {}
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "cpu":
            values = _ints(fields[1:1 + len(CPU_FIELDS)], "/proc/stat cpu")
            values += [0] * (len(CPU_FIELDS) - len(values))  # old kernels: fewer columns
            cpu = dict(zip(CPU_FIELDS, values))
        elif re.fullmatch(r"cpu\d+", fields[0]):
            cores += 1
        elif fields[0] in ("procs_running", "procs_blocked") and len(fields) > 1:
            extra[fields[0]] = _ints(fields[1:2], f"/proc/stat {fields[0]}")[0]
    if cpu is None:
        raise ProcError("/proc/stat has no 'cpu' line")
    return {"cpu": cpu, "cores": cores or 1, **extra}


def cpu_usage(before: dict, after: dict) -> dict:
    """Percentages of the ticks between two parse_stat() results (all cores together)."""
    delta = {k: max(0, after["cpu"][k] - before["cpu"][k]) for k in CPU_FIELDS}
    total = sum(delta.values())
    idle = delta["idle"] + delta["iowait"]

    def pct(value: float) -> float:
        return round(100.0 * value / total, 1) if total else 0.0
    return {"cores": after["cores"], "busy_percent": pct(total - idle),
            "user_percent": pct(delta["user"] + delta["nice"]),
            "system_percent": pct(delta["system"] + delta["irq"] + delta["softirq"]),
            "iowait_percent": pct(delta["iowait"]), "steal_percent": pct(delta["steal"]),
            "idle_percent": pct(delta["idle"])}


# --- memory --------------------------------------------------------------------------------

def parse_meminfo(text: str) -> dict:
    """{key: bytes} of /proc/meminfo ("kB" there means KiB); counts without a unit as is."""
    values = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        fields = rest.split()
        if not sep or not fields:
            continue
        number = _ints(fields[:1], f"/proc/meminfo {key}")[0]
        values[key.strip()] = number * 1024 if fields[1:2] == ["kB"] else number
    if "MemTotal" not in values:
        raise ProcError("/proc/meminfo has no MemTotal")
    return values


def memory(info: dict) -> dict:
    """Total, available, used (= total - available, what the kernel cannot hand out without
    swapping) and swap, in bytes. Kernels before 3.14 have no MemAvailable: free + buffers
    + cached stands in."""
    total = info["MemTotal"]
    available = info.get("MemAvailable",
                         info.get("MemFree", 0) + info.get("Buffers", 0) + info.get("Cached", 0))
    used = max(0, total - available)
    swap_total, swap_free = info.get("SwapTotal", 0), info.get("SwapFree", 0)
    return {"total_bytes": total, "available_bytes": available, "used_bytes": used,
            "used_percent": round(100.0 * used / total, 1) if total else 0.0,
            "free_bytes": info.get("MemFree", 0), "buffers_bytes": info.get("Buffers", 0),
            "cached_bytes": info.get("Cached", 0), "swap_total_bytes": swap_total,
            "swap_used_bytes": max(0, swap_total - swap_free)}


# --- io --------------------------------------------------------------------------------------

def parse_diskstats(text: str) -> dict:
    """{device: {"reads", "sectors_read", "writes", "sectors_written"}} of /proc/diskstats."""
    devices = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 10:
            continue
        reads, _, sectors_read, _, writes, _, sectors_written = _ints(
            fields[3:10], f"/proc/diskstats {fields[2]}")
        devices[fields[2]] = {"reads": reads, "sectors_read": sectors_read, "writes": writes,
                              "sectors_written": sectors_written}
    return devices


def whole_disks(names) -> list[str]:
    """The devices whose bytes count: whole disks. A partition (sda1 of sda, nvme0n1p2 of
    nvme0n1, mmcblk0p1 of mmcblk0) and device-mapper, md, loop, ram, zram, optical and nbd
    devices are left out, so no byte is counted twice."""
    names = set(names)
    disks = []
    for name in sorted(names):
        if _NOT_A_DISK.match(name):
            continue
        if any(name != parent and name.startswith(parent) and
               re.fullmatch(r"p?\d+", name[len(parent):]) for parent in names):
            continue
        disks.append(name)
    return disks


def io_summary(after: dict, before: dict | None = None, seconds: float = 0.0) -> dict:
    """Bytes and operations since boot over the whole disks, and per second between two
    parse_diskstats() results `seconds` apart (0 when there is no earlier sample)."""
    disks = whole_disks(after)
    per_device = {name: {"read_bytes": after[name]["sectors_read"] * SECTOR_BYTES,
                         "written_bytes": after[name]["sectors_written"] * SECTOR_BYTES,
                         "reads": after[name]["reads"], "writes": after[name]["writes"]}
                  for name in disks}
    totals = {key: sum(d[key] for d in per_device.values())
              for key in ("read_bytes", "written_bytes", "reads", "writes")}
    rates = {"read_bytes_per_s": 0.0, "written_bytes_per_s": 0.0}
    if before is not None and seconds > 0:
        for key, field in (("read_bytes_per_s", "sectors_read"),
                           ("written_bytes_per_s", "sectors_written")):
            moved = sum(max(0, after[n][field] - before[n][field]) for n in disks if n in before)
            rates[key] = round(moved * SECTOR_BYTES / seconds, 1)
    return {**totals, **rates, "devices": per_device}


# --- connections -------------------------------------------------------------------------------

def tcp_states(text: str) -> dict:
    """{state name: count} of one /proc/net/tcp or tcp6 file (its header line skipped)."""
    counts: dict = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4:
            continue
        state = TCP_STATES.get(fields[3].upper(), f"unknown_{fields[3]}")
        counts[state] = counts.get(state, 0) + 1
    return counts


def connections(tcp: str, tcp6: str = "") -> dict:
    """TCP connection counts of the host: per state over IPv4 and IPv6 together, the total,
    and each family's total. `established` is what "connections" means to most people."""
    v4, v6 = tcp_states(tcp), tcp_states(tcp6) if tcp6 else {}
    states = {name: v4.get(name, 0) + v6.get(name, 0) for name in sorted({*v4, *v6})}
    return {"total": sum(states.values()), "established": states.get("established", 0),
            "listen": states.get("listen", 0), "states": states,
            "ipv4": sum(v4.values()), "ipv6": sum(v6.values())}


# --- load, uptime --------------------------------------------------------------------------------

def load(text: str) -> dict:
    """/proc/loadavg: the 1, 5 and 15 minute averages, runnable and total threads."""
    fields = text.split()
    if len(fields) < 4 or "/" not in fields[3]:
        raise ProcError(f"/proc/loadavg reads {text.strip()!r}")
    try:
        one, five, fifteen = (float(f) for f in fields[:3])
    except ValueError as e:
        raise ProcError(f"/proc/loadavg reads {text.strip()!r}") from e
    running, total = _ints(fields[3].split("/", 1), "/proc/loadavg")
    return {"1m": one, "5m": five, "15m": fifteen, "running": running, "threads": total}


def uptime(text: str) -> float:
    """/proc/uptime: seconds since boot."""
    try:
        return float(text.split()[0])
    except (IndexError, ValueError) as e:
        raise ProcError(f"/proc/uptime reads {text.strip()!r}") from e
