"""The portal's SQLite database and its transactions, local or replicated.

`Database` is the connection under `Store` (dragonball.portal.store keeps the portal's tables
on it): one connection per process, guarded by a lock (the API's worker threads share it);
other processes (`dragonball enroll`) write beside it thanks to WAL and a busy timeout.

With a replica (dragonball.portal.statelog, when the portal's settings name etcd endpoints),
every write transaction is first caught up with the replicated log, then its statements are
recorded, and the transaction commits locally only once they are an entry of the log: the
local file is then a cache that every manager's portal rebuilds from the same log. Without
one (no `state_endpoints`), the file is the state, as before.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import typing
from collections.abc import Callable, Iterator

from dragonball.errors import PortalError, Unavailable

BUSY_TIMEOUT_MS = 10_000


class StoreError(PortalError, Unavailable):
    """The portal's database cannot be opened or used."""


class Replica(typing.Protocol):
    """What `Database` needs of a replicated log (dragonball.portal.statelog.StateLog)."""

    def catch_up(self, db: sqlite3.Connection) -> int: ...
    def recorder(self, db: sqlite3.Connection) -> typing.Any: ...
    def append(self, db: sqlite3.Connection, recorder: typing.Any) -> None: ...
    def restore(self, database: "Database") -> None: ...
    def applied(self, db: sqlite3.Connection) -> int: ...
    def has_after(self, index: int) -> bool: ...


class Behind(Exception):
    """The entries after this replica's index are no longer in the log (a snapshot replaced
    them): the replica must restore the snapshot first. Never leaves this module's callers."""


class Database:
    """The portal's database. `open(path)` creates it (0600, WAL) if needed."""

    def __init__(self, connection: sqlite3.Connection, path: str,
                 clock: Callable[[], float] = time.time) -> None:
        self._db, self.path, self.clock = connection, path, clock
        self._lock = threading.RLock()
        self.replica: Replica | None = None
        self._schemas: list[str] = []

    @classmethod
    def open(cls, path: str, clock: Callable[[], float] = time.time):
        folder = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
            # Created 0600 before SQLite opens it; its -wal and -shm files take that mode.
            os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
            connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000,
                                         isolation_level=None, check_same_thread=False)
            connection.row_factory = sqlite3.Row
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("PRAGMA foreign_keys = ON")
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"cannot open the portal database {path}: {e}",
                             "check the data directory exists, is writable by root and "
                             "not full") from e
        if mode.lower() != "wal":
            raise StoreError(f"{path} cannot use SQLite's WAL mode (it is {mode})",
                             "keep the data directory on a local file system")
        return cls(connection, path, clock)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (BEGIN IMMEDIATE): no lost updates. With a
        replica, it starts from the log's newest entry and commits only once its statements
        are the log's next entry (StoreConflict, StoreError: nothing changed)."""
        with self._lock:
            self._begin()
            try:
                if self.replica is None:
                    yield self._db
                else:
                    recorder = self.replica.recorder(self._db)
                    yield recorder
                    self.replica.append(self._db, recorder)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _begin(self) -> None:
        for _ in range(3):
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as e:
                raise StoreError(f"the portal database {self.path} is busy: {e}",
                                 "try again in a moment") from e
            if self.replica is None:
                return
            try:
                self.replica.catch_up(self._db)
                return
            except Behind:
                self._db.execute("ROLLBACK")
                self.restore()
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        raise StoreError("the portal's replicated state kept moving past this portal's "
                         "snapshots", "try again in a moment")

    def catch_up(self) -> bool:
        """Apply the replicated log's entries this copy has not applied yet (a follower's
        loop calls it every second, so a standby portal's reads are fresh): whether it
        applied any. Without a replica there is nothing to do."""
        if self.replica is None:
            return False
        with self._lock:
            applied = self.replica.applied(self._db)
        if not self.replica.has_after(applied):  # one read of etcd, outside the lock
            return False
        with self.write():  # its start catches up; no statement, no entry
            pass
        return True

    def restore(self) -> None:
        """Replace this copy by the log's newest snapshot (outside a transaction), then
        create the tables of this version that the snapshot may lack."""
        with self._lock:
            self.replica.restore(self)
            for schema in self._schemas:
                self._db.executescript(schema)

    def replace_with(self, source: sqlite3.Connection) -> None:
        """Copy every page of `source` over this database (SQLite's backup: other
        connections, in this process or another, see the new content)."""
        with self._lock:
            source.backup(self._db)

    def copy(self) -> sqlite3.Connection:
        """A consistent in-memory copy of the database (for a snapshot)."""
        copy = sqlite3.connect(":memory:", isolation_level=None)
        with self._lock:
            self._db.backup(copy)
        return copy

    def read(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        """The rows of one query, read under the store's lock."""
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def create_tables(self, schema: str) -> None:
        """Create the tables of another part (`CREATE TABLE IF NOT EXISTS ...`): the
        application layer keeps its own tables in this store (orchestrator.state). Every
        copy creates its tables itself: the log holds only rows."""
        with self._lock:  # executescript commits by itself: not inside write()
            try:
                self._db.executescript(schema)
            except sqlite3.Error as e:
                raise StoreError(f"cannot create the tables of {self.path}: {e}",
                                 "check the data directory is writable and not full") from e
            if schema not in self._schemas:
                self._schemas.append(schema)
