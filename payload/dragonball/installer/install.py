"""The install use case, without argparse: answers -> journal -> preflight -> the role's steps.

    collect   the answers, from the wizard (prompts, --answers FILE, or the answers on the
              command line `dragonball enroll` prints); a data directory given apart must
              agree with them
    install   a finished install with the same answers: nothing runs (`Installed.already`);
              with other answers: `OtherAnswers` (reset first). Then preflight for the role
              and data directory: a failed check stops before any change
              (`PreflightStopped`; resuming, a port in use does not stop it). Then the
              role's steps (installer/roles.py) through the journal, logged in install.log:
              each step is recorded running, then done with what it changed; the first
              failure stops with `StepFailed`, and running again resumes there.

`dragonball install` (dragonball.commands.install) fills `InstallOptions` from its command
line and prints what its `Reporter` is told; an upgrade can fill it itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Mapping

from dragonball.errors import Conflict, Failed, InstallerError, InvalidInput
from dragonball.installer import plan, roles
from dragonball.installer.enrollment_api import JoinError, PortalApi
from dragonball.installer.host import Host
from dragonball.installer.join import wizard_checks
from dragonball.installer.journal import Journal, answers_digest
from dragonball.installer.logs import SecretFilter, close_log, enrollment_variants, open_log
from dragonball.installer.preflight import Result, default_paths
from dragonball.installer.preflight import run as run_preflight
from dragonball.installer.preflight.check import FAIL
from dragonball.installer.preflight.requirements import load_manifest
from dragonball.installer.preflight.system import LiveSystem
from dragonball.installer.steps import StepFailed, StepOutcome, run_steps
from dragonball.release.sections import BinError, bin_sections, open_section
from dragonball.shared.paths import DATA_DIR
from dragonball.wizard import Answers, Options, collect_answers
from dragonball.wizard.host import live_facts

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class InstallOptions:
    """What an install is asked to do."""

    #: where the answers come from: --answers FILE, --yes, the answers on the command line
    #: (its data_dir, when given, must agree with the answers')
    wizard: Options = Options()
    #: the engine's packages from this tar instead of the .bin's engine section (tests)
    engine_tar: str | None = None
    #: role -> its steps: roles.STEPS, or roles.BASE_ONLY (OS preparation and the engine)
    role_steps: Mapping[str, plan.RoleSteps] = dataclasses.field(
        default_factory=lambda: roles.STEPS)


@dataclasses.dataclass
class Installed:
    """What an install did: each step's outcome, in order, and the seconds they took; or,
    for a finished install run again with the same answers, nothing (`already`)."""

    answers: Answers
    journal: Journal
    outcomes: list[StepOutcome] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    already: bool = False


class AnswersDisagree(InstallerError, InvalidInput):
    """A data directory given apart from the answers names another one; nothing changed."""


class OtherAnswers(InstallerError, Conflict):
    """DragonBall is installed here with other answers; nothing changed (reset first)."""


class PreflightStopped(InstallerError, Failed):
    """A preflight check failed: the install stopped before any change."""

    def __init__(self, result: Result, blocking: list) -> None:
        super().__init__("install stopped before any change: "
                         + ", ".join(c.name for c in blocking) + " failed")
        self.result, self.blocking = result, blocking


class Reporter(plan.Progress):
    """What install tells the person as it goes; the command shows it, this one logs it."""

    def checked(self, result: Result, resuming: bool, journal: Journal) -> None:
        """Preflight passed; the steps come next (resumed from `journal` when `resuming`)."""

    def start(self, step) -> None:
        log.info("step %s: %s", step.id, step.title)

    def finished(self, outcome: StepOutcome) -> None:
        if outcome.status == "skipped":
            log.info("step %s: done in an earlier run", outcome.id)
        else:
            log.info("step %s: %s in %.1f s", outcome.id, outcome.status, outcome.seconds)


# --- answers -------------------------------------------------------------------------------

def collect(options: InstallOptions) -> Answers:
    """Valid, confirmed answers (the wizard's errors carry their category)."""
    answers = collect_answers(options.wizard, live_facts(), checks=wizard_checks())
    return with_data_dir(answers, options.wizard.data_dir)


def with_data_dir(answers: Answers, data_dir: str | None) -> Answers:
    """The answers with a data directory given apart: the same, or theirs was the default."""
    if data_dir is None or answers.data_dir == data_dir:
        return answers
    if answers.data_dir != DATA_DIR:
        raise AnswersDisagree(f"--data-dir {data_dir} and the answers' data_dir "
                              f"{answers.data_dir} differ: give one of them")
    return dataclasses.replace(answers, data_dir=data_dir)


def secret_filter(answers: Answers) -> SecretFilter:
    """The log's mask of the answers' secrets: the admin password, the enrollment code."""
    secrets = SecretFilter()
    secrets.add(getattr(answers, "admin_password", None))
    secrets.add(*enrollment_variants(getattr(answers, "enrollment_code", None)))
    return secrets


# --- install ------------------------------------------------------------------------------

def install(answers: Answers, options: InstallOptions, reporter: Reporter) -> Installed:
    """Install with `answers`: see the module's docstring for what stops it, and where."""
    secrets = secret_filter(answers)
    for handler in logging.getLogger().handlers:
        handler.addFilter(secrets)
    journal = Journal.load(answers.data_dir)
    digest = answers_digest(answers.as_dict())
    if journal.finished:
        if journal.digest != digest:
            raise OtherAnswers("DragonBall is installed on this server with other answers",
                               "run 'reset' first to undo that install, or run install with "
                               "the answers it was installed with")
        return Installed(answers, journal, already=True)
    resuming = bool(journal.steps)
    result = preflight(answers)
    blocking = blocking_checks(result.checks, resuming)
    if blocking:
        raise PreflightStopped(result, blocking)
    handler = open_log("install.log", secrets)
    try:
        return run_install(answers, options, reporter, journal, digest, result, secrets)
    finally:
        close_log(handler)


def preflight(answers: Answers) -> Result:
    return run_preflight(LiveSystem(), load_manifest(os.environ), answers.role,
                         default_paths(answers.data_dir), portal=answers.portal,
                         cluster=cluster_facts(answers))


def cluster_facts(answers: Answers) -> dict | None:
    """What preflight's cluster rules need from the portal (a device only): its clock."""
    if answers.role != "device" or not answers.portal:
        return None
    for portal in answers.portals:  # the first that answers
        try:
            with PortalApi(portal) as api:
                portal_time = api.clock()
        except JoinError:
            continue  # unreachable: the portal check says so
        return {"portal_time": portal_time} if portal_time is not None else None
    return None


def blocking_checks(checks: list, resuming: bool) -> list:
    """Failed checks that stop the install. Resuming, a port in use may be held by what
    the interrupted install already started, so ports do not stop it then."""
    return [c for c in checks if c.status == FAIL
            and not (resuming and c.name.startswith("port."))]


def run_install(answers: Answers, options: InstallOptions, reporter: Reporter,
                journal: Journal, digest: str, result: Result, secrets: SecretFilter
                ) -> Installed:
    """The role's steps through the journal, once preflight passed."""
    resuming = bool(journal.steps)
    log.info("install %s with answers %s", "resumed" if resuming else "started",
             answers.masked())
    for check in result.checks:
        log.info("preflight %s %s: %s", check.status, check.name, check.detail)
    reporter.checked(result, resuming, journal)
    journal.begin(digest)
    ctx = plan.InstallContext(answers=answers, facts=result.facts, journal=journal,
                              host=Host(), manifest=None, progress=reporter,
                              secrets=secrets, open_engine=engine_opener(options.engine_tar))
    steps = plan.build_plan(ctx, options.role_steps)
    started = time.monotonic()
    try:
        outcomes = run_steps(steps, journal, on_event=reporter.finished,
                             on_start=reporter.start)
    except StepFailed as e:
        log.error("install stopped: %s", e)
        raise
    seconds = time.monotonic() - started
    log.info("install finished in %.1f s", seconds)
    return Installed(answers, journal, outcomes, seconds)


def engine_opener(engine_tar: str | None):
    """() -> a context manager of the engine.tar: `engine_tar`, or the .bin's section."""
    if engine_tar:
        return lambda: plan.open_file(engine_tar)
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
