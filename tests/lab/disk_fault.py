"""The full-disk fault: a small ext4 on a loop device mounted over a folder of one lab
server, filled until writes fail (split from faults.py; the same do/undo contract)."""

from __future__ import annotations

import logging
import time
import uuid

from . import fault_plan as fp
from .faults import Fault, FaultError, FaultUnavailable, running

log = logging.getLogger(__name__)


class DiskFull(Fault):
    """The file system at `path` on `server` full: a small ext4 (`size_mib`) on a loop
    device, mounted over `path` with a copy of what was there, then filled up.

    In steps, for a bench that must (re)start an app on the new file system first:
    `mount()`, `fill()` (ENOSPC from then on: the fault), `free()` (room again: the fault
    ends), `unmount()` (the data copied back to the original folder, everything removed).
    `do()` is mount + fill, `undo()` free + unmount. A process that opened files under
    `path` before `mount()` keeps writing to the original folder; one that still writes
    to the small file system after `unmount()` writes to a detached copy: stop it, or
    restart it right after (bench/chaos.py pauses the container around unmount).
    """

    name = "fill_disk"

    def __init__(self, lab, server: str, path: str, size_mib: int = 64) -> None:
        super().__init__(lab, [server])
        self.server = self.servers[0]
        self.layout = fp.DiskLayout(path, f"disk-{uuid.uuid4().hex[:8]}", size_mib)
        self.device: str | None = None
        self.mounted = self.filled = False

    def __repr__(self) -> str:
        return f"fill_disk({self.server}:{self.layout.path}, {self.layout.size_mib} MiB)"

    def _sh(self, script: str, what: str, timeout: float = 120):
        out = self.lab.exec(self.server, ["sh", "-c", script], timeout=timeout)
        if not out.ok:
            raise FaultError(f"{what} on {self.server} failed ({out.returncode}): "
                             f"{(out.stderr or out.stdout).strip()[-800:]}")
        return out.stdout.strip()

    def available(self) -> None:
        """Raise `FaultUnavailable` unless a loop device can be set up inside the server."""
        if not running(self.lab, self.server):
            raise FaultError(f"{self.server} is not running")
        for tool in ("losetup", "mkfs.ext4", "findmnt", "mountpoint"):
            if not self.lab.exec(self.server, ["sh", "-c", f"command -v {tool}"]).ok:
                raise FaultUnavailable(f"{self.server} has no {tool}: a full disk needs "
                                       "util-linux and e2fsprogs in the server")
        out = self.lab.exec(self.server, ["sh", "-c", fp.loop_nodes_script()])
        if not out.ok or not out.stdout.strip().startswith("/dev/loop"):
            raise FaultUnavailable(
                f"no loop device can be used inside {self.server}: "
                f"{(out.stderr or out.stdout).strip()[-400:]}",
                "the host needs the loop module (/dev/loop-control) and the server the right "
                "to make and use block devices 7:* (the lab's --device-cgroup-rule 'a *:* "
                "rwm' and CAP_MKNOD, CAP_SYS_ADMIN); the host's disk is never filled instead")
        self.device = out.stdout.strip().splitlines()[-1]

    def mount(self) -> None:
        if self.mounted:
            return
        self.available()
        self.done = True   # from here on undo() has something to do
        self.undo_steps.push(f"unmount the small file system at {self.layout.path}",
                             self._unmount)
        for attempt in range(3):   # another process may take the free loop device first
            script = fp.disk_mount_script(self.layout, self.device)
            out = self.lab.exec(self.server, ["sh", "-c", script], timeout=120)
            if out.ok:
                break
            if "resource busy" not in out.stderr.lower() or attempt == 2:
                raise FaultError(f"mounting a {self.layout.size_mib} MiB ext4 over "
                                 f"{self.layout.path} on {self.server} failed: "
                                 f"{out.stderr.strip()[-800:]}")
            self.available()
        self.mounted = True
        self.timings["mounted_device"] = self.device

    def fill(self) -> str:
        """Fill it; returns the error a write then gets (No space left on device)."""
        began = time.monotonic()
        self.undo_steps.push(f"remove the filler in {self.layout.path}", self.free)
        error = self._sh(fp.disk_fill_script(self.layout), "filling the disk", timeout=300)
        if "No space left" not in error:
            raise FaultError(f"{self.layout.path} on {self.server} is not full after filling "
                             f"it (a write said {error!r})")
        self.filled = True
        self.timings["fill_s"] = round(time.monotonic() - began, 3)
        self.timings["write_error"] = error.splitlines()[-1] if error else ""
        return error

    def free(self) -> None:
        if not self.filled:
            return
        self._sh(fp.disk_free_script(self.layout), "freeing the disk")
        self.filled = False

    def _unmount(self) -> None:
        if not running(self.lab, self.server):
            return   # its mounts went with it; the loop device is released with them
        left = self._sh(fp.disk_unmount_script(self.layout), "unmounting the small disk")
        self.mounted = False
        if left:
            log.warning("loop device %s of %r stays attached until the last container using "
                        "it stops (it is marked to detach then)", left, self)
            self.timings["loop_still_attached"] = left

    def unmount(self) -> None:
        self.undo()

    def _do(self) -> None:
        self.mount()
        self.fill()

    def _verify_undone(self) -> None:
        if not running(self.lab, self.server):
            return
        out = self.lab.exec(self.server, ["findmnt", "-n", "--mountpoint", self.layout.path])
        if out.ok and out.stdout.strip() and self.device and self.device in out.stdout:
            raise FaultError(f"{self.layout.path} on {self.server} is still mounted: "
                             f"{out.stdout.strip()}")


def fill_disk(lab, server: str, path: str, size_mib: int = 64) -> DiskFull:
    return DiskFull(lab, server, path, size_mib)


# --- helpers ----------------------------------------------------------------------------------
