"""The builder's cache folder: where it is, and one writer at a time per part of it.

``$DRAGONBALL_CACHE`` (default /var/cache/dragonball) holds ``rootfs/`` (debootstrap
tars), ``runtime/`` (frozen runtimes) and ``engine/`` (Debian packages of the engine).
Every entry is keyed by a hash of its inputs and written once, by a temporary file
renamed into place, so a reader never sees a half-written entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pathlib
from collections.abc import Iterator, Mapping

CACHE_ENV = "DRAGONBALL_CACHE"
DEFAULT_CACHE = "/var/cache/dragonball"


def cache_dir(environ: Mapping[str, str] = os.environ) -> pathlib.Path:
    """The builder's cache directory: ``$DRAGONBALL_CACHE`` or /var/cache/dragonball."""
    return pathlib.Path(environ.get(CACHE_ENV) or DEFAULT_CACHE)


@contextlib.contextmanager
def locked(folder: pathlib.Path) -> Iterator[None]:
    """Hold an exclusive lock on `folder` (created if missing) for the block.

    Two builds at once (parallel test sessions, a CI run beside a developer)
    must not both run the same long step into the same cache entry.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
