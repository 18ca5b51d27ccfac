"""The processes start scripts leave behind: adopt them, reap them, end them.

The supervisor makes itself a child subreaper, so a server that daemonizes
(double fork, setsid) stays its descendant instead of escaping to PID 1. At
stop, exactly its descendants are ended, which is also safe outside a
container. Reading /proc is kept apart from the choices (`descendants`,
`zombies`), which are pure and tested with plain data.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import time

log = logging.getLogger(__name__)
PROC = "/proc"
PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux prctl); False where the kernel refuses."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def read_table(proc_root: str = PROC) -> dict:
    """pid -> (ppid, state letter) of every process under `proc_root`."""
    table = {}
    for name in os.listdir(proc_root):
        if not name.isdigit():
            continue
        try:
            with open(os.path.join(proc_root, name, "stat"), encoding="ascii",
                      errors="replace") as f:
                stat = f.read()
        except OSError:
            continue  # ended while we looked
        fields = stat[stat.rindex(")") + 2:].split()  # the name may hold spaces
        table[int(name)] = (int(fields[1]), fields[0])
    return table


def descendants(table: dict, root_pid: int) -> set:
    """Every live (non-zombie) process below `root_pid`."""
    children: dict = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), list(children.get(root_pid, []))
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo += children.get(pid, [])
    return {p for p in found if table[p][1] != "Z"}


def zombies(table: dict, parent: int, busy: set) -> set:
    """Dead children of `parent` nobody else waits for (not in `busy`)."""
    return {p for p, (ppid, state) in table.items()
            if ppid == parent and state == "Z" and p not in busy}


def reap(busy: set, proc_root: str = PROC) -> None:
    """Collect adopted zombies; leaves children that a Popen is waiting for."""
    for pid in zombies(read_table(proc_root), os.getpid(), busy):
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def end_descendants(grace: float, proc_root: str = PROC) -> list:
    """SIGTERM every descendant, SIGKILL those alive `grace` s later; the pids."""
    me = os.getpid()
    targets = descendants(read_table(proc_root), me)
    _signal_all(targets, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while (alive := targets & descendants(read_table(proc_root), me)) and \
            time.monotonic() < deadline:
        reap(set(), proc_root)
        time.sleep(0.05)
    if alive:
        log.warning("%d process(es) ignored SIGTERM for %.0f s: killed", len(alive), grace)
        _signal_all(alive, signal.SIGKILL)
    reap(set(), proc_root)
    return sorted(targets)


def _signal_all(pids: set, sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
