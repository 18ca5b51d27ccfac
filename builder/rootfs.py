"""Root filesystems from debootstrap, cached as tars keyed by the recipe hash.

``<cache>/rootfs/<hash>.tar`` is written once (temp file + rename, so a crash
never leaves a half tar under the final name); later builds reuse it.
"""

from __future__ import annotations

import logging
import os
import pathlib
import re
import shutil
import subprocess
import tempfile

from dragonball.errors import BuildError

from builder import process
from builder.cache import cache_dir, locked  # noqa: F401  (cache_dir: callers use rootfs.cache_dir)
from builder.recipe import Recipe

log = logging.getLogger(__name__)

# Files that name the mirror or the build host; a customer's image carries neither.
# (The engine bind-mounts its own hostname and resolv.conf into every container.)
SCRUB_GLOBS = ("var/log/bootstrap.log", "var/cache/apt/archives/*.deb",
               "var/cache/apt/*.bin", "var/lib/apt/lists/*")
EMPTIED_FILES = ("etc/apt/sources.list", "etc/hostname", "etc/resolv.conf")


def tar_path(cache: pathlib.Path, key: str) -> pathlib.Path:
    """Where the root filesystem with recipe hash `key` is cached."""
    return cache / "rootfs" / f"{key}.tar"


def debootstrap_command(recipe: Recipe, target: pathlib.Path, mirror: str) -> list[str]:
    """The debootstrap command line for `recipe` (pure: nothing runs)."""
    include = ",".join(sorted(set(recipe.include)))
    argv = ["debootstrap", f"--variant={recipe.variant}", f"--arch={recipe.arch}"]
    if include:
        argv.append(f"--include={include}")
    return argv + [recipe.suite, str(target), mirror]


def debootstrap_version() -> str:
    """The installed debootstrap's version (part of the recipe hash)."""
    out = process.run_capture(["debootstrap", "--version"])
    match = re.search(r"\d\S*", out)
    if not match:
        raise BuildError(f"cannot read a version from 'debootstrap --version': {out.strip()!r}",
                         "reinstall debootstrap: apt-get install --reinstall debootstrap")
    return match.group(0)


def ensure_tar(recipe: Recipe, key: str, mirror: str, cache: pathlib.Path,
               on_line: process.LineSink) -> pathlib.Path:
    """Return the cached tar for `key`, running debootstrap only when it is missing."""
    final = tar_path(cache, key)
    if final.is_file():
        log.info("reusing cached root filesystem %s", final)
        return final
    _require_root()
    with locked(final.parent):
        if not final.is_file():  # another build may have made it while we waited
            _build_tar(recipe, mirror, final, on_line)
    return final


def _build_tar(recipe: Recipe, mirror: str, final: pathlib.Path, on_line: process.LineSink) -> None:
    work = pathlib.Path(tempfile.mkdtemp(prefix=f".{final.stem[:12]}-", dir=final.parent))
    try:
        target = work / "rootfs"
        process.run_streaming(debootstrap_command(recipe, target, mirror), on_line,
                              hint=f"check that {mirror} answers (apt-get update on this host), "
                                   f"or set DRAGONBALL_DEBIAN_MIRROR")
        scrub(target)
        partial = work / "rootfs.tar"
        process.run_capture(["tar", "--numeric-owner", "--sort=name", "-C", str(target),
                             "-cf", str(partial), "."])
        os.replace(partial, final)  # same file system: atomic
    finally:
        _remove_tree(work)


def scrub(root: pathlib.Path) -> None:
    """Delete what names the mirror or the build host from a fresh root filesystem."""
    for pattern in SCRUB_GLOBS:
        for path in root.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    for name in EMPTIED_FILES:
        path = root / name
        if path.is_file() and not path.is_symlink():
            path.write_bytes(b"")


def _require_root() -> None:
    if os.geteuid() != 0:
        raise BuildError("debootstrap needs root to build the base root filesystem",
                         "run 'sudo .venv/bin/python build.py base' (later builds reuse the cache)")


def _remove_tree(path: pathlib.Path) -> None:
    # debootstrap mounts /proc and /sys inside the target; an interrupted run
    # can leave them mounted, and deleting through a live /sys is destructive.
    for mount in _mounts_below(path):
        subprocess.run(["umount", "-l", mount], check=False)
    if _mounts_below(path):
        raise BuildError(f"{path} still has file systems mounted below it; not deleting it",
                         f"unmount them (grep {path} /proc/mounts), then rm -rf {path}")
    shutil.rmtree(path, ignore_errors=True)


def _mounts_below(path: pathlib.Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    with open("/proc/mounts", encoding="utf-8") as mounts:
        points = [line.split()[1] for line in mounts]
    # Deepest first, so nested mounts come off before their parents.
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)
