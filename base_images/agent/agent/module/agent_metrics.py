"""Node metrics from the host's /proc (mounted read-only at /host/proc), read by psutil
(Debian's python3-psutil): the JSON of GET /v1/metrics (docs/agent.md).

psutil reads the files under `psutil.PROCFS_PATH`, one global of the process, so every read
here sets it under one lock. What psutil does not give is the agent's own: rates as deltas
over a window, which block devices are whole disks, the thread counts of /proc/loadavg, and
TCP connections counted per state. psutil.net_connections() would count those too, but it
decodes every address and maps sockets to processes: 3x the time of counting the state
column (7,500 sockets: 322 ms against 111 ms, measured in the agent's image), and it reads
another namespace's table only with PROCFS_PATH pointed at /proc/1.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time

import psutil

SCHEMA = 1
CPU_WINDOW_S = 0.25        # cpu and io rates: this window when no earlier sample is recent
MIN_WINDOW_S = 0.1         # an earlier sample closer than this is too short a window

#: /proc/net/tcp's "st" column (include/net/tcp_states.h), as lower-case names.
TCP_STATES = {
    "01": "established", "02": "syn_sent", "03": "syn_recv", "04": "fin_wait1",
    "05": "fin_wait2", "06": "time_wait", "07": "close", "08": "close_wait",
    "09": "last_ack", "0A": "listen", "0B": "closing", "0C": "new_syn_recv",
}
#: Block devices that would count the same bytes twice, or are no disk at all.
_NOT_A_DISK = re.compile(r"^(loop|ram|zram|dm-|md|sr|fd|nbd)\d")
_PROCFS = threading.Lock()


class MetricsError(Exception):
    """The host's /proc cannot be read, or does not read as the kernel writes it."""


@contextlib.contextmanager
def procfs_at(path: str):
    """psutil reading the /proc at `path` (the lock: PROCFS_PATH is process-wide)."""
    with _PROCFS:
        saved, psutil.PROCFS_PATH = psutil.PROCFS_PATH, path
        try:
            yield
        except (OSError, ValueError, KeyError, IndexError, RuntimeError, psutil.Error) as e:
            raise MetricsError(f"{path}: {e}") from e
        finally:
            psutil.PROCFS_PATH = saved


# --- pure -------------------------------------------------------------------------------------

def cpu_usage(before, after) -> dict:
    """Percentages of the cpu time between two psutil.cpu_times() (all cores together):
    busy is all but idle and iowait; user includes nice; system includes irq and softirq
    (guest time is already in user time)."""
    fields = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    delta = {k: max(0.0, getattr(after, k, 0.0) - getattr(before, k, 0.0)) for k in fields}
    total = sum(delta.values())

    def pct(value: float) -> float:
        return round(100.0 * value / total, 1) if total else 0.0
    return {"busy_percent": pct(total - delta["idle"] - delta["iowait"]),
            "user_percent": pct(delta["user"] + delta["nice"]),
            "system_percent": pct(delta["system"] + delta["irq"] + delta["softirq"]),
            "iowait_percent": pct(delta["iowait"]), "steal_percent": pct(delta["steal"]),
            "idle_percent": pct(delta["idle"])}


def memory(vm, swap) -> dict:
    """psutil.virtual_memory() and swap_memory() in bytes; used = total - available (what
    the kernel cannot hand out without swapping), not psutil's own `used`."""
    used = max(0, vm.total - vm.available)
    return {"total_bytes": vm.total, "available_bytes": vm.available, "used_bytes": used,
            "used_percent": round(100.0 * used / vm.total, 1) if vm.total else 0.0,
            "free_bytes": vm.free, "buffers_bytes": vm.buffers, "cached_bytes": vm.cached,
            "swap_total_bytes": swap.total, "swap_used_bytes": swap.used}


def whole_disks(names) -> list[str]:
    """The devices whose bytes count: whole disks. A partition (sda1 of sda, nvme0n1p2 of
    nvme0n1, mmcblk0p1 of mmcblk0) and device-mapper, md, loop, ram, zram, optical and nbd
    devices are left out, so no byte is counted twice."""
    names = set(names)
    return [name for name in sorted(names) if not _NOT_A_DISK.match(name) and not any(
        name != parent and name.startswith(parent) and re.fullmatch(r"p?\d+", name[len(parent):])
        for parent in names)]


def io_summary(after: dict, before: dict | None = None, seconds: float = 0.0) -> dict:
    """Bytes and operations since boot over the whole disks of psutil's
    disk_io_counters(perdisk=True), and per second between two of them `seconds` apart."""
    disks = whole_disks(after)
    devices = {n: {"read_bytes": after[n].read_bytes, "written_bytes": after[n].write_bytes,
                   "reads": after[n].read_count, "writes": after[n].write_count}
               for n in disks}
    totals = {key: sum(d[key] for d in devices.values())
              for key in ("read_bytes", "written_bytes", "reads", "writes")}
    rates = {"read_bytes_per_s": 0.0, "written_bytes_per_s": 0.0}
    if before is not None and seconds > 0:
        for key, field in (("read_bytes_per_s", "read_bytes"),
                           ("written_bytes_per_s", "write_bytes")):
            moved = sum(max(0, getattr(after[n], field) - getattr(before[n], field))
                        for n in disks if n in before)
            rates[key] = round(moved / seconds, 1)
    return {**totals, **rates, "devices": devices}


def tcp_states(text: str) -> dict:
    """{state name: count} of one /proc/<pid>/net/tcp or tcp6 (its header line skipped)."""
    counts: dict = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3:
            state = TCP_STATES.get(fields[3].upper(), f"unknown_{fields[3]}")
            counts[state] = counts.get(state, 0) + 1
    return counts


def connections(tcp: str, tcp6: str = "") -> dict:
    """TCP connection counts: per state over IPv4 and IPv6 together, the total, and each
    family's total. `established` is what "connections" means to most people."""
    v4, v6 = tcp_states(tcp), tcp_states(tcp6)
    states = {name: v4.get(name, 0) + v6.get(name, 0) for name in sorted({*v4, *v6})}
    return {"total": sum(states.values()), "established": states.get("established", 0),
            "listen": states.get("listen", 0), "states": states,
            "ipv4": sum(v4.values()), "ipv6": sum(v6.values())}


def load(text: str) -> dict:
    """/proc/loadavg: the 1, 5 and 15 minute averages, runnable and total threads (psutil
    gives the averages only)."""
    fields = text.split()
    try:
        running, threads = (int(n) for n in fields[3].split("/", 1))
        return {"1m": float(fields[0]), "5m": float(fields[1]), "15m": float(fields[2]),
                "running": running, "threads": threads}
    except (IndexError, ValueError) as e:
        raise MetricsError(f"/proc/loadavg reads {text.strip()!r}") from e


# --- the adapter -------------------------------------------------------------------------------

class Collector:
    """Node metrics from the host's /proc at `proc_root`.

    CPU and io rates are deltas: since the previous call when it is at least 0.1 s old,
    else over a window of 0.25 s measured now (the first call, or calls close together).
    TCP connections are read from /proc/1/net: PID 1 is the host's init, so these are the
    host network namespace's connections (/proc/net is the reader's own namespace).
    """

    def __init__(self, proc_root: str, hostname: str | None = None, node_id: str = "",
                 clock=time.monotonic, sleep=time.sleep, window_s: float = CPU_WINDOW_S):
        self.proc_root, self.node_id = proc_root, node_id
        self.hostname = hostname or socket.gethostname()
        self.clock, self.sleep, self.window_s = clock, sleep, window_s
        self._last = None
        self._lock = threading.Lock()

    def _sample(self):
        with procfs_at(self.proc_root):
            # nowrap=False: rates are our own deltas, and psutil's wrap fix-up keeps
            # process-wide state across /proc roots
            return (self.clock(), psutil.cpu_times(), len(psutil.cpu_times(percpu=True)),
                    psutil.disk_io_counters(perdisk=True, nowrap=False))

    def _window(self):
        with self._lock:
            current = self._sample()
            before = self._last
            if before is None or current[0] - before[0] < MIN_WINDOW_S:
                before = current
                self.sleep(self.window_s)
                current = self._sample()
            self._last = current
        return before, current

    def _host(self) -> dict:
        with procfs_at(self.proc_root):
            with open(os.path.join(self.proc_root, "loadavg"), encoding="ascii") as f:
                loadavg = f.read()
            return {"uptime_s": round(time.time() - psutil.boot_time(), 1),
                    "load": load(loadavg),
                    "memory": memory(psutil.virtual_memory(), psutil.swap_memory())}

    def _connections(self) -> dict:
        """PID 1's sockets: the host network namespace's (see the class docstring)."""
        def table(name: str) -> str:
            try:
                with open(os.path.join(self.proc_root, "1", "net", name), encoding="ascii",
                          errors="replace") as f:
                    return f.read()
            except FileNotFoundError:
                return ""  # no IPv6 on this host: no tcp6
            except OSError as e:
                raise MetricsError(f"{self.proc_root}/1/net/{name}: {e}") from e
        return connections(table("tcp"), table("tcp6"))

    def metrics(self) -> dict:
        """GET /v1/metrics; MetricsError when /proc cannot be read."""
        before, now = self._window()
        seconds = max(now[0] - before[0], 1e-9)
        window = {"window_s": round(seconds, 3)}
        return {"schema": SCHEMA, "hostname": self.hostname, "node_id": self.node_id,
                "time": round(time.time(), 3), **self._host(),
                "cpu": {"cores": now[2], **cpu_usage(before[1], now[1]), **window},
                "io": {**io_summary(now[3], before[3], seconds), **window},
                "connections": self._connections()}
