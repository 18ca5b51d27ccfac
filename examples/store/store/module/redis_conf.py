#!/usr/bin/env python3
"""Validate the store's parameters and render redis.conf from them.

    python3 module/redis_conf.py render     validate, then write $RUN_DIR/redis.conf (0600)

The file holds the password (requirepass), so it is written only readable by the user that
runs redis-server, and neither it nor the password is ever printed.
"""

from __future__ import annotations

import os
import pwd
import re
import sys
import tempfile

sys.path.insert(0, "/opt/dragon_ball/lib")  # the base image's library (dragonballbase)
from dragonball.module import params  # noqa: E402

RUN_DIR = os.environ.get("NOTES_STORE_RUN_DIR", "/run/notes-store")
CONF = os.path.join(RUN_DIR, "redis.conf")
REDIS_USER = "redis"
POLICIES = ("noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru",
            "volatile-lfu", "volatile-random", "volatile-ttl")
SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-")
MEMORY = re.compile(r"^[0-9]+(b|k|kb|m|mb|g|gb)?$")


def problems(p: dict) -> list[str]:
    """Every problem with the parameters, not just the first."""
    found = []
    port = p.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        found.append(f"port must be an integer 1-65535, got {port!r}")
    mem = str(p.get("maxmemory", "")).strip().lower()
    if isinstance(p.get("maxmemory"), bool) or not MEMORY.match(mem):
        found.append(f"maxmemory must be bytes or a size like 64mb or 1gb, got {p.get('maxmemory')!r}")
    if p.get("maxmemory_policy") not in POLICIES:
        found.append(f"maxmemory_policy must be one of {', '.join(POLICIES)}, "
                     f"got {p.get('maxmemory_policy')!r}")
    if not isinstance(p.get("password"), str):
        found.append("password must be a string (empty: no password)")
    return found


def quote(value: str) -> str:
    """A redis.conf string: double quotes, every byte outside [A-Za-z0-9/._-] hex-escaped."""
    return '"' + "".join(chr(b) if chr(b) in SAFE else f"\\x{b:02x}"
                         for b in value.encode("utf-8")) + '"'


def data_dir() -> str:
    storage = os.environ.get("DRAGONBALL_STORAGE_DIR", os.path.join(os.getcwd(), "storage"))
    return os.path.join(storage, "redis")


def render(p: dict) -> str:
    lines = [
        "# Rendered by store/module/redis_conf.py from the module's parameters at every start",
        "# and config_change. Edits here are lost.",
        "bind 0.0.0.0",
        # The container network is the boundary; a password is set with the parameter.
        "protected-mode no",
        f"port {p['port']}",
        "daemonize no",
        "supervised no",
        "loglevel notice",
        'logfile ""',
        f"dir {quote(data_dir())}",
        "dbfilename dump.rdb",
        "save 3600 1 300 100 60 10000",
        "appendonly yes",
        'appendfilename "appendonly.aof"',
        "appendfsync everysec",
        f"maxmemory {str(p['maxmemory']).strip().lower()}",
        f"maxmemory-policy {p['maxmemory_policy']}",
    ]
    if p["password"]:
        lines.append(f"requirepass {quote(p['password'])}")
    return "\n".join(lines) + "\n"


def write_private(path: str, text: str, owner: int | None) -> None:
    """Write atomically, mode 0600, owned by `owner` (a uid) when given."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".redis.conf.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    if owner is not None:
        os.chown(tmp, owner, -1)
    os.replace(tmp, path)


def redis_uid() -> int | None:
    try:
        return pwd.getpwnam(REDIS_USER).pw_uid if os.geteuid() == 0 else None
    except KeyError:
        return None


def main(argv: list[str]) -> int:
    if argv != ["render"]:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        p = params.load()
    except params.ParamError as e:
        print(f"store: {e}", file=sys.stderr)
        return 1
    found = problems(p)
    if found:
        print("store: invalid parameters, redis.conf left unchanged:", file=sys.stderr)
        for problem in found:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    write_private(CONF, render(p), redis_uid())
    print(f"store: rendered {CONF} (port {p['port']}, maxmemory {p['maxmemory']}, "
          f"policy {p['maxmemory_policy']}, password {'set' if p['password'] else 'not set'})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
