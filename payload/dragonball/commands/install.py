"""`dragonball install` and `dragonball reset`: their arguments, output and exit statuses.

    dragonball install [--answers FILE] [--yes] [--data-dir DIR]
                       [--role R] [--address IP] [--portal P] [--code C] [--ca-fingerprint F]
    dragonball reset [--yes] [--data-dir DIR]

What install does is `dragonball.installer.install` (answers, preflight, the role's steps
through the journal); what reset does is `dragonball.installer.reset`. Here: the command
line, the progress and tables shown, the confirmation reset asks for (--yes skips it;
with no terminal and no --yes it refuses). Errors end at the top-level handler with their
category's exit status (README.md, "Exit statuses"): 1 failed (preflight, a step, a
confirmation refused), 2 wrong usage or answers, 4 installed here with other answers,
130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time

from rich.table import Table

from dragonball.console import console
from dragonball.errors import DragonBallError, ExitStatus, InstallerError, InvalidInput
from dragonball.installer import install as install_mod
from dragonball.installer import reset as reset_mod
from dragonball.installer import roles
from dragonball.installer.host import Host
from dragonball.installer.journal import Journal
from dragonball.installer.preflight import report
from dragonball.installer.steps import StepFailed
from dragonball.shared.paths import DATA_DIR
from dragonball.wizard import Options
from dragonball.wizard.options import add_answer_options

log = logging.getLogger(__name__)

MARKS = {"done": "[green]✓[/green]", "skipped": "[dim]=[/dim]", "failed": "[red]✗[/red]"}


def register(subparsers) -> None:
    install = subparsers.add_parser(
        "install", help="install DragonBall on this server (portal or device)",
        description="Install DragonBall on this server: answers, preflight, OS preparation, "
                    "the engine, then the role's steps. Re-running resumes an interrupted "
                    "install and changes nothing on a finished one.")
    install.add_argument("--answers", metavar="FILE", help="read the answers from a YAML file")
    install.add_argument("--yes", action="store_true",
                         help="do not ask for confirmation (needs --answers)")
    add_answer_options(install)  # what `dragonball enroll` prints (docs/answers.md)
    install.add_argument("--engine-tar", metavar="FILE", help=argparse.SUPPRESS)
    # OS preparation and the engine alone, whatever the role: the e2e test of that layer.
    install.add_argument("--base-only", action="store_true", help=argparse.SUPPRESS)
    install.set_defaults(handler=install_command)
    reset_parser = subparsers.add_parser(
        "reset", help="undo what install changed on this server",
        description="Leave the Swarm, remove DragonBall's containers, and restore what "
                    "install changed (from its journal).")
    reset_parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    reset_parser.add_argument("--data-dir", default=DATA_DIR, metavar="DIR",
                              help=f"the data directory install used (default {DATA_DIR})")
    reset_parser.set_defaults(handler=reset_command)


class UsageProblem(InstallerError, InvalidInput):
    """The command line of install or reset is wrong; nothing was changed."""


# --- install ------------------------------------------------------------------------------------

def install_options(args: argparse.Namespace) -> install_mod.InstallOptions:
    wizard = Options(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Options)})
    return install_mod.InstallOptions(
        wizard=wizard, engine_tar=args.engine_tar,
        role_steps=roles.BASE_ONLY if args.base_only else roles.STEPS)


def install_command(args: argparse.Namespace) -> int:
    if args.data_dir is not None and not os.path.isabs(args.data_dir):
        raise UsageProblem(f"--data-dir {args.data_dir}: give an absolute path")
    options = install_options(args)
    answers = install_mod.collect(options)  # the wizard's errors: their own category
    progress = ConsoleProgress()
    try:
        done = install_mod.install(answers, options, progress)
    except (install_mod.PreflightStopped, StepFailed) as e:
        progress.stop()
        show_stopped(e, progress.outcomes)
        raise  # its message and status: the top-level handler's
    finally:
        progress.stop()
    show_installed(done)
    return ExitStatus.OK


def show_stopped(e: DragonBallError, outcomes: list) -> None:
    """Why install stopped: the preflight table, or the steps run so far."""
    if isinstance(e, install_mod.PreflightStopped):
        console.print(report.table(e.result))
        console.print(report.summary_line(e.result))
    elif isinstance(e, StepFailed):
        console.print(summary_table(outcomes))


def show_installed(done: install_mod.Installed) -> None:
    if done.already:
        finished = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(done.journal.finished))
        console.print(f"DragonBall is already installed on this server (finished {finished}"
                      "): nothing to do.")
        console.print(journal_table(done.journal))
        return
    console.print(summary_table(done.outcomes))
    console.print(f"[green]DragonBall is installed[/green] ({done.answers.role}) in "
                  f"{done.seconds:.1f} s; log: /var/log/dragonball/install.log")


class ConsoleProgress(install_mod.Reporter):
    """One line per step; a spinner with the step's progress on a terminal."""

    def __init__(self) -> None:
        self.outcomes: list = []
        self._status = None
        self._title = ""

    def checked(self, result, resuming: bool, journal: Journal) -> None:
        console.print(report.summary_line(result))
        if resuming:
            console.print(f"resuming the install recorded in {journal.path}")

    def start(self, step) -> None:
        super().start(step)
        self._title = step.title
        if console.is_terminal:
            self._status = console.status(step.title)
            self._status.start()

    def update(self, text: str) -> None:
        log.debug("%s: %s", self._title, text)
        if self._status:
            self._status.update(f"{self._title}: {text}")

    def warn(self, text: str) -> None:
        super().warn(text)
        console.print(f"  [yellow]![/yellow] {text}")

    def stop(self) -> None:
        if self._status:
            self._status.stop()
            self._status = None

    def finished(self, outcome) -> None:
        super().finished(outcome)
        self.stop()
        self.outcomes.append(outcome)
        if outcome.status != "skipped":
            console.print(f"{MARKS[outcome.status]} {outcome.title} ({outcome.seconds:.1f} s)")


def summary_table(outcomes: list) -> Table:
    table = Table(title="install steps", title_justify="left")
    for column in ("", "step", "", "time"):
        table.add_column(column)
    for o in outcomes:
        seconds = "earlier run" if o.status == "skipped" else f"{o.seconds:.1f} s"
        table.add_row(MARKS[o.status], o.id, o.title, seconds)
    table.add_row("", "total", "", f"{sum(o.seconds for o in outcomes):.1f} s")
    return table


def journal_table(journal: Journal) -> Table:
    table = Table(title=f"steps recorded in {journal.path}", title_justify="left")
    for column in ("", "step", "time"):
        table.add_column(column)
    for step_id, record in journal.steps.items():
        took = f"{record.finished - record.started:.1f} s" if record.finished else "-"
        table.add_row(MARKS.get(record.state, record.state), step_id, took)
    return table


# --- reset ---------------------------------------------------------------------------------------

def reset_command(args: argparse.Namespace, stdin=None) -> int:
    stdin = stdin or sys.stdin
    if not os.path.isabs(args.data_dir):
        raise UsageProblem(f"--data-dir {args.data_dir}: give an absolute path")
    journal = reset_mod.recorded(args.data_dir)
    if journal is None:
        console.print(f"nothing to reset: no install journal in {args.data_dir} "
                      "(give --data-dir if install used another)")
        return ExitStatus.OK
    if not args.yes:
        if not stdin.isatty():
            raise UsageProblem("reset needs a confirmation and there is no terminal to ask on",
                               "run 'reset --yes' to confirm on the command line")
        console.print("reset leaves the Swarm, removes DragonBall's containers and restores "
                      f"what install changed ({sum(len(c) for _, c in journal.changes())} "
                      "recorded changes).")
        answer = console.input("Type [bold]reset[/bold] to go on: ")
        if answer.strip() != "reset":
            console.print("not confirmed: nothing was changed")
            return ExitStatus.FAILED  # as the install's summary declined (wizard.Declined)
    result = reset_mod.reset(args.data_dir, Host(), on_entry=_print_undone,
                             on_line=lambda text: console.print(f"  {text}"))
    if not result.ok:
        failed = [u for u in result.undone if u.status == "failed"]
        raise InstallerError(f"{len(failed)} change(s) could not be undone; they stay in "
                             f"{journal.path}", "fix what each says, then run reset again")
    console.print(f"[green]reset done[/green]: {len(result.undone)} recorded changes undone, "
                  "the journal removed")
    return ExitStatus.OK


def _print_undone(undone) -> None:
    mark = {"undone": "[green]✓[/green]", "failed": "[red]✗[/red]",
            "skipped": "[yellow]![/yellow]"}[undone.status]
    detail = f": {undone.detail}" if undone.detail else ""
    console.print(f"{mark} {undone.step} {undone.key}{detail}")
