"""The install use case without argparse (installer/install.py): the role's steps, given
as an option, run through the journal; run again, a finished install changes nothing; a
failed step stops it, and the next run resumes there. Preflight and the log are played."""

from __future__ import annotations

import logging

import pytest

from dragonball.errors import InstallerError
from dragonball.installer import install as install_mod
from dragonball.installer.logs import open_log
from dragonball.installer.preflight import Result
from dragonball.installer.preflight.check import Check
from dragonball.installer.steps import Step, StepFailed
from dragonball.wizard.model import Answers
from test_install_osprep import load


class Told(install_mod.Reporter):
    def __init__(self) -> None:
        self.events: list = []

    def checked(self, result, resuming, journal) -> None:
        self.events.append(("checked", resuming))

    def finished(self, outcome) -> None:
        self.events.append((outcome.id, outcome.status))


@pytest.fixture
def played(monkeypatch, tmp_path):
    """Preflight passes on a captured server; the log goes to tmp_path; filters go after."""
    _, facts = load("bare-lab-server")
    monkeypatch.setattr(install_mod, "preflight",
                        lambda answers: Result(facts, None, [Check("root", "pass", "root")]))
    monkeypatch.setattr(install_mod, "open_log", lambda name, secrets: open_log(
        name, secrets, log_dir=str(tmp_path / "log")))
    root = logging.getLogger()
    filters, level = {h: list(h.filters) for h in root.handlers}, root.level
    yield tmp_path
    for handler, kept in filters.items():
        handler.filters[:] = kept  # the install added its secrets' mask to each
    root.setLevel(level)


def answers(tmp_path) -> Answers:
    return Answers(role="portal", address="10.0.0.1", data_dir=str(tmp_path / "data"),
                   admin_password="a long enough passphrase")


def test_the_steps_given_run_through_the_journal_and_a_re_run_changes_nothing(played):
    ran = []
    steps = {"portal": lambda ctx: [Step("a", "first", lambda: ran.append("a") or {}),
                                    Step("b", "second", lambda: ran.append("b") or {})]}
    options = install_mod.InstallOptions(role_steps=steps)
    told = Told()
    done = install_mod.install(answers(played), options, told)
    assert ran == ["a", "b"] and not done.already and done.journal.finished
    assert [(o.id, o.status) for o in done.outcomes] == [("a", "done"), ("b", "done")]
    assert told.events == [("checked", False), ("a", "done"), ("b", "done")]
    again = install_mod.install(answers(played), options, Told())
    assert again.already and again.outcomes == [] and ran == ["a", "b"]
    assert "step a: first" in (played / "log/install.log").read_text()


def test_a_failed_step_stops_the_install_and_the_next_run_resumes_there(played):
    ran = []

    def fails():
        ran.append("b")
        raise InstallerError("no luck")
    first = {"portal": lambda ctx: [Step("a", "first", lambda: ran.append("a") or {}),
                                    Step("b", "second", fails)]}
    with pytest.raises(StepFailed, match="no luck"):
        install_mod.install(answers(played), install_mod.InstallOptions(role_steps=first),
                            Told())
    fixed = {"portal": lambda ctx: [Step("a", "first", lambda: ran.append("a") or {}),
                                    Step("b", "second", lambda: ran.append("b2") or {})]}
    told = Told()
    done = install_mod.install(answers(played), install_mod.InstallOptions(role_steps=fixed),
                               told)
    assert ran == ["a", "b", "b2"]
    assert told.events == [("checked", True), ("a", "skipped"), ("b", "done")]
    assert done.journal.finished


def test_a_finished_install_with_other_answers_is_refused(played):
    steps = {"portal": lambda ctx: []}
    install_mod.install(answers(played), install_mod.InstallOptions(role_steps=steps), Told())
    other = Answers(role="portal", address="10.0.0.2", data_dir=str(played / "data"),
                    admin_password="a long enough passphrase")
    with pytest.raises(install_mod.OtherAnswers, match="other answers"):
        install_mod.install(other, install_mod.InstallOptions(role_steps=steps), Told())


def test_the_command_shows_the_steps_run_before_a_failure_and_exits_1(played, monkeypatch,
                                                                     capsys):
    from dragonball import cli
    from dragonball.commands import install as install_cli
    from test_install_cli import install_args

    def fails():
        raise InstallerError("no luck", "try again")
    monkeypatch.setattr(install_cli.roles, "STEPS", {"portal": lambda ctx: [
        Step("a", "first", dict), Step("b", "second", fails)]})
    monkeypatch.setattr(install_mod, "collect", lambda options: answers(played))
    assert cli.run(install_cli.install_command, install_args()) == 1  # FAILED: StepFailed
    out = capsys.readouterr()
    assert "first" in out.out and "install steps" in out.out  # the summary table
    assert "step 'second' failed: no luck" in out.err and "run the same command" in out.err
