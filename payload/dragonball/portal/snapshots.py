"""Snapshots of the portal's replicated state, so its log in etcd does not grow for ever.

A snapshot is the whole SQLite database at one index of the log (`Connection.serialize` of a
consistent in-memory copy), zlib-compressed, in chunks of at most CHUNK bytes (etcd refuses a
request above 1.5 MiB) under ``<prefix>snapchunk/<index>/<nonce>/<n>``, then made visible by
one transaction that creates its marker ``<prefix>snapshot/<index>`` (how many chunks, their
sha256) and moves the floor ``<prefix>floor`` to its index: below the floor, log entries may
be gone, and a copy behind it restores the snapshot instead (dragonball.portal.statelog).
Only then are the older entries, snapshots and etcd's history of them dropped.

The nonce keeps two portals that publish the same index at once (two first portals seeding
an empty cluster) from mixing their chunks: one marker wins, the loser's chunks are deleted.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import zlib
from collections.abc import Callable

from dragonball.etcd import Etcd, EtcdError, EtcdFailed, encode

EVERY = 1000               # log entries past the floor before the leader takes a snapshot
CHUNK = 768 * 1024         # bytes per chunk (base64 makes it ~1 MiB in the request)


def serialize(copy: sqlite3.Connection, index: int,
              set_applied: Callable[[sqlite3.Connection, int], None]) -> bytes:
    """The compressed bytes of an in-memory copy of the database, marked as at `index`."""
    set_applied(copy, index)
    data = bytearray(copy.serialize())
    # The copy of a WAL database says WAL in its header (bytes 18-19), which an in-memory
    # database cannot open: say "rollback journal"; SQLite keeps the target's WAL.
    data[18] = data[19] = 1
    return zlib.compress(bytes(data), 6)


def deserialize(data: bytes, index: int,
                set_applied: Callable[[sqlite3.Connection, int], None]) -> sqlite3.Connection:
    """An in-memory database of a snapshot's bytes, marked as at `index`."""
    copy = sqlite3.connect(":memory:", isolation_level=None)
    copy.deserialize(zlib.decompress(data))
    set_applied(copy, index)
    return copy


class Snapshots:
    """The snapshots in etcd under `prefix`."""

    def __init__(self, etcd: Etcd, prefix: str) -> None:
        self.etcd = etcd
        self.floor_key = prefix + "floor"
        self.markers, self.chunks = prefix + "snapshot/", prefix + "snapchunk/"

    def newest_index(self) -> int | None:
        key = self.etcd.last_key(self.markers)
        return int(key.rsplit("/", 1)[1]) if key else None

    def newest(self) -> tuple[int, bytes] | None:
        """(index, bytes) of the newest complete snapshot, or None."""
        index = self.newest_index()
        if index is None:
            return None
        marker = json.loads(self.etcd.get(f"{self.markers}{index:012d}") or b"{}")
        parts = self.etcd.get_prefix(f"{self.chunks}{index:012d}/{marker.get('nonce')}/")
        parts.sort(key=lambda kv: int(kv[0].rsplit("/", 1)[1]))
        data = b"".join(value for _, value in parts)
        if len(parts) != marker.get("chunks") or \
                hashlib.sha256(data).hexdigest() != marker.get("sha256"):
            raise EtcdFailed(f"the snapshot at entry {index} is incomplete or damaged",
                            "the leader's next snapshot replaces it; meanwhile remove the "
                            "marker with etcdctl if it stays")
        return index, data

    def publish(self, index: int, data: bytes) -> bool:
        """Write the chunks, then the marker and floor at once: whether this one won."""
        nonce = secrets.token_hex(4)
        base = f"{self.chunks}{index:012d}/{nonce}/"
        pieces = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]
        for n, piece in enumerate(pieces):
            self.etcd.put(f"{base}{n}", piece)
        marker = f"{self.markers}{index:012d}"
        floor = ({"key": encode(self.floor_key), "target": "CREATE", "result": "EQUAL",
                  "create_revision": "0"} if index == 0 else
                 {"key": encode(self.floor_key), "target": "VALUE", "result": "LESS",
                  "value": encode(f"{index:012d}")})
        about = json.dumps({"nonce": nonce, "chunks": len(pieces),
                            "sha256": hashlib.sha256(data).hexdigest()})
        answer = self.etcd.txn(
            [{"key": encode(marker), "target": "CREATE", "result": "EQUAL",
              "create_revision": "0"}, floor],
            [{"request_put": {"key": encode(marker), "value": encode(about)}},
             {"request_put": {"key": encode(self.floor_key),
                              "value": encode(f"{index:012d}")}}])
        if not answer.get("succeeded"):
            self.etcd.delete_prefix(base)
            return False
        return True

    def drop_before(self, index: int, log_prefix: str, log_end: str) -> None:
        """Delete the log entries up to `log_end` (excluded), the snapshots older than
        `index`, and etcd's history of them."""
        self.etcd.delete_range(log_prefix, log_end)
        self.etcd.delete_range(self.markers, f"{self.markers}{index:012d}")
        self.etcd.delete_range(self.chunks, f"{self.chunks}{index:012d}")
        try:
            revision = int(self.etcd.txn([], [{"request_range": {
                "key": encode(self.floor_key)}}]).get("header", {}).get("revision") or 0)
            if revision:
                self.etcd.compact(revision)
        except EtcdError:  # compacted already (etcd's own auto-compaction): fine
            pass
