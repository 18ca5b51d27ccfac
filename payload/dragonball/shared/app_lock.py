"""One command changing an app at a time, across processes: an advisory lock per app.

The portal's jobs refuse a second job on an app while one runs (portal/jobs.py), but the
commands run on the portal itself as root (`dragonball apply|start|stop|move` without the
API: commands/apps_local.py) are other processes. Both take this lock, a `flock` on
``/run/dragonball/apps/<app>.lock`` that records who holds it; the second one is refused
at once, saying who (never queued: two rollouts must not interleave on one app). The kernel
drops the lock when its holder dies, so a killed command leaves nothing to clean up.

The portal's own upkeep (the moving addresses following the servers: orchestrator.notify)
takes the lock as a *background* holder: a person's command or job waits for it to end (at
most BACKGROUND_WAIT_S, its rounds are short) instead of being refused for work nobody
asked for; the upkeep itself never waits, it skips a round.

    with app_lock("notes", "apply by pid 4242"):
        ...
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import logging
import re
import time
from collections.abc import Iterator

from dragonball.errors import AppError, Conflict

LOCK_DIR = "/run/dragonball/apps"
BACKGROUND_WAIT_S = 120.0
_BACKGROUND = "\nbackground"
log = logging.getLogger(__name__)
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class AppLocked(AppError, Conflict):
    """Another command or job is changing this app now."""


class AppLock:
    """A held lock: `release()` (or leave the `with` block) gives it back."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)   # closing the descriptor drops the flock
            self.fd = -1


def acquire(app: str, holder: str, folder: str = LOCK_DIR, background: bool = False,
            wait_s: float = BACKGROUND_WAIT_S) -> AppLock:
    """The lock of `app` for `holder` (what and who, shown to the one refused); AppLocked
    when someone else holds it. A background holder is waited for (at most `wait_s`); a
    `background` acquirer is refused at once by anyone."""
    if not _NAME.match(app):
        raise AppLocked(f"no such app name {app!r}", "app names are lower-case DNS labels")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, f"{app}.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    deadline, told = time.monotonic() + (0 if background else wait_s), False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            held = os.pread(fd, 400, 0).decode("utf-8", "replace")
            if held.endswith(_BACKGROUND) and time.monotonic() < deadline:
                if not told:
                    log.info("app %r: waiting for %s to end", app, held[:-len(_BACKGROUND)])
                    told = True
                time.sleep(0.1)
                continue
            os.close(fd)
            held = held.removesuffix(_BACKGROUND).strip() or "another command"
            raise AppLocked(f"app {app!r} is busy: {held} is changing it",
                            "wait for it to end, then run the command again") from None
    os.ftruncate(fd, 0)
    mark = _BACKGROUND if background else ""
    os.pwrite(fd, f"{holder} (pid {os.getpid()}){mark}".encode(), 0)
    return AppLock(fd)


@contextlib.contextmanager
def app_lock(app: str, holder: str, folder: str = LOCK_DIR,
             background: bool = False) -> Iterator[AppLock]:
    lock = acquire(app, holder, folder, background)
    try:
        yield lock
    finally:
        lock.release()
