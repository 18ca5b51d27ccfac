"""`dragonball install` and `reset`: the paths that refuse, stop or change nothing.

None of these tests lets a command reach a change on this machine: each stops before
the plan (a refusal, a finished journal, a failed preflight), and the ones run
in-process replace what would act (plan, log) with traps that fail the test.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys

import pytest

from dragonball import cli
from dragonball.commands import install as install_cli
from dragonball.installer import install as install_mod
from dragonball.installer import plan as plan_mod
from dragonball.installer import roles
from dragonball.installer.journal import Journal, answers_digest
from dragonball.installer.logs import SecretFilter, close_log, enrollment_variants, open_log
from dragonball.installer.preflight import Result
from dragonball.installer.preflight.check import Check
from dragonball.wizard.model import Answers
from test_install_osprep import load

PASSWORD = "correct horse battery staple"
CODE = "7K3M-Q9XD-2HBW-P4T3"


def dragonball(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dragonball.cli", *args], capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def answers(data_dir, password=PASSWORD):
    return Answers(role="portal", address="10.0.0.5", data_dir=str(data_dir),
                   admin_password=password)


def install_args(**kw) -> argparse.Namespace:
    return argparse.Namespace(**{"answers": None, "yes": True, "data_dir": None,
                                 "engine_tar": None, "base_only": False, "role": None, "address": None,
                                 "portal": None, "code": None, "code_file": None,
                                 "ca_fingerprint": None, **kw})


def a_journal(data_dir, digest="d", finished=False) -> Journal:
    journal = Journal.load(str(data_dir))
    journal.begin(digest)
    journal.start("os.limits")
    journal.note("os.limits", "file:/nowhere", {"kind": "file", "path": str(data_dir / "x"),
                                               "before": None, "mode": None,
                                               "created_dirs": []})
    journal.done("os.limits")
    if finished:
        journal.finish()
    return journal


@pytest.fixture
def traps(monkeypatch):
    """Anything past preflight fails the test: no plan is built, no log opened."""
    def trap(*a, **k):
        raise AssertionError("the command went past where it must stop")
    monkeypatch.setattr(plan_mod, "build_plan", trap)
    monkeypatch.setattr(install_mod, "open_log", trap)


# --- reset ------------------------------------------------------------------------------------------

def test_reset_without_a_terminal_and_without_yes_refuses(tmp_path):
    journal = a_journal(tmp_path)
    before = open(journal.path).read()
    result = dragonball("reset", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "no terminal" in result.stderr and "reset --yes" in result.stderr
    assert open(journal.path).read() == before


def test_reset_with_nothing_recorded_says_so(tmp_path):
    result = dragonball("reset", "--yes", "--data-dir", str(tmp_path / "none"))
    assert result.returncode == 0 and "nothing to reset" in result.stdout


def test_reset_not_confirmed_changes_nothing(tmp_path, monkeypatch, traps):
    journal = a_journal(tmp_path)
    before = open(journal.path).read()
    monkeypatch.setattr(install_cli.console, "input", lambda prompt: "no")
    tty = type("Tty", (), {"isatty": lambda self: True})()
    args = argparse.Namespace(yes=False, data_dir=str(tmp_path))
    assert install_cli.reset_command(args, stdin=tty) == 1
    assert open(journal.path).read() == before


def test_reset_needs_an_absolute_data_dir():
    result = dragonball("reset", "--yes", "--data-dir", "relative")
    assert result.returncode == 2 and "absolute path" in result.stderr


# --- install: refusals -----------------------------------------------------------------------------

def test_install_needs_an_absolute_data_dir():
    result = dragonball("install", "--data-dir", "relative", "--yes")
    assert result.returncode == 2 and "absolute path" in result.stderr


def test_install_yes_without_answers_is_a_usage_error(tmp_path):
    """Nothing to read the answers from (the wizard says so): exit 2."""
    result = dragonball("install", "--yes", "--data-dir", str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_command_enroll_prints_is_understood(tmp_path):
    """`install --role device --portal P --code C --ca-fingerprint F`: parsed, handed to the
    wizard (here it stops at the portal it cannot reach: nothing is changed)."""
    result = dragonball("install", "--role", "device", "--portal", "127.0.0.1:1", "--code",
                        "7K3M-Q9XD-2HBW-P4T3", "--ca-fingerprint", "SHA256:" + "ab" * 32,
                        "--yes", "--data-dir", str(tmp_path / "data"))
    assert "unrecognized arguments" not in result.stderr
    assert result.returncode in (1, 2), result.stdout + result.stderr
    assert not (tmp_path / "data").exists()


def test_install_with_an_invalid_answers_file_changes_nothing(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text("role: manager\n")
    path.chmod(0o600)
    result = dragonball("install", "--answers", str(path), "--yes", "--data-dir",
                        str(tmp_path / "data"))
    assert result.returncode == 2, result.stderr
    assert "role" in result.stderr + result.stdout
    assert not (tmp_path / "data").exists()


def test_a_finished_install_run_again_says_so_and_changes_nothing(tmp_path, monkeypatch, traps,
                                                                  capsys):
    given = answers(tmp_path)
    journal = a_journal(tmp_path, answers_digest(given.as_dict()), finished=True)
    before = open(journal.path).read()
    monkeypatch.setattr(install_mod, "collect", lambda args: given)
    monkeypatch.setattr(install_mod, "preflight", lambda a: pytest.fail("preflight ran"))
    assert install_cli.install_command(install_args()) == 0
    assert "already installed" in capsys.readouterr().out
    assert open(journal.path).read() == before


def test_a_finished_install_with_other_answers_is_refused(tmp_path, monkeypatch, traps, capsys):
    a_journal(tmp_path, answers_digest(answers(tmp_path).as_dict()), finished=True)
    monkeypatch.setattr(install_mod, "collect",
                        lambda args: answers(tmp_path, password="another long passphrase"))
    monkeypatch.setattr(install_mod, "preflight", lambda a: pytest.fail("preflight ran"))
    assert cli.run(install_cli.install_command, install_args()) == 4  # CONFLICT
    assert "run 'reset' first" in capsys.readouterr().err


def test_a_failed_preflight_stops_before_any_change(tmp_path, monkeypatch, traps, capsys):
    _, facts = load("bare-lab-server")
    failing = Result(facts, None, [Check("root", "pass", "root"),
                                   Check("port.2377/tcp", "fail", "in use", "stop it")])
    failing = Result(facts, type("R", (), {"role": "portal", "release": None})(),
                     failing.checks)
    monkeypatch.setattr(install_mod, "collect", lambda args: answers(tmp_path / "data"))
    monkeypatch.setattr(install_mod, "preflight", lambda a: failing)
    assert cli.run(install_cli.install_command, install_args()) == 1  # FAILED
    out = capsys.readouterr()
    assert "port.2377/tcp" in out.out and "stopped before any change" in out.err
    assert not (tmp_path / "data").exists()


def test_data_dir_option_and_answers_must_agree(tmp_path):
    given = answers(tmp_path / "a")
    with pytest.raises(install_mod.AnswersDisagree, match="differ"):
        install_mod.with_data_dir(given, str(tmp_path / "b"))
    default = Answers(role="portal", address="10.0.0.5", admin_password=PASSWORD)
    assert install_mod.with_data_dir(default, "/srv/db").data_dir == "/srv/db"


def test_the_command_line_becomes_the_use_cases_options():
    from dragonball.cli import _parser
    args = _parser().parse_args(["install", "--role", "device", "--portal", "10.0.0.1",
                                 "--code", CODE, "--data-dir", "/srv/db", "--yes"])
    options = install_cli.install_options(args)
    assert (options.wizard.role, options.wizard.portal, options.wizard.code,
            options.wizard.data_dir, options.wizard.yes) == ("device", "10.0.0.1", CODE,
                                                             "/srv/db", True)
    assert options.role_steps is roles.STEPS and options.engine_tar is None
    base = install_cli.install_options(_parser().parse_args(["install", "--base-only"]))
    assert base.role_steps is roles.BASE_ONLY


def test_resuming_an_install_is_not_stopped_by_its_own_ports():
    checks = [Check("port.5000/tcp", "fail", "in use"), Check("root", "fail", "uid 1000")]
    assert [c.name for c in install_mod.blocking_checks(checks, resuming=False)] == [
        "port.5000/tcp", "root"]
    assert [c.name for c in install_mod.blocking_checks(checks, resuming=True)] == ["root"]


# --- the answers' secrets -------------------------------------------------------------------------

def test_the_answers_mask_their_secrets():
    given = Answers(role="device", address="10.0.0.12", portal="10.0.0.1:8443",
                    enrollment_code=CODE)
    assert CODE not in json.dumps(given.masked()) and CODE not in repr(answers("/x"))
    assert PASSWORD not in repr(answers("/x"))


# --- the log and its secrets ------------------------------------------------------------------------

def record(msg, *args, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("t", logging.INFO, __file__, 1, msg, args, exc_info)


def test_the_filter_masks_messages_arguments_and_tracebacks():
    secrets = SecretFilter([PASSWORD])
    secrets.add(CODE, CODE.replace("-", ""))
    r = record("password %s and code %s", PASSWORD, CODE.lower().replace("-", ""))
    secrets.filter(r)
    assert r.getMessage() == "password ******** and code ********"
    try:
        raise ValueError(f"bad {PASSWORD}")
    except ValueError:
        r = record("failed", exc_info=sys.exc_info())
    secrets.filter(r)
    text = logging.Formatter().format(r)
    assert PASSWORD not in text and "ValueError: bad ********" in text


def test_short_and_empty_secrets_are_not_masked():
    secrets = SecretFilter(["", None, "ab"])
    r = record("a b ab abc")
    secrets.filter(r)
    assert r.getMessage() == "a b ab abc"


def test_a_secret_added_later_is_masked_from_then_on():
    secrets = SecretFilter([PASSWORD])
    secrets.add("registry-pass-123")
    r = record("login with registry-pass-123")
    secrets.filter(r)
    assert r.getMessage() == "login with ********"


def test_the_install_log_holds_no_secret_and_is_private(tmp_path):
    secrets = SecretFilter([PASSWORD])
    secrets.add(*enrollment_variants(CODE))
    root = logging.getLogger()
    level = root.level
    handler = open_log("install.log", secrets, log_dir=str(tmp_path))
    try:
        logging.getLogger("dragonball.test").info("answers %s code %s", {"pw": PASSWORD},
                                                  CODE.replace("-", " "))
        logging.getLogger("dragonball.test").debug("debug line with %s", PASSWORD)
    finally:
        close_log(handler)
        root.setLevel(level)
        for other in root.handlers:
            other.removeFilter(secrets)
    text = (tmp_path / "install.log").read_text()
    assert "answers {'pw': '********'} code ********" in text and "debug line" in text
    assert PASSWORD not in text and CODE not in text
    assert (tmp_path / "install.log").stat().st_mode & 0o777 == 0o600


def test_the_install_command_masks_the_answers_secrets():
    given = Answers(role="device", address="10.0.0.12", portal="10.0.0.1",
                    enrollment_code=CODE)
    secrets = install_mod.secret_filter(given)
    assert secrets.mask(f"code {CODE} / {CODE.replace('-', '')}") == "code ******** / ********"
