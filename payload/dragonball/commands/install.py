"""`dragonball install` and `dragonball reset`.

    dragonball install [--answers FILE] [--yes] [--data-dir DIR]
                       [--role R] [--address IP] [--portal P] [--code C] [--ca-fingerprint F]
    dragonball reset [--yes] [--data-dir DIR]

install: answers (the wizard, or the file) -> preflight (a failed check stops here,
before any change) -> the plan's steps through the journal in the data directory,
with progress, and a summary with times. A finished install run again says so and
changes nothing; an interrupted one resumes. reset asks first (--yes skips it; with
no terminal and no --yes it refuses) and undoes what the journal lists.
Exit status: 0 done, 1 failed (preflight or a step), 2 wrong usage or answers.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import sys
import time

from rich.table import Table

from dragonball.console import console, err_console
from dragonball.shared.paths import DATA_DIR
from dragonball.installer import plan as plan_mod
from dragonball.installer.host import Host
from dragonball.installer.journal import Journal, answers_digest
from dragonball.installer.logs import SecretFilter, close_log, enrollment_variants, open_log
from dragonball.installer.preflight import default_paths, report
from dragonball.installer.preflight import run as run_preflight
from dragonball.installer.preflight.check import FAIL
from dragonball.installer.preflight.requirements import load_manifest
from dragonball.installer.preflight.system import LiveSystem
from dragonball.installer.steps import StepFailed, run_steps
from dragonball.release.sections import BinError, bin_sections, open_section

log = logging.getLogger(__name__)

OK, FAILED, USAGE = 0, 1, 2
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
    install.add_argument("--data-dir", metavar="DIR",
                         help=f"where DragonBall keeps its data (default {DATA_DIR})")
    # Answers on the command line (docs/answers.md): what `dragonball enroll` prints.
    install.add_argument("--role", choices=("portal", "device"), help="this server's role")
    install.add_argument("--address", metavar="IP", help="this server's address")
    install.add_argument("--portal", metavar="HOST[:PORT]", help="the portal to join")
    install.add_argument("--code", metavar="CODE", help="the enrollment code (device)")
    install.add_argument("--ca-fingerprint", metavar="SHA256:HEX",
                         help="the portal CA's fingerprint (device)")
    install.add_argument("--engine-tar", metavar="FILE", help=argparse.SUPPRESS)
    install.set_defaults(handler=install_command)
    reset_parser = subparsers.add_parser(
        "reset", help="undo what install changed on this server",
        description="Leave the Swarm, remove DragonBall's containers, and restore what "
                    "install changed (from its journal).")
    reset_parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    reset_parser.add_argument("--data-dir", default=DATA_DIR, metavar="DIR",
                              help=f"the data directory install used (default {DATA_DIR})")
    reset_parser.set_defaults(handler=reset_command)


# --- answers -------------------------------------------------------------------------------------

def collect(args):
    """Answers from the wizard (prompts or --answers), or the minimal file reader."""
    try:
        from dragonball.wizard import collect_answers
        from dragonball.wizard.host import live_facts
    except ImportError:  # a build without the wizard: --answers FILE --yes only
        from dragonball.installer import answers_fallback
        return answers_fallback.load(args)
    from dragonball.installer.join import wizard_checks
    return collect_answers(args, live_facts(), checks=wizard_checks())


def with_data_dir(answers, data_dir: str | None):
    if data_dir is None or answers.data_dir == data_dir:
        return answers
    if answers.data_dir != DATA_DIR:
        raise UsageProblem(f"--data-dir {data_dir} and the answers' data_dir "
                           f"{answers.data_dir} differ: give one of them")
    return dataclasses.replace(answers, data_dir=data_dir)


class UsageProblem(Exception):
    pass


def secret_filter(answers) -> SecretFilter:
    secrets = SecretFilter()
    secrets.add(getattr(answers, "admin_password", None))
    secrets.add(*enrollment_variants(getattr(answers, "enrollment_code", None)))
    return secrets


# --- install ------------------------------------------------------------------------------------

def engine_opener(args):
    """() -> a context manager of the engine.tar: the .bin's section, or --engine-tar."""
    if args.engine_tar:
        return lambda: plan_mod.open_file(args.engine_tar)
    try:
        path, sections = bin_sections(os.environ)
    except BinError:
        return None
    if "engine" not in sections:
        return None

    @contextlib.contextmanager
    def opener():
        with open(path, "rb") as f:
            yield open_section(f, sections["engine"])
    return opener


def install_command(args: argparse.Namespace) -> int:
    if args.data_dir is not None and not os.path.isabs(args.data_dir):
        err_console.print(f"[red]error:[/red] --data-dir {args.data_dir}: give an absolute path")
        return USAGE
    try:
        answers = with_data_dir(collect(args), args.data_dir)
    except UsageProblem as e:
        err_console.print(f"[red]error:[/red] {e}")
        return USAGE
    except Exception as e:  # the wizard's errors carry their exit status
        status = getattr(e, "exit_status", None)
        if status is None:
            raise
        err_console.print(f"[red]error:[/red] {e}")
        return status
    secrets = secret_filter(answers)
    for handler in logging.getLogger().handlers:
        handler.addFilter(secrets)
    journal = Journal.load(answers.data_dir)
    digest = answers_digest(answers.as_dict())
    if journal.finished:
        if journal.digest == digest:
            console.print(f"DragonBall is already installed on this server (finished "
                          f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(journal.finished))}"
                          "): nothing to do.")
            console.print(journal_table(journal))
            return OK
        err_console.print("[red]error:[/red] DragonBall is installed on this server with other "
                          "answers\n  hint: run 'reset' first to undo that install, or run "
                          "install with the answers it was installed with")
        return FAILED
    resuming = bool(journal.steps)
    result = preflight(answers)
    blocking = blocking_checks(result.checks, resuming)
    if blocking:
        console.print(report.table(result))
        console.print(report.summary_line(result))
        err_console.print("[red]install stopped before any change:[/red] "
                          + ", ".join(c.name for c in blocking) + " failed")
        return FAILED
    handler = open_log("install.log", secrets)
    try:
        return run_install(args, answers, journal, digest, result, secrets, resuming)
    finally:
        close_log(handler)


def preflight(answers):
    return run_preflight(LiveSystem(), load_manifest(os.environ), answers.role,
                         default_paths(answers.data_dir), portal=answers.portal,
                         cluster=cluster_facts(answers))


def cluster_facts(answers) -> dict | None:
    """What preflight's cluster rules need from the portal (a device only): its clock."""
    if answers.role != "device" or not answers.portal:
        return None
    from dragonball.installer.enrollment_api import JoinError, PortalApi
    try:
        with PortalApi(answers.portal) as api:
            portal_time = api.clock()
    except JoinError:
        return None  # unreachable: the portal check says so
    return {"portal_time": portal_time} if portal_time is not None else None


def blocking_checks(checks: list, resuming: bool) -> list:
    """Failed checks that stop the install. Resuming, a port in use may be held by what
    the interrupted install already started, so ports do not stop it then."""
    return [c for c in checks if c.status == FAIL
            and not (resuming and c.name.startswith("port."))]


def run_install(args, answers, journal, digest, result, secrets, resuming) -> int:
    log.info("install %s with answers %s", "resumed" if resuming else "started",
             answers.masked())
    for check in result.checks:
        log.info("preflight %s %s: %s", check.status, check.name, check.detail)
    console.print(report.summary_line(result))
    if resuming:
        console.print(f"resuming the install recorded in {journal.path}")
    journal.begin(digest)
    progress = ConsoleProgress()
    ctx = plan_mod.InstallContext(answers=answers, facts=result.facts, journal=journal,
                                  host=Host(), manifest=None, progress=progress,
                                  secrets=secrets, open_engine=engine_opener(args))
    plan_mod.load_plugins()
    steps = plan_mod.build_plan(ctx)
    started = time.monotonic()
    try:
        outcomes = run_steps(steps, journal, on_event=progress.finished, on_start=progress.start)
    except StepFailed as e:
        progress.stop()
        console.print(summary_table(progress.outcomes))
        err_console.print(f"[red]error:[/red] {e}")
        log.error("install stopped: %s", e)
        return FAILED
    finally:
        progress.stop()
    console.print(summary_table(outcomes))
    console.print(f"[green]DragonBall is installed[/green] ({answers.role}) in "
                  f"{time.monotonic() - started:.1f} s; log: /var/log/dragonball/install.log")
    log.info("install finished in %.1f s", time.monotonic() - started)
    return OK


class ConsoleProgress(plan_mod.Progress):
    """One line per step; a spinner with the step's progress on a terminal."""

    def __init__(self) -> None:
        self.outcomes: list = []
        self._status = None
        self._title = ""

    def start(self, step) -> None:
        self._title = step.title
        log.info("step %s: %s", step.id, step.title)
        if console.is_terminal:
            self._status = console.status(step.title)
            self._status.start()

    def update(self, text: str) -> None:
        log.debug("%s: %s", self._title, text)
        if self._status:
            self._status.update(f"{self._title}: {text}")

    def warn(self, text: str) -> None:
        log.warning("%s", text)
        console.print(f"  [yellow]![/yellow] {text}")

    def stop(self) -> None:
        if self._status:
            self._status.stop()
            self._status = None

    def finished(self, outcome) -> None:
        self.stop()
        self.outcomes.append(outcome)
        if outcome.status == "skipped":
            log.info("step %s: done in an earlier run", outcome.id)
            return
        log.info("step %s: %s in %.1f s", outcome.id, outcome.status, outcome.seconds)
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
    from dragonball.installer import reset as reset_mod
    stdin = stdin or sys.stdin
    if not os.path.isabs(args.data_dir):
        err_console.print(f"[red]error:[/red] --data-dir {args.data_dir}: give an absolute path")
        return USAGE
    journal = Journal.load(args.data_dir)
    if not os.path.exists(journal.path):
        console.print(f"nothing to reset: no install journal in {args.data_dir} "
                      "(give --data-dir if install used another)")
        return OK
    if not args.yes:
        if not stdin.isatty():
            err_console.print("[red]error:[/red] reset needs a confirmation and there is no "
                              "terminal to ask on\n  hint: run 'reset --yes' to confirm on the "
                              "command line")
            return USAGE
        console.print("reset leaves the Swarm, removes DragonBall's containers and restores "
                      f"what install changed ({sum(len(c) for _, c in journal.changes())} "
                      "recorded changes).")
        answer = console.input("Type [bold]reset[/bold] to go on: ")
        if answer.strip() != "reset":
            console.print("not confirmed: nothing was changed")
            return FAILED
    handler = open_log("reset.log", SecretFilter())
    try:
        result = reset_mod.reset(args.data_dir, Host(), on_entry=_print_undone,
                                 on_line=lambda text: console.print(f"  {text}"))
    finally:
        close_log(handler)
    if not result.ok:
        failed = [u for u in result.undone if u.status == "failed"]
        err_console.print(f"[red]error:[/red] {len(failed)} change(s) could not be undone; "
                          f"they stay in {journal.path}\n  hint: fix what each says, then run "
                          "reset again")
        return FAILED
    console.print(f"[green]reset done[/green]: {len(result.undone)} recorded changes undone, "
                  "the journal removed")
    return OK


def _print_undone(undone) -> None:
    mark = {"undone": "[green]✓[/green]", "failed": "[red]✗[/red]",
            "skipped": "[yellow]![/yellow]"}[undone.status]
    detail = f": {undone.detail}" if undone.detail else ""
    console.print(f"{mark} {undone.step} {undone.key}{detail}")
