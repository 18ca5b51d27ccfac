"""The install plan: the context every step gets, and the plan of this server's role.

Which steps a role runs, and in which order, is `installer/roles.py` (one table);
`build_plan(ctx, roles.STEPS)` makes them for this server's answers and facts and refuses
duplicate step ids (the journal's keys). A step's action uses `ctx.undo(step_id)` to note
what it changes before changing it (kinds of its own register an undo handler with
`dragonball.installer.undo.undoer`), `ctx.host` to run programs and write files,
`ctx.progress` for long work and `ctx.secrets.add(...)` for any secret it handles (a
registry password), so the install log masks it. `authorized_key_step(ctx, key)` puts
the portal's ssh key in root's authorized_keys (the join step knows the key).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Mapping

from dragonball.errors import InstallerError
from dragonball.installer import osprep
from dragonball.installer.apply import Applier
from dragonball.installer.journal import Journal
from dragonball.installer.preflight.facts import Facts
from dragonball.installer.steps import Step
from dragonball.installer.undo import UndoLog

log = logging.getLogger(__name__)


class Progress:
    """What a step tells the person while it runs; the command shows it (rich)."""

    def update(self, text: str) -> None:
        log.debug("progress: %s", text)

    def warn(self, text: str) -> None:
        log.warning("%s", text)


@dataclasses.dataclass
class InstallContext:
    """Everything a step needs: answers, facts, where to record, what to change."""

    answers: object          # dragonball.wizard.Answers (role, address, data_dir, ...)
    facts: Facts             # preflight's facts of this server, probed before any change
    journal: Journal
    host: object             # dragonball.installer.host.Host
    manifest: dict | None = None
    progress: Progress = dataclasses.field(default_factory=Progress)
    secrets: object = None   # dragonball.installer.logs.SecretFilter
    #: () -> context manager of a seekable binary file: the release's engine.tar
    open_engine: Callable | None = None

    @property
    def role(self) -> str:
        return self.answers.role

    @property
    def data_dir(self) -> str:
        return self.answers.data_dir

    def undo(self, step_id: str) -> UndoLog:
        return UndoLog(self.journal, step_id)

    def engine_tar(self):
        if self.open_engine is None:
            raise InstallerError("the engine's packages are in the .bin: this run has none",
                                 "run it as: sudo ./DragonBall-<version>.bin install")
        return self.open_engine()


#: ctx -> the steps of one role, in order (installer/roles.py)
RoleSteps = Callable[[InstallContext], list[Step]]


def prep_step(ctx: InstallContext, prep: osprep.Prep) -> Step:
    """A Step that applies a described preparation, noting each change first."""
    def action() -> dict:
        undo = ctx.undo(prep.id)
        applier = Applier(ctx.host, undo, warn=ctx.progress.warn)
        for change in prep.changes:
            applier.apply(change)
        return undo.entries()
    return Step(prep.id, prep.title, action)


def authorized_key_step(ctx: InstallContext, key, step_id: str = "os.ssh_key") -> Step:
    """Put the portal's ssh public key in root's authorized_keys.

    `key` is the key line, or a callable giving it when the step runs (the join
    step learns it from the portal); reset takes exactly that line out again.
    """
    def action() -> dict:
        prep = osprep.authorized_key_prep(key() if callable(key) else key)
        return prep_step(ctx, dataclasses.replace(prep, id=step_id)).action()
    return Step(step_id, "the portal's ssh key in root's authorized_keys", action)


def build_plan(ctx: InstallContext, role_steps: Mapping[str, RoleSteps]) -> list[Step]:
    """The steps of this server's role (`role_steps`: roles.STEPS, or roles.BASE_ONLY)."""
    steps = role_steps[ctx.role](ctx)
    ids = [s.id for s in steps]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise InstallerError(f"the install plan has duplicate step ids: {', '.join(duplicates)}")
    return steps


@contextlib.contextmanager
def open_file(path: str):
    with open(path, "rb") as f:
        yield f
