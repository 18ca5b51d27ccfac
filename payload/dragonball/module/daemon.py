"""Background servers of a module, for its action scripts: the pid file, whether the
server still runs, and where its output goes.

In every image built FROM dragonballbase:
    sys.path.insert(0, "/opt/dragon_ball/lib"); from dragonball.module import daemon

Standard library only: it runs on the base image's python3.
"""

from __future__ import annotations

import os
import signal
import time

CONTAINER_LOG = "/proc/1/fd/1"  # PID 1's stdout: what `docker logs` shows


def read_pid(path: str) -> int | None:
    """The pid written in `path`, or None when there is none."""
    try:
        with open(path, encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def alive(pid: int, marker: bytes) -> bool:
    """True while `pid` runs (not a zombie) and its command line holds `marker`,
    so a pid reused by another program after a restart is not taken for the server."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            ours = marker in f.read()
    except (OSError, IndexError):
        return False
    return state != "Z" and ours


def container_log(fallback_name: str):
    """Where a server's output goes, opened for appending (unbuffered): the container log
    when it can be opened, so a server (re)started from a `docker exec` does not write
    into the exec's pipe, which closes (a Go server dies of SIGPIPE); else
    log/<fallback_name> in the module's log folder."""
    try:
        return open(CONTAINER_LOG, "ab", buffering=0)
    except OSError:
        folder = os.environ.get("DRAGONBALL_LOG_DIR", os.path.join(os.getcwd(), "log"))
        os.makedirs(folder, exist_ok=True)
        return open(os.path.join(folder, fallback_name), "ab", buffering=0)


def terminate(pid: int | None, marker: bytes, within: float, kill: bool = False) -> str:
    """Stop the server `pid`: SIGTERM, wait up to `within` seconds, then SIGKILL if `kill`.

    Returns "not running", "stopped" or "still running" (each module words its own message).
    """
    if pid is None or not alive(pid, marker):
        return "not running"
    _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + within
    while alive(pid, marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid, marker) and kill:
        _signal(pid, signal.SIGKILL)
        time.sleep(0.2)
    return "still running" if alive(pid, marker) else "stopped"


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass  # it ended between the check and the signal: what we wanted
