"""An upgrade's own journal and lock, so that a kill -9 at any point is met on the next run.

    /var/lib/dragonball/upgrade/state.json   {"state": running|done|failed|rolled-back,
                                              "from": {kind, name, version}, "to": {...},
                                              "phase": the phase running or last done,
                                              "done": [phases done], "previous_app":
                                              {"file", "text"} | null, "backup": path,
                                              "error": text, "started", "ended"}
    /var/lib/dragonball/upgrade/backups/<from>-<time>/   the portal's state before it, and
                                                          volumes/<server>/<volume>.tar: a
                                                          snapshot of every slot's volume
                                                          (upgrade/snapshots.py); the last
                                                          KEEP_BACKUPS kept
    /run/dragonball/upgrade.lock                          held while one runs (flock)

Written whole then renamed after every phase. A run that finds "running" (its process
died) resumes when it upgrades to the same release (every phase can run again: images
pushed again are skipped, an apply of the same spec changes nothing), or refuses with what
to do when it is another release; `dragonball rollback` goes back from it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator

from dragonball.errors import Conflict, ReleaseError
from dragonball.shared import paths

STATE_DIR = f"{paths.DATA_DIR}/upgrade"
LOCK_FILE = "/run/dragonball/upgrade.lock"
PHASES = ("backup", "images", "dragonball", "app", "record", "prune")
KEEP_BACKUPS = 3      # this upgrade's and the two before: a rollback needs the last one


def prune_backups(keep_also: str | None, folder: str = f"{STATE_DIR}/backups",
                  keep: int = KEEP_BACKUPS) -> list[str]:
    """Remove all but the newest `keep` backups (and never `keep_also`, this upgrade's):
    each holds the app's data (volume snapshots) and would fill the disk. The names
    removed."""
    try:
        found = [e for e in os.scandir(folder) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []
    found.sort(key=lambda e: e.stat(follow_symlinks=False).st_mtime, reverse=True)
    gone = [e for e in found[keep:] if e.path != keep_also]
    for entry in gone:
        shutil.rmtree(entry.path, ignore_errors=True)
    return sorted(e.name for e in gone)


class UpgradeBusy(ReleaseError, Conflict):
    """Another upgrade (or rollback) runs on this server now."""


def release_id(record: dict | None) -> dict | None:
    if not record:
        return None
    return {"kind": record.get("kind", "bin"), "name": record["name"],
            "version": record["version"]}


class UpgradeState:
    """The journal of the upgrade running (or last run) on this manager."""

    def __init__(self, folder: str = STATE_DIR) -> None:
        self.folder = folder
        self.path = os.path.join(folder, "state.json")
        self.data: dict = self._read() or {}

    def _read(self) -> dict | None:
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    @property
    def running(self) -> bool:
        return self.data.get("state") == "running"

    def same_target(self, target: dict) -> bool:
        return self.data.get("to") == target

    def begin(self, source: dict | None, target: dict, previous_app: dict | None) -> None:
        self.data = {"state": "running", "from": source, "to": target, "phase": None,
                     "done": [], "previous_app": previous_app, "backup": None, "error": None,
                     "started": time.time(), "ended": None, "pid": os.getpid()}
        self.save()

    def is_done(self, phase: str) -> bool:
        return phase in self.data.get("done", [])

    def start_phase(self, phase: str) -> None:
        self.data["phase"], self.data["pid"] = phase, os.getpid()
        self.save()

    def phase_done(self, phase: str, **facts) -> None:
        self.data.setdefault("done", []).append(phase)
        self.data.update(facts)
        self.save()

    def end(self, state: str, error: str | None = None) -> None:
        self.data.update(state=state, error=error, ended=time.time())
        self.save()

    def save(self) -> None:
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        part = self.path + ".part"
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, self.path)

    def summary(self) -> dict | None:
        if not self.data:
            return None
        keys = ("state", "phase", "from", "to", "error", "started", "ended", "backup",
                "snapshots")
        return {k: self.data.get(k) for k in keys}


@contextlib.contextmanager
def upgrade_lock(what: str, path: str = LOCK_FILE) -> Iterator[None]:
    """One upgrade or rollback at a time on this server; the second is refused at once,
    saying who holds it. The kernel drops the lock when its holder dies."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another one"
            raise UpgradeBusy(f"an upgrade or rollback runs on this server now ({holder})",
                              "wait for it to end, then run this again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{what} by pid {os.getpid()}".encode(), 0)
        yield
    finally:
        os.close(fd)
