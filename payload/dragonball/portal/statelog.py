"""The portal's state, replicated through etcd across the managers (docs/portal-ha.md).

Every write transaction of the store (`Database.write`) becomes one entry of a log kept in
etcd, `<prefix>log/<12-digit index>`: the SQL statements that changed something, with their
arguments, in order. A transaction starts by applying the entries its copy has not applied yet
(so its statements run on the log's newest state), and commits locally only once etcd took its
entry as the next one, created only if absent (compare-and-swap): two portals that write at
once cannot both be entry n+1, so every copy applies the same statements in the same order and
holds the same rows. The index a copy has applied lives in its own database (table meta),
updated in the same local transaction as the rows.

A write that etcd refuses (another portal took the index: `StoreConflict`) or that cannot
reach a quorum (`StoreError`, Unavailable) is rolled back here: nothing changed on this
portal. A create that timed out may still have committed in etcd; then it is the log's entry
like any other, and this portal applies it at its next catch-up (docs/portal-ha.md).

Replay is deterministic because the statements carry every value as an argument (the clock,
random tokens and codes are made in Python) and use no non-deterministic SQL function; ids
that SQLite makes (AUTOINCREMENT) come out the same on every copy from the same rows.

The log does not grow for ever: dragonball.portal.snapshots keeps the newest snapshot of the
database, and a copy behind it starts from it. A copy that never applied the log (a new
manager's portal, or the first portal's own file) joins by restoring the newest snapshot, or,
when the cluster has none yet, seeds it with its own database.
"""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
import time

from dragonball.errors import Conflict, PortalError
from dragonball.etcd import Etcd, EtcdError, EtcdUnavailable, decode, encode, prefix_end
from dragonball.orchestrator.state import SCHEMA as APPS_SCHEMA
from dragonball.portal import snapshots
from dragonball.portal.database import Behind, StoreError
from dragonball.portal.settings import Settings
from dragonball.portal.store import Store

log = logging.getLogger(__name__)

PREFIX = "/dragonball/portal/"
APPLIED = "statelog_applied"   # the key, in table meta, of the index this copy has applied
FETCH = 500                    # entries read at once
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "SELECT", "WITH")


class StoreConflict(PortalError, Conflict):
    """Another manager's portal wrote at the same moment: nothing changed here."""


def _index_key(prefix: str, index: int) -> str:
    return f"{prefix}log/{index:012d}"


def _arg(value):
    return {"b": base64.b64encode(value).decode()} if isinstance(value, bytes) else value


def _unarg(value):
    return base64.b64decode(value["b"]) if isinstance(value, dict) else value


def encode_statement(sql: str, args) -> dict:
    """One statement as JSON: its arguments by position, or by name."""
    if isinstance(args, dict):
        return {"s": sql, "n": {k: _arg(v) for k, v in args.items()}}
    return {"s": sql, "a": [_arg(v) for v in args]}


def decode_statement(item: dict) -> tuple[str, object]:
    if "n" in item:
        return item["s"], {k: _unarg(v) for k, v in item["n"].items()}
    return item["s"], tuple(_unarg(v) for v in item["a"])


class Recorder:
    """The connection as a write transaction's body sees it: the real cursor back, and every
    statement that changed a row (or the schema) recorded for the log. A statement that
    failed or changed nothing is not replayed: on the same rows it does the same nothing."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db, self.statements = db, []

    def execute(self, sql: str, args=()):
        before = self._db.total_changes
        cursor = self._db.execute(sql, args)
        self._note(sql, args, before)
        return cursor

    def executemany(self, sql: str, rows):
        for args in rows:
            self.execute(sql, args)

    def executescript(self, script: str):
        raise StoreError("a replicated write cannot run a script",
                         "run its statements one by one with execute()")

    def _note(self, sql: str, args, before: int) -> None:
        first = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
        if self._db.total_changes != before or first not in _WRITES \
                or "RETURNING" in sql.upper():
            self.statements.append(encode_statement(sql, args))

    def __getattr__(self, name: str):
        return getattr(self._db, name)


class StateLog:
    """The replicated log of one store's writes, in etcd under `prefix` (a `Replica`)."""

    def __init__(self, etcd: Etcd, prefix: str = PREFIX,
                 snapshot_every: int = snapshots.EVERY) -> None:
        self.etcd, self.prefix, self.snapshot_every = etcd, prefix, snapshot_every
        self.snapshots = snapshots.Snapshots(etcd, prefix)

    # --- the index this copy has applied -------------------------------------------------

    def applied(self, db: sqlite3.Connection) -> int:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (APPLIED,)).fetchone()
        return int(row[0]) if row else 0

    def joined(self, db: sqlite3.Connection) -> bool:
        return db.execute("SELECT 1 FROM meta WHERE key = ?", (APPLIED,)).fetchone() is not None

    @staticmethod
    def set_applied(db: sqlite3.Connection, index: int) -> None:
        db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                   "SET value = excluded.value", (APPLIED, str(index)))

    # --- reading and applying the log ----------------------------------------------------

    def fetch(self, applied: int) -> tuple[list[tuple[int, bytes]], int]:
        """The entries after `applied` (at most FETCH) and the floor (the index of the newest
        snapshot whose entries may be gone), read at one revision."""
        first, end = _index_key(self.prefix, applied + 1), prefix_end(self.prefix + "log/")
        answer = self._etcd("read", self.etcd.txn, [], [
            {"request_range": {"key": encode(first), "range_end": encode(end),
                               "limit": str(FETCH), "sort_order": "ASCEND",
                               "sort_target": "KEY"}},
            {"request_range": {"key": encode(self.snapshots.floor_key)}}])
        ranges = [r.get("response_range") or {} for r in answer.get("responses") or []]
        entries = [(int(decode(kv["key"]).decode().rsplit("/", 1)[1]), decode(kv.get("value")))
                   for kv in ranges[0].get("kvs") or []] if ranges else []
        return entries, _floor(ranges[1] if len(ranges) > 1 else {})

    def has_after(self, index: int) -> bool:
        entries, floor = self.fetch(index)
        return bool(entries) or floor > index

    def catch_up(self, db: sqlite3.Connection) -> int:
        """Apply, in the caller's transaction, the entries after this copy's index; the new
        index. `Behind` when they are no longer in the log (restore the snapshot)."""
        applied = self.applied(db)
        while True:
            entries, floor = self.fetch(applied)
            if floor > applied:
                raise Behind()
            for index, value in entries:
                if index != applied + 1:
                    raise Behind()
                self._apply(db, index, value)
                applied = index
            if len(entries) < FETCH:
                return applied

    def _apply(self, db: sqlite3.Connection, index: int, value: bytes) -> None:
        try:
            for item in json.loads(value)["statements"]:
                db.execute(*decode_statement(item))
        except (ValueError, KeyError, TypeError, sqlite3.Error) as e:
            raise StoreError(f"entry {index} of the replicated state cannot be applied to "
                             f"this portal's copy: {e}",
                             "check every manager runs the same DragonBall version; a damaged "
                             "copy is rebuilt by removing portal.db and restarting the "
                             "portal") from e
        self.set_applied(db, index)

    # --- writing ---------------------------------------------------------------------------

    def recorder(self, db: sqlite3.Connection) -> Recorder:
        return Recorder(db)

    def append(self, db: sqlite3.Connection, recorder: Recorder) -> None:
        """Make the recorded statements the log's next entry; the caller commits after."""
        if not recorder.statements:
            return
        index = self.applied(db) + 1
        key = _index_key(self.prefix, index)
        value = json.dumps({"statements": recorder.statements}, separators=(",", ":"))
        floor = self.snapshots.floor_key
        answer = self._etcd("write", self.etcd.txn, [
            {"key": encode(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"},
            {"key": encode(floor), "target": "VALUE", "result": "LESS",
             "value": encode(f"{index:012d}")}],
            [{"request_put": {"key": encode(key), "value": encode(value)}}])
        if not answer.get("succeeded"):
            raise StoreConflict("another manager's portal wrote at the same moment; nothing "
                                "changed", "try again")
        self.set_applied(db, index)

    def _etcd(self, what: str, call, *args):
        """`call(*args)`, its etcd errors as StoreError: "cannot `what`: why"."""
        try:
            return call(*args)
        except EtcdUnavailable as e:
            unsure = (" (if etcd took the entry after all, every portal applies it within "
                      "seconds)" if what == "write" else "")
            raise StoreError(f"cannot {what} the portal's state: {e.message}. Nothing "
                             f"changed on this portal{unsure}", e.hint) from e
        except EtcdError as e:
            raise StoreError(f"cannot {what} the portal's state: {e.message}", e.hint) from e

    # --- joining and snapshots -------------------------------------------------------------

    def join(self, database) -> None:
        """A copy that never applied the log takes the newest snapshot; when the cluster has
        none yet, this copy's database becomes its first (index 0)."""
        with database._lock:
            if self.joined(database._db):
                return
        if self._etcd("read the snapshots of", self.snapshots.newest_index) is None:
            data = snapshots.serialize(database.copy(), 0, self.set_applied)
            if self._etcd("seed", self.snapshots.publish, 0, data):
                with database._lock:
                    self.set_applied(database._db, 0)
                log.info("the portal's replicated state starts from this portal's database")
                return
        database.restore()

    def restore(self, database) -> None:
        """Replace `database` by the newest snapshot (Database.restore calls it)."""
        newest = self._etcd("read the snapshot of", self.snapshots.newest)
        if newest is None:
            raise StoreError("the portal's replicated state has no snapshot to start from",
                             "restart the first manager's portal: it seeds the state")
        index, data = newest
        database.replace_with(snapshots.deserialize(data, index, self.set_applied))
        log.info("this portal's copy restored from the snapshot at entry %d", index)

    def snapshot(self, database) -> int | None:
        """Publish a snapshot of this copy and drop the log entries it holds, when the log
        has `snapshot_every` entries past the last one (the leader calls it): its index."""
        with database._lock:
            applied = self.applied(database._db)
        floor = self.fetch(applied)[1]
        if applied - floor < self.snapshot_every:
            return None
        copy = database.copy()
        index = self.applied(copy)
        data = snapshots.serialize(copy, index, self.set_applied)
        if not self._etcd("write a snapshot of", self.snapshots.publish, index, data):
            return None
        self._etcd("drop the old log of", self.snapshots.drop_before, index,
                   self.prefix + "log/", _index_key(self.prefix, index + 1))
        log.info("snapshot of the portal's state at entry %d (%d bytes)", index, len(data))
        return index


def _floor(response: dict) -> int:
    kvs = response.get("kvs") or []
    return int(decode(kvs[0].get("value"))) if kvs else 0


def open_store(settings: Settings, path: str | None = None, clock=time.time,
               etcd: Etcd | None = None) -> Store:
    """The portal's store at `path` (the settings' db_path by default): replicated through
    etcd when the settings name `state_endpoints`, this file alone otherwise. Every table of
    every part is created first, so any entry of the log applies."""
    store = Store.open(path or settings.db_path, clock=clock)
    store.create_tables(APPS_SCHEMA)
    if not settings.state_endpoints and etcd is None:
        return store
    etcd = etcd or Etcd(settings.state_endpoints, settings.state_ca, settings.state_cert,
                        settings.state_key)
    store.replica = StateLog(etcd)
    try:
        store.replica.join(store)
    except StoreError:
        store.close()
        raise
    try:
        store.catch_up()
    except StoreError as e:  # reads go on from this copy; writes say what is wrong
        log.warning("this portal's copy of the state may be behind: %s", e.message)
    return store
