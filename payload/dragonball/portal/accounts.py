"""The admin account's password after install: a change that ends the other sessions and
tokens, and a hash made again at today's cost (`credentials.needs_rehash`) at the next
right login. `AdminAccounts` is part of `Store` (it uses the store's transactions, clock
and events, and `SessionTable.end_sessions` inside the same transaction).
"""

from __future__ import annotations

from dragonball.portal.credentials import hash_password, needs_rehash, token_hash


class AdminAccounts:
    """The store's calls for the admin's password; needs `read`, `write` and `_event`."""

    def rehash_admin(self, username: str, password: str) -> bool:
        """Store `password` (just checked right) at today's cost if its hash is older;
        whether it was. A password changed meanwhile is left alone."""
        rows = self.read("SELECT password_hash FROM admins WHERE username = ?", (username,))
        if not rows or not needs_rehash(rows[0]["password_hash"]):
            return False
        hashed = hash_password(password)
        with self.write() as db:
            changed = db.execute(
                "UPDATE admins SET password_hash = ? WHERE username = ? AND password_hash = ?",
                (hashed, username, rows[0]["password_hash"])).rowcount
            if changed:
                self._event(db, "admin.password_rehashed", username, None, {})
        return bool(changed)

    def change_admin_password(self, username: str, new_password: str, client: str | None,
                              keep_secret: str | None = None) -> int:
        """Set `username`'s password (its current one checked by the caller) and end every
        session and token of that user but the one `keep_secret` opens, in one transaction;
        how many ended."""
        hashed = hash_password(new_password)
        keep = token_hash(keep_secret) if keep_secret else ""
        with self.write() as db:
            db.execute("UPDATE admins SET password_hash = ?, updated = ? WHERE username = ?",
                       (hashed, self.clock(), username))
            ended = db.execute("DELETE FROM sessions WHERE username = ? AND id_hash != ?",
                               (username, keep)).rowcount
            self._event(db, "admin.password_changed", username, client,
                        {"sessions_ended": ended})
        return ended
