"""The install plan: which steps run, in which order, for this server's answers and facts.

    preflight facts -> os.kernel, os.limits, [os.selinux]      OS preparation (osprep)
                    -> engine.*                                the engine (engine/apply.py)
                    -> os.firewall                             the role's ports
                    -> ROLE_STEPS[role]                        portal bootstrap / join

Extension point for later work (portal bootstrap, join): append a function
`make(ctx) -> [Step]` to `ROLE_STEPS["portal"]` or `ROLE_STEPS["device"]` when your
module is imported (or to `STEPS_BEFORE[step_id]`, for steps that must run just before
another plugin's step), and add the module's name to `PLUGINS` (install and reset import
them: reset must know your undo kinds even on a run that plans none of your steps). Its
steps' actions use `ctx.undo(step_id)` to note what they change before changing it
(kinds of their own register an undo handler with `dragonball.installer.undo.undoer`),
`ctx.host` to run programs and write files, `ctx.progress` for long work and
`ctx.secrets.add(...)` for any secret they handle (a registry password), so the
install log masks it. `authorized_key_step(ctx, key)` puts the portal's ssh key in
root's authorized_keys (the join step knows the key).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import os
from collections.abc import Callable

from dragonball.errors import InstallerError
from dragonball.installer import osprep
from dragonball.installer.engine import apply as engine_apply
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


StepMaker = Callable[[InstallContext], list]
#: Steps each role adds after the engine and firewall (portal bootstrap, join).
ROLE_STEPS: dict[str, list[StepMaker]] = {"portal": [], "device": []}
#: Modules that, once imported, have added their makers to ROLE_STEPS and registered
#: the undo handlers of their kinds: install imports them before planning, reset before
#: undoing (a journal may hold their kinds even when this run plans none of their steps).
PLUGINS: list[str] = ["dragonball.installer.portal", "dragonball.installer.join",
                      "dragonball.installer.agent"]
#: Steps a plugin puts just before another plugin's step, by that step's id: the node
#: agent's steps run after the portal's image push and service, before its first code.
STEPS_BEFORE: dict[str, list[StepMaker]] = {}


#: For tests of the base layer alone: a comma-separated list of modules that replaces
#: PLUGINS ("" loads none: an install is then OS preparation and the engine only).
PLUGINS_ENV = "DRAGONBALL_INSTALL_PLUGINS"


def load_plugins(environ=os.environ) -> None:
    names = PLUGINS if PLUGINS_ENV not in environ else \
        [n.strip() for n in environ[PLUGINS_ENV].split(",") if n.strip()]
    for name in names:
        importlib.import_module(name)


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


def build_plan(ctx: InstallContext) -> list[Step]:
    steps = [prep_step(ctx, p) for p in osprep.os_preps(ctx.facts)]
    steps += engine_apply.engine_steps(ctx)
    steps.append(prep_step(ctx, osprep.firewall_prep(ctx.facts, ctx.role)))
    for make in ROLE_STEPS.get(ctx.role, []):
        for step in make(ctx):
            for before in STEPS_BEFORE.get(step.id, []):
                steps += before(ctx)
            steps.append(step)
    ids = [s.id for s in steps]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise InstallerError(f"the install plan has duplicate step ids: {', '.join(duplicates)}")
    return steps


@contextlib.contextmanager
def open_file(path: str):
    with open(path, "rb") as f:
        yield f
