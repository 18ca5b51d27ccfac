"""Processes the installer starts detached where there is no systemd (dockerd, the portal),
known by their pid file (read through the host adapter, so tests run under a root dir)."""

from __future__ import annotations

import os
import signal
import time


def pid_alive(host, pidfile: str) -> int | None:
    """The pid in `pidfile` if that process runs (a zombie does not count)."""
    try:
        pid = int((host.read_text(pidfile) or "").strip())
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rpartition(")")[2].split()[0] == "Z":
                return None
    except (ValueError, OSError, IndexError):
        return None
    return pid


def terminate(host, pidfile: str, wait_s: float) -> int | None:
    """SIGTERM the process of `pidfile` and wait up to `wait_s` for it to end; its pid if it
    still runs then (the caller decides: kill it, or say so), else None."""
    pid = pid_alive(host, pidfile)
    if pid is None:
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and pid_alive(host, pidfile) == pid:
        time.sleep(0.2)
    return pid if pid_alive(host, pidfile) == pid else None
