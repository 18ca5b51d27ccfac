"""Rate-limited attempts in the portal's store (dragonball.portal.api.Limiter uses them): a
failed login or enrollment code is an event of its kind per client address, and an attempt
takes its place among those events *before* it is checked.

Checking first and recording the failure afterwards let every concurrent guess through
(20 of 20 against a limit of 10, measured): each saw the same count. Here the count and the
insert are one SQL statement in one write transaction (BEGIN IMMEDIATE takes SQLite's write
lock, across processes too), so at most `limit` attempts can hold a place at once.
`AttemptLog` is part of `Store` (it uses the store's transactions and clock).
"""

from __future__ import annotations

import json

#: The detail of an event that is still being checked: it counts as a failure meanwhile.
PENDING = {"reason": "being checked"}


class AttemptLog:
    """The store's calls for attempts; needs `clock` and `write`."""

    def reserve_event(self, kind: str, client: str, since: float, limit: int,
                      actor: str = "anonymous") -> int | None:
        """Record an event of `kind` for `client` if fewer than `limit` of them are newer than
        `since`: its id, or None when the limit is reached. Count and insert are one
        statement, so concurrent callers cannot both take the last place."""
        with self.write() as db:
            cursor = db.execute(
                "INSERT INTO events (at, kind, actor, client, detail) SELECT ?, ?, ?, ?, ? "
                "WHERE (SELECT COUNT(*) FROM events WHERE kind = ? AND client = ? AND at > ?)"
                " < ?", (self.clock(), kind, actor, client, json.dumps(PENDING), kind, client,
                         since, limit))
            return cursor.lastrowid if cursor.rowcount == 1 else None

    def settle_event(self, event_id: int, detail: dict) -> None:
        """The attempt failed: its event stays, with what went wrong."""
        with self.write() as db:
            db.execute("UPDATE events SET detail = ? WHERE id = ?",
                       (json.dumps(detail, sort_keys=True), event_id))

    def drop_event(self, event_id: int) -> None:
        """The attempt did not fail (or could not be checked): it gives its place back."""
        with self.write() as db:
            db.execute("DELETE FROM events WHERE id = ?", (event_id,))
