"""The install journal: which steps of an install are done, so a re-run resumes.

One JSON file under /var/lib/dragonball (0600, written atomically). A step is
recorded `running` before it starts and `done` (with what it changed) after,
so a re-run after a failure or a `kill -9` runs the interrupted step again
(steps are idempotent) and skips the finished ones. A re-run with different
answers is refused: resuming someone else's half-install would mix two plans.

A step may also `note` what it is about to change *before* changing it (a
write-ahead record, dragonball.installer.undo): the first note of a key wins, is
kept when the step runs again, and `changes()` lists it even for a step that
was interrupted or failed, so `reset` undoes half-done steps too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import time

from dragonball.errors import Conflict, InstallerError

JOURNAL_NAME = "install-journal.json"
FORMAT = 1


class JournalError(InstallerError, Conflict):
    """The journal cannot be read or does not belong to this install: what is on this server
    forbids going on until it is finished, reset or moved away."""


def answers_digest(answers: dict) -> str:
    """A digest of the answers that shape the plan (secrets included, never stored)."""
    return hashlib.sha256(json.dumps(answers, sort_keys=True).encode()).hexdigest()


@dataclasses.dataclass
class StepRecord:
    state: str  # "running", "done" or "failed"
    started: float
    finished: float | None = None
    changes: dict = dataclasses.field(default_factory=dict)  # what reset must undo
    error: str | None = None


class Journal:
    """The journal file of one server."""

    def __init__(self, state_dir: str) -> None:
        self.path = os.path.join(state_dir, JOURNAL_NAME)
        self.digest: str | None = None
        self.steps: dict = {}
        self.finished: float | None = None

    @classmethod
    def load(cls, state_dir: str) -> "Journal":
        journal = cls(state_dir)
        try:
            with open(journal.path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return journal
        except (OSError, ValueError) as e:
            raise JournalError(f"cannot read the install journal {journal.path}: {e}",
                               "move it away to start over ('reset' restores what it lists)") from e
        if data.get("format") != FORMAT:
            raise JournalError(f"{journal.path} has format {data.get('format')!r}, not {FORMAT}",
                               "finish or reset that install with the release that started it")
        journal.digest = data.get("answers")
        journal.finished = data.get("finished")
        journal.steps = {k: StepRecord(**v) for k, v in data.get("steps", {}).items()}
        return journal

    def begin(self, digest: str) -> None:
        """Start or resume the install whose answers have `digest`."""
        if self.digest and self.digest != digest:
            # starting over would forget what the first install changed, so reset could
            # no longer undo it: the first install must be reset first, finished or not
            state = "is installed" if self.finished else "stopped half-way through an install"
            raise JournalError(f"this server {state} with other answers",
                               "re-run with the same answers file, or run 'reset' first to "
                               "undo that install")
        self.digest = digest
        self.finished = None
        self._save()

    def is_done(self, step_id: str) -> bool:
        record = self.steps.get(step_id)
        return bool(record and record.state == "done")

    def interrupted(self) -> list:
        """Steps that were running when the last run died (they run again)."""
        return [k for k, r in self.steps.items() if r.state == "running"]

    def start(self, step_id: str) -> None:
        earlier = self.steps.get(step_id)
        # What an interrupted or failed run noted stays: it is what reset must undo.
        kept = dict(earlier.changes) if earlier and earlier.state != "done" else {}
        self.steps[step_id] = StepRecord("running", time.time(), changes=kept)
        self._save()

    def note(self, step_id: str, key: str, entry: dict) -> dict:
        """Record `entry` under `key` of a running step before the change it describes.

        The first note of a key wins (a re-run after a kill sees the system as the
        first run left it, not as it was); the kept entry is returned.
        """
        record = self.steps[step_id]
        if key not in record.changes:
            record.changes[key] = entry
            self._save()
        return record.changes[key]

    def forget(self, step_id: str, key: str | None = None) -> None:
        """Drop one noted change (undone, or no longer needed), or a step's whole record."""
        if key is None:
            self.steps.pop(step_id, None)
        elif step_id in self.steps:
            self.steps[step_id].changes.pop(key, None)
        self._save()

    def remove(self) -> None:
        """Delete the journal file (after a reset undid everything it listed)."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.digest, self.steps, self.finished = None, {}, None

    def done(self, step_id: str, changes: dict | None = None) -> None:
        record = self.steps[step_id]
        record.state, record.finished = "done", time.time()
        record.changes = {**record.changes, **(changes or {})}  # noted ones stay
        self._save()

    def failed(self, step_id: str, error: str) -> None:
        record = self.steps[step_id]
        record.state, record.finished, record.error = "failed", time.time(), error
        self._save()

    def finish(self) -> None:
        self.finished = time.time()
        self._save()

    def changes(self) -> list:
        """(step id, changes) of the steps that changed something, latest first: the order
        reset undoes them. Interrupted and failed steps count: they may have changed
        something before they stopped (what they noted)."""
        changed = [(k, r) for k, r in self.steps.items() if r.changes]
        return [(k, r.changes) for k, r in sorted(changed, key=lambda kr: kr[1].started,
                                                   reverse=True)]

    def _save(self) -> None:
        folder = os.path.dirname(self.path)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        data = {"format": FORMAT, "answers": self.digest, "finished": self.finished,
                "steps": {k: dataclasses.asdict(r) for k, r in self.steps.items()}}
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".journal-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
