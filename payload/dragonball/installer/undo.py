"""What install changed, noted before each change, and how `reset` undoes it.

A step's action gets an `UndoLog` and calls `note(key, entry)` *before* it changes
anything: the entry is in the journal (fsynced) when the change happens, so a
`kill -9` between the change and the step's end loses nothing. The first note of a
key wins: a re-run sees the system as the killed run left it, not as it was.

An entry is a JSON dict with a "kind"; `undo_all` undoes the journal's entries,
latest step first and each step's entries in reverse, through the handler
registered for the kind (`@undoer("file")`). Steps of later work register their
own kinds the same way. Undone entries are dropped from the journal one by one,
so an interrupted reset resumes too; an entry that fails stays, and reset says so.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from dragonball.errors import DragonBallError
from dragonball.installer.journal import Journal

log = logging.getLogger(__name__)

#: kind -> handler(host, entry): undoes one entry; idempotent (reset may run twice).
HANDLERS: dict[str, Callable] = {}


def undoer(kind: str):
    """Register the function that undoes entries of `kind`."""
    def register(handler):
        HANDLERS[kind] = handler
        return handler
    return register


class UndoLog:
    """The noted changes of one running step."""

    def __init__(self, journal: Journal, step_id: str) -> None:
        self.journal, self.step_id = journal, step_id

    def note(self, key: str, entry: dict) -> dict:
        """Record `entry` (it has a "kind") before the change; the first note of `key` wins."""
        if entry.get("kind") not in HANDLERS:
            raise ValueError(f"no undo handler for kind {entry.get('kind')!r}")
        return self.journal.note(self.step_id, key, entry)

    def get(self, key: str) -> dict | None:
        return self.journal.steps[self.step_id].changes.get(key)

    def forget(self, key: str) -> None:
        """Drop a note whose change the step itself took back (a temporary file)."""
        self.journal.forget(self.step_id, key)

    def entries(self) -> dict:
        """Everything noted so far: what the step's action returns."""
        return dict(self.journal.steps[self.step_id].changes)


@dataclasses.dataclass(frozen=True)
class Undone:
    """One entry reset dealt with: `status` is undone, failed or skipped (unknown kind)."""

    step: str
    key: str
    status: str
    detail: str = ""


def undo_all(journal: Journal, host, on_entry: Callable[[Undone], None] = lambda u: None
             ) -> list[Undone]:
    """Undo every noted change, latest first; return what happened to each entry."""
    results = []
    for step_id, changes in journal.changes():
        for key in reversed(list(changes)):
            entry = changes[key]
            kind = entry.get("kind") if isinstance(entry, dict) else None
            handler = HANDLERS.get(kind)
            if handler is None:
                result = Undone(step_id, key, "skipped",
                                "recorded without a kind reset knows: left as it is")
                journal.forget(step_id, key)
            else:
                try:
                    handler(host, entry)
                    result = Undone(step_id, key, "undone")
                    journal.forget(step_id, key)
                except DragonBallError as e:
                    result = Undone(step_id, key, "failed", str(e))
            log.info("reset %s %s: %s %s", step_id, key, result.status, result.detail)
            results.append(result)
            on_entry(result)
    return results
