"""The portal's store: one SQLite database (WAL) at ``<data_dir>/portal/portal.db``.

What it keeps, and how secrets are kept:

- **admin**: the admin account's password as an scrypt hash (credentials.py: N=2**17,
  r=8, p=1, a random 16-byte salt), verified in constant time. Never the password.
- **codes**: enrollment codes as sha256 of the normalized code (``7K3M-Q9XD-...``,
  dragonball.shared.codes), with their expiry and when they were used. A code
  has ~74 random bits and failed tries are rate-limited, so an unsalted fast hash is
  enough; the code itself is shown once, when it is made, and never stored.
- **devices**: every server of the cluster (the portal too), its state (`enrolled`
  once it called enroll, `joined` once it reported its Swarm node) and the sha256 of
  its device token (256 random bits, `pki.new_secret`).
- **events**: the audit log (who did what, from which address); never a secret.
- **sessions**: the web UI's login sessions and the CLI's API tokens, hashed
  (dragonball.portal.sessions, a part of `Store`).

The connection, its lock and its transactions (local, or replicated through etcd across the
managers' portals) are dragonball.portal.database's. The clock is injected, so expiry is
tested without waiting. The hashes are made in dragonball.portal.credentials.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import sqlite3
import time
from collections.abc import Callable

from dragonball.errors import Conflict, Denied, NotFound, PortalError
from dragonball.portal.accounts import AdminAccounts
from dragonball.portal.attempts import AttemptLog
from dragonball.portal.database import Database, StoreError
from dragonball.portal.errors import RequestInvalid
from dragonball.portal.credentials import (code_hash, dummy_hash, hash_password, token_hash,
                                           verify_password)
from dragonball.portal.sessions import SCHEMA as _SESSIONS_SCHEMA, Session, SessionTable

__all__ = ["ADMIN", "DEFAULT_CODE_TTL_S", "Code", "CodeRefused", "Device", "HostnameTaken",
           "Session", "Store", "StoreError", "code_hash"]
from dragonball.shared import codes, node_labels

SCHEMA_VERSION = 1
DB_NAME = "portal.db"
DEFAULT_CODE_TTL_S = 24 * 3600
ADMIN = "admin"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS admins (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS codes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    code_hash TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    used REAL,
    created_by TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hostname TEXT NOT NULL UNIQUE COLLATE NOCASE,
    address TEXT NOT NULL,
    role TEXT NOT NULL,
    state TEXT NOT NULL,
    code_id INTEGER REFERENCES codes(id),
    token_hash TEXT UNIQUE,
    node_id TEXT,
    labels TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL,
    joined REAL);
CREATE TABLE IF NOT EXISTS device_identities (
    device_id INTEGER PRIMARY KEY,
    cert_pem TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    client TEXT,
    detail TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS events_by_client ON events (kind, client, at);
""" + _SESSIONS_SCHEMA


class CodeRefused(PortalError, Denied):
    """An enrollment code is unknown, used or expired (the code is the credential: 401)."""

    http_refinement = 401


class HostnameTaken(PortalError, Conflict):
    """Another device has this hostname (409)."""


class DeviceUnknown(PortalError, NotFound):
    """No device has this id."""


@dataclasses.dataclass(frozen=True)
class Code:
    """An enrollment code as stored (no code, only its hash's row)."""

    id: int
    created: float
    expires: float
    used: float | None


@dataclasses.dataclass(frozen=True)
class Device:
    id: int
    hostname: str
    address: str
    role: str          # "portal" or "device"
    state: str         # "enrolled" (enroll answered) or "joined" (in the Swarm)
    code_id: int | None
    node_id: str | None
    labels: dict
    created: float
    joined: float | None

    def public(self) -> dict:
        """What the API shows of a device (no token hash)."""
        return dataclasses.asdict(self)


class Store(Database, SessionTable, AttemptLog, AdminAccounts):
    """The portal's tables. `Store.open(path)` creates the database (0600, WAL) if needed;
    dragonball.portal.statelog.open_store opens it replicated when the settings say so."""

    @classmethod
    def open(cls, path: str, clock: Callable[[], float] = time.time) -> "Store":
        store = super().open(path, clock)
        store.create_tables(_SCHEMA)
        with store._lock:  # each copy's own: the schema is made by the code, not the log
            store._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)",
                              (str(SCHEMA_VERSION),))
        return store

    # --- the admin account -----------------------------------------------------------

    def set_admin_password(self, password: str, username: str = ADMIN,
                           actor: str = "installer") -> None:
        hashed = hash_password(password)
        with self.write() as db:
            db.execute("INSERT INTO admins VALUES (?, ?, ?) ON CONFLICT(username) DO UPDATE "
                       "SET password_hash = excluded.password_hash, updated = excluded.updated",
                       (username, hashed, self.clock()))
            self._event(db, "admin.password_set", actor, None, {"username": username})

    def has_admin(self, username: str = ADMIN) -> bool:
        return bool(self.read("SELECT 1 FROM admins WHERE username = ?", (username,)))

    def check_admin(self, username: str, password: str) -> bool:
        """Whether the pair is right; an unknown user costs the same scrypt as a known one."""
        rows = self.read("SELECT password_hash FROM admins WHERE username = ?", (username,))
        stored = rows[0]["password_hash"] if rows else dummy_hash()
        return verify_password(password, stored) and bool(rows)

    # --- enrollment codes ------------------------------------------------------------

    def create_code(self, ttl_s: float = DEFAULT_CODE_TTL_S, actor: str = "admin",
                    client: str | None = None) -> tuple[str, Code]:
        """A new one-time code: (the code, to show once; its stored row)."""
        if ttl_s <= 0:
            raise RequestInvalid("an enrollment code needs a lifetime above zero",
                                 "give --ttl like 30m, 24h or 7d")
        now = self.clock()
        with self.write() as db:
            while True:  # a collision of 74-bit codes is not expected; retried all the same
                code = codes.new_code()
                try:
                    cursor = db.execute(
                        "INSERT INTO codes (code_hash, created, expires, created_by) "
                        "VALUES (?, ?, ?, ?)", (code_hash(code), now, now + ttl_s, actor))
                    break
                except sqlite3.IntegrityError:
                    continue
            self._event(db, "code.created", actor, client,
                        {"code_id": cursor.lastrowid, "expires": now + ttl_s})
        return code, Code(cursor.lastrowid, now, now + ttl_s, None)

    def codes(self) -> list[Code]:
        return [Code(r["id"], r["created"], r["expires"], r["used"])
                for r in self.read("SELECT * FROM codes ORDER BY id")]

    def _usable_code(self, db: sqlite3.Connection, code: str) -> sqlite3.Row:
        """The code's row if it can enroll a device now; CodeRefused otherwise."""
        if codes.problem(code):
            raise CodeRefused("this is not an enrollment code")
        row = db.execute("SELECT * FROM codes WHERE code_hash = ?", (code_hash(code),)).fetchone()
        if row is None:
            raise CodeRefused("unknown enrollment code")
        if row["used"] is not None:
            raise CodeRefused("this enrollment code was used already")
        if row["expires"] <= self.clock():
            raise CodeRefused("this enrollment code has expired")
        return row

    # --- devices -------------------------------------------------------------------------

    def enroll(self, code: str, hostname: str, address: str, client: str | None = None,
               identity: str | None = None) -> tuple[Device, str]:
        """Bind a device to a valid code: (the device, a new device token to return once).
        `identity`: the agent certificate signed for its key (its calls must then be signed
        with that key: shared/device_proof.py); None leaves an earlier one in place.

        The code stays usable by the same hostname until the device reports it joined (or
        it expires): a server that died before its join enrolls again (a new token).
        Another hostname with the same code is refused (one code, one device).
        """
        token = secrets.token_urlsafe(32)
        now = self.clock()
        with self.write() as db:
            row = self._usable_code(db, code)
            bound = db.execute("SELECT * FROM devices WHERE code_id = ?", (row["id"],)).fetchone()
            if bound is not None and bound["hostname"].lower() != hostname.lower():
                raise CodeRefused("this enrollment code is being used by another server")
            same_name = db.execute("SELECT d.*, c.expires AS code_expires, c.used AS code_used "
                                   "FROM devices d LEFT JOIN codes c ON c.id = d.code_id "
                                   "WHERE d.hostname = ?", (hostname,)).fetchone()
            if same_name is not None and same_name["code_id"] != row["id"]:
                stale = (same_name["state"] == "enrolled" and same_name["code_used"] is None
                         and (same_name["code_expires"] or 0) <= now)
                if not stale:
                    raise HostnameTaken(f"the cluster has a server named {hostname!r} already")
                # Enrolled with a code that expired before it joined: that server never
                # came; its name is free again.
                db.execute("DELETE FROM devices WHERE id = ?", (same_name["id"],))
                db.execute("DELETE FROM device_identities WHERE device_id = ?",
                           (same_name["id"],))
            if bound is None:
                cursor = db.execute(
                    "INSERT INTO devices (hostname, address, role, state, code_id, token_hash, "
                    "created) VALUES (?, ?, 'device', 'enrolled', ?, ?, ?)",
                    (hostname, address, row["id"], token_hash(token), now))
                device_id = cursor.lastrowid
            else:
                device_id = bound["id"]
                db.execute("UPDATE devices SET address = ?, token_hash = ? WHERE id = ?",
                           (address, token_hash(token), device_id))
            labels = (json.loads(bound["labels"]) if bound else {}) | {  # a rejoin keeps its
                "io.dragonball.device-id": str(device_id), "io.dragonball.role": "device",
                node_labels.ENROLLED: "true"}
            db.execute("UPDATE devices SET labels = ? WHERE id = ?",
                       (json.dumps(labels), device_id))
            if identity is not None:
                db.execute("INSERT OR REPLACE INTO device_identities (device_id, cert_pem) "
                           "VALUES (?, ?)", (device_id, identity))
            self._event(db, "device.enrolled", "device", client,
                        {"device_id": device_id, "hostname": hostname, "address": address,
                         "code_id": row["id"], "again": bound is not None})
        return self.device(device_id), token

    def device_identity(self, device_id: int) -> str | None:
        """The agent certificate the portal signed for the device's own key, if any."""
        rows = self.read("SELECT cert_pem FROM device_identities WHERE device_id = ?",
                         (device_id,))
        return rows[0]["cert_pem"] if rows else None

    def device_identities(self) -> dict[str, str]:
        """{hostname: agent certificate} of every device the portal signed one for."""
        rows = self.read("SELECT d.hostname, i.cert_pem FROM device_identities i "
                         "JOIN devices d ON d.id = i.device_id ORDER BY d.id")
        return {row["hostname"]: row["cert_pem"] for row in rows}

    def device_by_token(self, token: str) -> Device | None:
        rows = self.read("SELECT * FROM devices WHERE token_hash = ?", (token_hash(token),))
        return _device(rows[0]) if rows else None

    def device(self, device_id: int) -> Device | None:
        rows = self.read("SELECT * FROM devices WHERE id = ?", (device_id,))
        return _device(rows[0]) if rows else None

    def devices(self) -> list[Device]:
        return [_device(r) for r in self.read("SELECT * FROM devices ORDER BY id")]

    def pending_joins(self) -> list[Device]:
        """The devices enrolled with a code still valid that have not reported their join:
        the Swarm's join token must still work for them."""
        rows = self.read("SELECT d.* FROM devices d JOIN codes c ON c.id = d.code_id "
                         "WHERE d.state = 'enrolled' AND c.used IS NULL AND c.expires > ?",
                         (self.clock(),))
        return [_device(r) for r in rows]

    def remove_device(self, device_id: int, actor: str, client: str | None = None) -> None:
        """Forget the device: its token opens nothing from now on, its name is free for a
        new enrollment (with a new code)."""
        with self.write() as db:
            row = db.execute("SELECT * FROM devices WHERE id = ?", (device_id,)).fetchone()
            if row is None:
                raise DeviceUnknown(f"no device {device_id}", "see 'dragonball devices'")
            db.execute("DELETE FROM devices WHERE id = ?", (device_id,))
            db.execute("DELETE FROM device_identities WHERE device_id = ?", (device_id,))
            self._event(db, "device.removed", actor, client,
                        {"device_id": device_id, "hostname": row["hostname"],
                         "address": row["address"], "node_id": row["node_id"]})

    def mark_joined(self, device_id: int, node_id: str, client: str | None = None) -> Device:
        """The device is in the Swarm as `node_id`: its code is used up from now on."""
        now = self.clock()
        with self.write() as db:
            row = db.execute("SELECT * FROM devices WHERE id = ?", (device_id,)).fetchone()
            if row is None:
                raise DeviceUnknown(f"no device {device_id}")
            if row["state"] != "joined" or row["node_id"] != node_id:
                db.execute("UPDATE devices SET state = 'joined', node_id = ?, joined = ? "
                           "WHERE id = ?", (node_id, now, device_id))
                self._event(db, "device.joined", "device", client,
                            {"device_id": device_id, "hostname": row["hostname"],
                             "node_id": node_id})
            if row["code_id"] is not None:
                db.execute("UPDATE codes SET used = ? WHERE id = ? AND used IS NULL",
                           (now, row["code_id"]))
        return self.device(device_id)

    def add_portal(self, hostname: str, address: str, node_id: str | None) -> Device:
        """Record the portal server itself (joined from the start); idempotent.

        Its labels are ``io.dragonball.role=portal``, its device ID and
        ``io.dragonball.enrolled=true`` (shared/node_labels.py), like a device's.
        """
        now = self.clock()
        with self.write() as db:
            row = db.execute("SELECT id FROM devices WHERE role = 'portal'").fetchone()
            if row is None:
                cursor = db.execute(
                    "INSERT INTO devices (hostname, address, node_id, role, state, created, "
                    "joined) VALUES (?, ?, ?, 'portal', 'joined', ?, ?)",
                    (hostname, address, node_id, now, now))
                device_id = cursor.lastrowid
                self._event(db, "device.joined", "installer", None,
                            {"device_id": device_id, "hostname": hostname, "role": "portal"})
            else:
                device_id = row["id"]
                db.execute("UPDATE devices SET hostname = ?, address = ?, node_id = ? "
                           "WHERE id = ?", (hostname, address, node_id, device_id))
            labels = {"io.dragonball.device-id": str(device_id), "io.dragonball.role": "portal",
                      node_labels.ENROLLED: "true"}
            db.execute("UPDATE devices SET labels = ? WHERE id = ?",
                       (json.dumps(labels), device_id))
        return self.device(device_id)

    # --- events and the rate limit ---------------------------------------------------

    def record(self, kind: str, actor: str, client: str | None = None,
               detail: dict | None = None) -> None:
        with self.write() as db:
            self._event(db, kind, actor, client, detail or {})

    def _event(self, db: sqlite3.Connection, kind: str, actor: str, client: str | None,
               detail: dict) -> None:
        db.execute("INSERT INTO events (at, kind, actor, client, detail) VALUES (?, ?, ?, ?, ?)",
                   (self.clock(), kind, actor, client, json.dumps(detail, sort_keys=True)))

    def count_events(self, kind: str, client: str, since: float) -> int:
        rows = self.read("SELECT COUNT(*) AS n FROM events WHERE kind = ? AND client = ? "
                          "AND at > ?", (kind, client, since))
        return rows[0]["n"]

    def oldest_event(self, kind: str, client: str, since: float) -> float | None:
        rows = self.read("SELECT MIN(at) AS at FROM events WHERE kind = ? AND client = ? "
                          "AND at > ?", (kind, client, since))
        return rows[0]["at"]

    def events(self, limit: int = 100) -> list[dict]:
        rows = self.read("SELECT * FROM events ORDER BY id DESC LIMIT ?", (limit,))
        return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]

    def events_before(self, before_id: int | None = None, limit: int = 50,
                      kind_prefix: str = "") -> list[dict]:
        """Events newest first, those with an id below `before_id` (a page of the log);
        with `kind_prefix` ("upgrade."), only the kinds that start with it."""
        rows = self.read("SELECT * FROM events WHERE id < ? AND substr(kind, 1, ?) = ? "
                         "ORDER BY id DESC LIMIT ?",
                         (before_id if before_id is not None else 2 ** 62, len(kind_prefix),
                          kind_prefix, limit))
        return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]


def _device(row: sqlite3.Row) -> Device:
    return Device(id=row["id"], hostname=row["hostname"], address=row["address"],
                  role=row["role"], state=row["state"], code_id=row["code_id"],
                  node_id=row["node_id"], labels=json.loads(row["labels"]),
                  created=row["created"], joined=row["joined"])
