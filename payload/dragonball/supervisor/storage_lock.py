"""One container at a time on a module's storage: an exclusive lock held for the container's
life.

Swarm can run two tasks of one slot at once on its server: when a server that was cut off
comes back, the task it kept running is stopped and the one the managers made meanwhile is
started, in no set order. Two stores on one data folder lose acknowledged writes (the old
one's last save overwrites the new one's). So the supervisor takes a `flock` on
``storage/.dragonball-lock`` before it runs the start scripts, and holds it until the
container ends; a second container waits for it, saying so, and starts once the first has
gone (the kernel drops the lock with the process, however it ends). Standard library only:
it runs in every module container.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import threading
import time

log = logging.getLogger(__name__)
LOCK_NAME = ".dragonball-lock"
RETRY_S = 0.5
SAY_EVERY_S = 10.0


def hold(storage: str, stop: threading.Event, clock=time.monotonic) -> int | None:
    """The descriptor holding `storage`'s lock (keep it open), waiting while another
    container holds it; None when `stop` is set first."""
    fd = os.open(os.path.join(storage, LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                 0o600)
    began, said = clock(), 0.0
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waited = clock() - began
            if waited - said >= SAY_EVERY_S or not said:
                holder = os.pread(fd, 100, 0).decode("utf-8", "replace").strip() or "?"
                log.warning("storage/ is in use by another container of this slot (%s): "
                            "waiting for it to end (%.0f s so far)", holder, waited)
                said = max(waited, 0.001)
            if stop.wait(RETRY_S):
                os.close(fd)
                return None
            continue
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"container {socket.gethostname()} pid {os.getpid()}".encode(), 0)
        if said:
            log.info("storage/ is free: starting (waited %.1f s)", clock() - began)
        return fd
