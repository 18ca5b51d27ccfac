#!/usr/bin/env python3
"""Validate the store's parameters and render redis.conf from them.

    python3 module/redis_conf.py render     validate, then write $RUN_DIR/redis.conf (0600)

The file holds the password (requirepass, masterauth), so it is written only readable by the
user that runs redis-server, and neither it nor the password is ever printed.

A replicated slot (DRAGONBALL_PEERS names 2 or more slots, see slots.py) also gets the
replication settings; its role (primary, or `replicaof` the primary) is decided at start by
ha.py, which writes $RUN_DIR/replication.conf, included last.
"""

from __future__ import annotations

import os
import pwd
import re
import sys
import tempfile

sys.path.insert(0, "/opt/dragon_ball/lib")  # the base image's library (dragonballbase)
from dragonball.module import params  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import slots  # noqa: E402

RUN_DIR = os.environ.get("NOTES_STORE_RUN_DIR", "/run/notes-store")
CONF = os.path.join(RUN_DIR, "redis.conf")
REPLICATION_CONF = os.path.join(RUN_DIR, "replication.conf")
REDIS_USER = "redis"
POLICIES = ("noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru",
            "volatile-lfu", "volatile-random", "volatile-ttl")
SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-")
MEMORY = re.compile(r"^[0-9]+(b|k|kb|m|mb|g|gb)?$")
MASTER_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
FSYNC = ("always", "everysec")
# What a replicated store cannot change in one slot at a time: every slot (and the api's
# store_sentinels, store_master_name, store_password) must change together. A password changed
# slot by slot breaks every link that reconnects in between (measured: the sentinels then
# found the primary down); stop the service, change it, start the service.
NOT_LIVE_WHEN_REPLICATED = ("port", "sentinel_port", "master_name", "password")
# A primary keeps accepting writes only while a replica acknowledged the stream this recently.
MIN_REPLICAS_MAX_LAG_S = 5


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
    if p.get("appendfsync") not in FSYNC:
        found.append(f"appendfsync must be one of {', '.join(FSYNC)}, got {p.get('appendfsync')!r}")
    sport = p.get("sentinel_port")
    if isinstance(sport, bool) or not isinstance(sport, int) or not 1 <= sport <= 65535:
        found.append(f"sentinel_port must be an integer 1-65535, got {sport!r}")
    elif sport == port:
        found.append(f"sentinel_port must differ from port ({port})")
    if not isinstance(p.get("master_name"), str) or not MASTER_NAME.match(p.get("master_name")):
        found.append("master_name must be 1-64 letters, digits, '.', '_' or '-', "
                     f"got {p.get('master_name')!r}")
    after = p.get("down_after_ms")
    if isinstance(after, bool) or not isinstance(after, int) or not 500 <= after <= 600000:
        found.append(f"down_after_ms must be an integer 500-600000, got {after!r}")
    return found


def live_problems(old: dict, new: dict, slot) -> list[str]:
    """What a config_change may not change in this slot while it runs."""
    if slot is None or not slot.replicated:
        return []
    return [f"{key} cannot change live in a replicated store"
            + ("" if key == "password" else f" ({old.get(key)!r} -> {new.get(key)!r})")
            + ": every slot and the api must change together; stop the service, change it, "
            "start the service"
            for key in NOT_LIVE_WHEN_REPLICATED if old.get(key) != new.get(key)]


def quote(value: str) -> str:
    """A redis.conf string: double quotes, every byte outside [A-Za-z0-9/._-] hex-escaped."""
    return '"' + "".join(chr(b) if chr(b) in SAFE else f"\\x{b:02x}"
                         for b in value.encode("utf-8")) + '"'


def data_dir() -> str:
    storage = os.environ.get("DRAGONBALL_STORAGE_DIR", os.path.join(os.getcwd(), "storage"))
    return os.path.join(storage, "redis")


def render(p: dict, slot=None) -> str:
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
        f"appendfsync {p['appendfsync']}",
        f"maxmemory {str(p['maxmemory']).strip().lower()}",
        f"maxmemory-policy {p['maxmemory_policy']}",
    ]
    if p["password"]:
        lines.append(f"requirepass {quote(p['password'])}")
    if slot is not None and slot.replicated:
        lines += replication_lines(p, slot)
    return "\n".join(lines) + "\n"


def replication_lines(p: dict, slot) -> list[str]:
    """A replicated slot: announce its stable name, refuse writes no replica confirms."""
    lines = [
        f"# Slot {slot.number} of {len(slot.peers)}: {', '.join(slot.peers)}",
        # The primary lists its replicas by these; the sentinels find and reconfigure them by
        # name, so a slot restarted with a new address is still the same replica.
        f"replica-announce-ip {quote(slot.name)}",
        f"replica-announce-port {p['port']}",
        # An isolated (or stale) primary refuses writes: acknowledged writes are on 2 slots.
        "min-replicas-to-write 1",
        f"min-replicas-max-lag {MIN_REPLICAS_MAX_LAG_S}",
        # A replica that is not in sync answers no reads (not an empty or stale list).
        "replica-serve-stale-data no",
        "replica-read-only yes",
        # A full resync starts at once (Redis waits 5 s by default, to send one stream to
        # several replicas): meanwhile a primary with no other replica refuses every write.
        "repl-diskless-sync-delay 0",
        # SHUTDOWN of a primary waits this long for lagging replicas (inside the stop grace).
        "shutdown-timeout 2",
    ]
    if p["password"]:
        lines.append(f"masterauth {quote(p['password'])}")
    # Written at start by ha.py: `replicaof <primary>`, or the primary's fence.
    lines.append(f"include {quote(REPLICATION_CONF)}")
    return lines


def write_private(path: str, text: str, owner: int | None) -> None:
    """Write atomically, mode 0600, owned by `owner` (a uid) when given."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=f".{os.path.basename(path)}.")
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
    try:
        slot = slots.from_environ(os.environ)
    except slots.SlotError as e:
        found.append(f"slot: {e}")
        slot = None
    old_path = os.environ.get("DRAGONBALL_OLD_PARAMS_FILE")
    if not found and old_path and os.environ.get("DRAGONBALL_EVENT") == "config_change":
        try:
            found += live_problems({**params.defaults(), **params.read_file(old_path)}, p, slot)
        except params.ParamError as e:
            found.append(str(e))
    if found:
        print("store: invalid parameters, redis.conf left unchanged:", file=sys.stderr)
        for problem in found:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    uid = redis_uid()
    if uid is not None:  # redis-server rewrites its config (CONFIG REWRITE) when sentinels ask
        os.makedirs(RUN_DIR, exist_ok=True)
        os.chown(RUN_DIR, uid, -1)
    write_private(CONF, render(p, slot), uid)
    role = (f"slot {slot.number} of {len(slot.peers)} ({slot.name})"
            if slot and slot.replicated else "single slot")
    print(f"store: rendered {CONF} ({role}, port {p['port']}, maxmemory {p['maxmemory']}, "
          f"policy {p['maxmemory_policy']}, appendfsync {p['appendfsync']}, "
          f"password {'set' if p['password'] else 'not set'})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
