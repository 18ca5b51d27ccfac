"""Node metrics assembled from the host's /proc (the adapter around procfs's pure parsers):
the JSON of GET /v1/metrics."""

from __future__ import annotations

import os
import socket
import threading
import time

import procfs

SCHEMA = 1
CPU_WINDOW_S = 0.25        # cpu and io rates: this window when no earlier sample is recent
MIN_WINDOW_S = 0.1         # an earlier sample closer than this is too short a window


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

    def read(self, name: str, missing_ok: bool = False) -> str:
        try:
            with open(os.path.join(self.proc_root, name), encoding="ascii",
                      errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            if missing_ok:  # no IPv6 on this host: no tcp6
                return ""
            raise

    def _sample(self):
        return (self.clock(), procfs.parse_stat(self.read("stat")),
                procfs.parse_diskstats(self.read("diskstats")))

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

    def metrics(self) -> dict:
        before, now = self._window()
        seconds = max(now[0] - before[0], 1e-9)
        return {
            "schema": SCHEMA, "hostname": self.hostname, "node_id": self.node_id,
            "time": round(time.time(), 3),
            "uptime_s": procfs.uptime(self.read("uptime")),
            "load": procfs.load(self.read("loadavg")),
            "cpu": {**procfs.cpu_usage(before[1], now[1]), "window_s": round(seconds, 3)},
            "memory": procfs.memory(procfs.parse_meminfo(self.read("meminfo"))),
            "io": {**procfs.io_summary(now[2], before[2], seconds),
                   "window_s": round(seconds, 3)},
            "connections": procfs.connections(self.read("1/net/tcp", missing_ok=True),
                                              self.read("1/net/tcp6", missing_ok=True)),
        }

