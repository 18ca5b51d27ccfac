"""One command changing an app at a time, across processes: an advisory lock per app.

The portal's jobs refuse a second job on an app while one runs (portal/jobs.py), but the
commands run on the portal itself as root (`dragonball apply|start|stop|move` without the
API: commands/apps_local.py) are other processes. Both take this lock, a `flock` on
``/run/dragonball/apps/<app>.lock`` that records who holds it; the second one is refused
at once, saying who (never queued: two rollouts must not interleave on one app). The kernel
drops the lock when its holder dies, so a killed command leaves nothing to clean up.

    with app_lock("notes", "apply by pid 4242"):
        ...
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator

from dragonball.errors import AppError, Conflict

LOCK_DIR = "/run/dragonball/apps"
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


def acquire(app: str, holder: str, folder: str = LOCK_DIR) -> AppLock:
    """The lock of `app` for `holder` (what and who, shown to the one refused); AppLocked
    when someone else holds it."""
    if not _NAME.match(app):
        raise AppLocked(f"no such app name {app!r}", "app names are lower-case DNS labels")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, f"{app}.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        held = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another command"
        os.close(fd)
        raise AppLocked(f"app {app!r} is busy: {held} is changing it",
                        "wait for it to end, then run the command again") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{holder} (pid {os.getpid()})".encode(), 0)
    return AppLock(fd)


@contextlib.contextmanager
def app_lock(app: str, holder: str, folder: str = LOCK_DIR) -> Iterator[AppLock]:
    lock = acquire(app, holder, folder)
    try:
        yield lock
    finally:
        lock.release()
