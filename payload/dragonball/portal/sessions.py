"""Login sessions of the web UI and API tokens of the CLI, in the portal's store
(dragonball.portal.auth uses them): the sha256 of the 256-bit secret the browser or CLI
holds, never the secret; an idle timeout and an absolute expiry; the session's CSRF token.
`SessionTable` is part of `Store` (it uses the store's transactions, clock and events).
"""

from __future__ import annotations

import dataclasses
import logging
import secrets

from dragonball.errors import Conflict
from dragonball.portal.credentials import token_hash

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id_hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    username TEXT NOT NULL,
    csrf_token TEXT NOT NULL,
    client TEXT,
    created REAL NOT NULL,
    seen REAL NOT NULL,
    idle_s REAL NOT NULL,
    expires REAL NOT NULL);
"""


@dataclasses.dataclass(frozen=True)
class Session:
    """A login session (kind "session": a browser's cookie) or an API token (kind "token")."""

    kind: str
    username: str
    csrf_token: str
    created: float
    seen: float
    idle_s: float
    expires: float


class SessionTable:
    """The store's session calls; needs `clock`, `_write`, `_read` and `_event`."""

    #: A live session's `seen` is written at most this often (not a write per request).
    SEEN_EVERY_S = 30

    def create_session(self, username: str, kind: str, idle_s: float, absolute_s: float,
                       client: str | None = None) -> tuple[str, Session]:
        """A new session: (its secret, for the cookie or the CLI and never stored; its row)."""
        secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = self.clock()
        with self.write() as db:
            db.execute("DELETE FROM sessions WHERE expires <= ? OR seen + idle_s <= ?",
                       (now, now))
            db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (token_hash(secret), kind, username, csrf, client, now, now, idle_s,
                        now + absolute_s))
            self._event(db, f"{kind}.created", username, client, {})
        return secret, Session(kind, username, csrf, now, now, idle_s, now + absolute_s)

    def session(self, secret: str) -> Session | None:
        """The live session `secret` opens (its idle time restarts), None if none or expired."""
        now = self.clock()
        rows = self.read("SELECT * FROM sessions WHERE id_hash = ?", (token_hash(secret),))
        if not rows or rows[0]["expires"] <= now or rows[0]["seen"] + rows[0]["idle_s"] <= now:
            return None
        row = dict(rows[0])
        if now - row["seen"] >= self.SEEN_EVERY_S:
            try:
                with self.write() as db:
                    db.execute("UPDATE sessions SET seen = ? WHERE id_hash = ?",
                               (now, row["id_hash"]))
                row["seen"] = now
            except Conflict:
                # Bookkeeping, not the request's purpose: another manager's portal took the
                # replicated log's next entry at this instant (all of them write at once after
                # a power cut). The session is valid; its `seen` is written by a later request.
                log.info("a session's last use was not recorded: another portal wrote first")
        return Session(row["kind"], row["username"], row["csrf_token"], row["created"],
                       row["seen"], row["idle_s"], row["expires"])

    def end_session(self, secret: str, client: str | None = None) -> bool:
        """Delete the session `secret` opens (logout); whether there was one."""
        with self.write() as db:
            row = db.execute("SELECT kind, username FROM sessions WHERE id_hash = ?",
                             (token_hash(secret),)).fetchone()
            if row is None:
                return False
            db.execute("DELETE FROM sessions WHERE id_hash = ?", (token_hash(secret),))
            self._event(db, f"{row['kind']}.ended", row["username"], client, {})
        return True

    def end_sessions(self, username: str, client: str | None = None) -> int:
        """End every session and token of `username` (logout everywhere); how many."""
        with self.write() as db:
            ended = db.execute("DELETE FROM sessions WHERE username = ?", (username,)).rowcount
            self._event(db, "sessions.ended_all", username, client, {"ended": ended})
        return ended
