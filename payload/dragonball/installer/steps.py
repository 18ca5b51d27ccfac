"""Run an install plan step by step, recording each in the journal.

A plan is a list of `Step`s, made by pure planning code; each step's `action`
is an adapter call that returns what it changed (for `reset`) and must be
idempotent: after a crash the interrupted step runs again.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

from dragonball.errors import DragonBallError, Failed, InstallerError
from dragonball.installer.journal import Journal

log = logging.getLogger(__name__)


class StepFailed(InstallerError, Failed):
    """A step of the install failed; re-running the install resumes at it."""


@dataclasses.dataclass(frozen=True)
class Step:
    id: str  # stable across runs: the journal's key
    title: str
    action: Callable[[], dict | None]


@dataclasses.dataclass
class StepOutcome:
    id: str
    title: str
    status: str  # "done", "skipped" (done in an earlier run), "failed"
    seconds: float = 0.0


def run_steps(steps: list, journal: Journal, on_event=lambda outcome: None,
              on_start=lambda step: None) -> list:
    """Run the steps not yet done; StepFailed (with the resume hint) on the first failure.

    `on_start(step)` is called before a step runs, `on_event(outcome)` after each.
    """
    outcomes = []
    for step in steps:
        if journal.is_done(step.id):
            outcomes.append(StepOutcome(step.id, step.title, "skipped"))
            on_event(outcomes[-1])
            continue
        on_start(step)
        began = time.monotonic()
        journal.start(step.id)
        try:
            changes = step.action()
        except DragonBallError as e:
            journal.failed(step.id, str(e))
            outcomes.append(StepOutcome(step.id, step.title, "failed",
                                        time.monotonic() - began))
            on_event(outcomes[-1])
            raise StepFailed(f"step '{step.title}' failed: {e.message}",
                             f"{e.hint + '; then ' if e.hint else ''}run the same command "
                             "again: finished steps are skipped") from e
        journal.done(step.id, changes)
        outcomes.append(StepOutcome(step.id, step.title, "done", time.monotonic() - began))
        on_event(outcomes[-1])
    journal.finish()
    return outcomes
