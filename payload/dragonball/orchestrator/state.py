"""What the portal keeps of applications, in its store (the portal's SQLite database).

- `apps`: the spec last applied, per app (start, stop, restart and params read it back);
- `params`: the parameters set on the portal per service (over the spec's defaults), with a
  revision that only grows, so every server and task can tell newer from older;
- `notifications`: the outbox of state changes for dependents, in order per receiver;
- `service_states`: the last state seen per service, to tell what changed;
- `slot_pins`: the server each slot of a service with storage is pinned to (the node label
  enforces it; this record outlives a node removed from the Swarm, so its slot waits for it
  rather than being placed again, empty);
- `job_runs`: each one-shot job's last run, the parts of what it ran and how it ended, so an
  apply runs it again only when its definition changed (orchestrator.jobs).

Each write is one transaction of the store's; the store records the audit events.
"""

from __future__ import annotations

import dataclasses
import json
import typing

from dragonball.orchestrator.jobs import JobRun


RETRY_MAX_S = 60.0
SCHEMA = """
CREATE TABLE IF NOT EXISTS apps (
    name TEXT PRIMARY KEY, file TEXT NOT NULL, spec TEXT NOT NULL, applied REAL NOT NULL);
CREATE TABLE IF NOT EXISTS params (
    app TEXT NOT NULL, service TEXT NOT NULL, revision INTEGER NOT NULL,
    values_json TEXT NOT NULL, updated REAL NOT NULL, PRIMARY KEY (app, service));
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT, app TEXT NOT NULL, receiver TEXT NOT NULL,
    seq INTEGER NOT NULL, payload TEXT NOT NULL, created REAL NOT NULL,
    delivered REAL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,
    next_try REAL NOT NULL DEFAULT 0,
    UNIQUE (app, receiver, seq));
CREATE TABLE IF NOT EXISTS published (
    app TEXT NOT NULL, service TEXT NOT NULL, values_json TEXT NOT NULL,
    PRIMARY KEY (app, service));
CREATE TABLE IF NOT EXISTS slot_pins (
    app TEXT NOT NULL, slot TEXT NOT NULL, server TEXT NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (app, slot));
CREATE TABLE IF NOT EXISTS job_runs (
    app TEXT NOT NULL, job TEXT NOT NULL, parts TEXT NOT NULL, outcome TEXT NOT NULL,
    finished REAL NOT NULL, PRIMARY KEY (app, job));
CREATE TABLE IF NOT EXISTS service_states (
    app TEXT NOT NULL, service TEXT NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (app, service));
"""


@dataclasses.dataclass(frozen=True)
class Notification:
    id: int
    app: str
    receiver: str
    seq: int
    payload: dict
    attempts: int
    last_error: str | None


class Database(typing.Protocol):
    """What the application tables need of the database that holds them (the portal's
    store gives it): one write transaction at a time, reads, a clock, its own tables."""

    def write(self) -> typing.ContextManager: ...
    def read(self, sql: str, args: tuple = ()) -> list: ...
    def clock(self) -> float: ...
    def create_tables(self, schema: str) -> None: ...


class AppStore:
    """The application tables of the portal's store."""

    def __init__(self, store: Database) -> None:
        self.store = store
        store.create_tables(SCHEMA)

    # -- applied specs -------------------------------------------------------------------
    def save_app(self, name: str, file: str, text: str) -> None:
        with self.store.write() as db:
            db.execute("INSERT INTO apps VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE "
                       "SET file = excluded.file, spec = excluded.spec, "
                       "applied = excluded.applied", (name, file, text, self.store.clock()))

    def app(self, name: str) -> tuple[str, str] | None:
        """(file, spec text) of the app last applied, or None."""
        rows = self.store.read("SELECT file, spec FROM apps WHERE name = ?", (name,))
        return (rows[0]["file"], rows[0]["spec"]) if rows else None

    def apps(self) -> list[str]:
        return [r["name"] for r in self.store.read("SELECT name FROM apps ORDER BY name")]

    def forget_app(self, name: str) -> None:
        """Forget an app's spec, states, notifications and jobs' runs (applied again, its
        jobs run again). Its parameters stay: their revisions must keep growing (the
        servers refuse an older one)."""
        with self.store.write() as db:
            db.execute("DELETE FROM apps WHERE name = ?", (name,))
            for table in ("published", "service_states", "notifications", "job_runs"):
                db.execute(f"DELETE FROM {table} WHERE app = ?", (name,))

    # -- where each slot's data is ---------------------------------------------------------
    def pins(self, app: str) -> dict:
        """slot -> the server recorded for it."""
        return {r["slot"]: r["server"] for r in self.store.read(
            "SELECT slot, server FROM slot_pins WHERE app = ? ORDER BY slot", (app,))}

    def set_pins(self, app: str, pins: dict) -> None:
        """Record (or change) the server of each slot in `pins`; others stay as they were."""
        with self.store.write() as db:
            for slot, server in sorted(pins.items()):
                db.execute("INSERT INTO slot_pins VALUES (?, ?, ?, ?) ON CONFLICT (app, slot) "
                           "DO UPDATE SET server = excluded.server, updated = excluded.updated "
                           "WHERE server != excluded.server",
                           (app, slot, server, self.store.clock()))

    # -- one-shot jobs' runs ----------------------------------------------------------------
    def job_runs(self, app: str) -> dict:
        """job -> its last run (orchestrator.jobs.JobRun)."""
        rows = self.store.read("SELECT job, parts, outcome, finished FROM job_runs WHERE "
                                "app = ?", (app,))
        return {r["job"]: JobRun(json.loads(r["parts"]), r["outcome"], r["finished"])
                for r in rows}

    def record_job_run(self, app: str, job: str, parts: dict, outcome: str) -> None:
        """The last run of `job` ran `parts` and ended `outcome` ("done", "failed")."""
        with self.store.write() as db:
            db.execute("INSERT INTO job_runs VALUES (?, ?, ?, ?, ?) ON CONFLICT (app, job) "
                       "DO UPDATE SET parts = excluded.parts, outcome = excluded.outcome, "
                       "finished = excluded.finished",
                       (app, job, json.dumps(parts, sort_keys=True), outcome,
                        self.store.clock()))

    # -- parameters ----------------------------------------------------------------------
    def params(self, app: str, service: str) -> tuple[int, dict]:
        """(revision, the values set on the portal); (0, {}) when none were."""
        rows = self.store.read("SELECT revision, values_json FROM params WHERE app = ? AND "
                                "service = ?", (app, service))
        return (rows[0]["revision"], json.loads(rows[0]["values_json"])) if rows else (0, {})

    def set_params(self, app: str, service: str, values: dict) -> int:
        """Store the values set on the portal (replacing them); return the new revision."""
        with self.store.write() as db:
            row = db.execute("SELECT revision FROM params WHERE app = ? AND service = ?",
                             (app, service)).fetchone()
            revision = (row["revision"] if row else 0) + 1
            db.execute("INSERT INTO params VALUES (?, ?, ?, ?, ?) ON CONFLICT (app, service) "
                       "DO UPDATE SET revision = excluded.revision, values_json = "
                       "excluded.values_json, updated = excluded.updated",
                       (app, service, revision, json.dumps(values, sort_keys=True),
                        self.store.clock()))
        return revision

    def bump_params(self, app: str, service: str) -> int:
        """A new revision of the same values (the spec's defaults changed)."""
        return self.set_params(app, service, self.params(app, service)[1])

    def published(self, app: str, service: str) -> dict | None:
        """The values in force last written to the servers, or None."""
        rows = self.store.read("SELECT values_json FROM published WHERE app = ? AND "
                                "service = ?", (app, service))
        return json.loads(rows[0]["values_json"]) if rows else None

    def mark_published(self, app: str, service: str, values: dict) -> None:
        with self.store.write() as db:
            db.execute("INSERT INTO published VALUES (?, ?, ?) ON CONFLICT (app, service) "
                       "DO UPDATE SET values_json = excluded.values_json",
                       (app, service, json.dumps(values, sort_keys=True)))

    # -- states and notifications --------------------------------------------------------
    def states(self, app: str) -> dict:
        rows = self.store.read("SELECT service, state FROM service_states WHERE app = ?",
                                (app,))
        return {r["service"]: json.loads(r["state"]) for r in rows}

    def record_changes(self, app: str, states: dict, notifications: list[tuple]) -> None:
        """Save the states seen and queue `notifications` [(receiver, payload)] in one
        transaction: a change is never seen without its notifications queued."""
        now = self.store.clock()
        with self.store.write() as db:
            for service, state in states.items():
                db.execute("INSERT INTO service_states VALUES (?, ?, ?) ON CONFLICT "
                           "(app, service) DO UPDATE SET state = excluded.state",
                           (app, service, json.dumps(state, sort_keys=True)))
            for receiver, payload in notifications:
                row = db.execute("SELECT MAX(seq) AS seq FROM notifications WHERE app = ? "
                                 "AND receiver = ?", (app, receiver)).fetchone()
                seq = (row["seq"] or 0) + 1
                body = dict(payload, seq=seq, to=receiver)
                db.execute("INSERT INTO notifications (app, receiver, seq, payload, created) "
                           "VALUES (?, ?, ?, ?, ?)",
                           (app, receiver, seq, json.dumps(body, sort_keys=True), now))

    def pending(self, app: str, due_only: bool = True) -> dict:
        """receiver -> its oldest undelivered notification (delivery is in order); with
        `due_only`, only those whose retry time has come."""
        rows = self.store.read(
            "SELECT * FROM notifications WHERE app = ? AND delivered IS NULL "
            "ORDER BY receiver, seq", (app,))
        first: dict = {}
        for r in rows:
            first.setdefault(r["receiver"], r)
        now = self.store.clock()
        return {receiver: _notification(r) for receiver, r in first.items()
                if not due_only or r["next_try"] <= now}

    def notifications(self, app: str, limit: int = 100) -> list[dict]:
        rows = self.store.read("SELECT * FROM notifications WHERE app = ? ORDER BY id DESC "
                                "LIMIT ?", (app, limit))
        return [dict(r) | {"payload": json.loads(r["payload"])} for r in rows]

    def delivered(self, notification_id: int) -> None:
        with self.store.write() as db:
            db.execute("UPDATE notifications SET delivered = ?, attempts = attempts + 1, "
                       "last_error = NULL WHERE id = ?", (self.store.clock(), notification_id))

    def failed(self, notification_id: int, error: str) -> None:
        """Count a failed delivery; the next try waits 2, 4, 8... up to 60 s."""
        with self.store.write() as db:
            row = db.execute("SELECT attempts FROM notifications WHERE id = ?",
                             (notification_id,)).fetchone()
            delay = min(RETRY_MAX_S, 2.0 ** ((row["attempts"] if row else 0) + 1))
            db.execute("UPDATE notifications SET attempts = attempts + 1, last_error = ?, "
                       "next_try = ? WHERE id = ?",
                       (error[:2000], self.store.clock() + delay, notification_id))


def _notification(row) -> Notification:
    return Notification(row["id"], row["app"], row["receiver"], row["seq"],
                        json.loads(row["payload"]), row["attempts"], row["last_error"])
