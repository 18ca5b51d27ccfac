"""collect_answers without a terminal: never reads stdin, refuses with the command to run.
Also the real process: stdin from /dev/null, a pipe, or closed never hangs or crashes."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from dragonball.wizard import (AnswersInvalid, Facts, Interface, Io, NoTerminal, Options,
                               UsageError, collect_answers)
from dragonball.wizard.terminal import _is_tty

FACTS = Facts("node-1", (Interface("eth0", "10.0.0.5"),))
PORTAL = "role: portal\naddress: 10.0.0.5\nadmin_password: 'Correct horse battery'\n"


class Untouchable(io.StringIO):
    """A stdin that fails the test when read: the wizard must not read it."""

    def read(self, *args):
        pytest.fail("stdin was read")

    readline = read


def no_terminal(environ=None) -> tuple[Io, io.StringIO]:
    out = io.StringIO()
    return Io(stdin=Untouchable(), stdout=out, environ=environ or {}), out


@pytest.fixture
def portal_file(tmp_path):
    path = tmp_path / "portal.yaml"
    path.write_text(PORTAL)
    path.chmod(0o600)
    return str(path)


def test_no_terminal_and_no_answers_file_says_what_to_run():
    wizard_io, _ = no_terminal()
    with pytest.raises(NoTerminal) as e:
        collect_answers(Options(), FACTS, wizard_io)
    assert e.value.exit_status == 2
    assert "standard input is not a terminal" in e.value.message
    assert "dragonball install --answers FILE --yes" in e.value.hint


def test_unattended_with_answers_and_yes(portal_file):
    wizard_io, out = no_terminal()
    answers = collect_answers(Options(answers=portal_file, yes=True), FACTS, wizard_io)
    assert answers.role == "portal" and answers.address == "10.0.0.5"
    assert "Your answers" in out.getvalue() and "********" in out.getvalue()


def test_an_argparse_namespace_does_as_options(portal_file):
    import argparse
    options = argparse.Namespace(answers=portal_file, yes=True, debug=False)
    assert collect_answers(options, FACTS, no_terminal()[0]).role == "portal"


def test_answers_without_yes_and_no_terminal_gives_the_exact_command(portal_file):
    wizard_io, out = no_terminal({"DRAGONBALL_BIN": "/root/DragonBall-0.1.0.bin"})
    with pytest.raises(NoTerminal) as e:
        collect_answers(Options(answers=portal_file), FACTS, wizard_io)
    assert f"the answers in {portal_file} are valid" in e.value.message
    assert e.value.hint.endswith(
        f"run: /root/DragonBall-0.1.0.bin install --answers {portal_file} --yes")
    assert out.getvalue() == ""


def test_the_command_names_the_file_absolutely(portal_file, monkeypatch):
    monkeypatch.chdir(os.path.dirname(portal_file))
    with pytest.raises(NoTerminal) as e:
        collect_answers(Options(answers="portal.yaml"), FACTS, no_terminal()[0])
    assert f"--answers {portal_file} --yes" in e.value.hint


def test_yes_without_answers_is_a_usage_error():
    with pytest.raises(UsageError) as e:
        collect_answers(Options(yes=True), FACTS, no_terminal()[0])
    assert e.value.exit_status == 2 and "--answers FILE --yes" in e.value.hint


def test_an_invalid_file_is_refused_whole_even_with_yes(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("role: portal\naddres: 10.0.0.5\n")
    wizard_io, out = no_terminal()
    with pytest.raises(AnswersInvalid) as e:
        collect_answers(Options(answers=str(path), yes=True), FACTS, wizard_io)
    assert [(p.line, p.field) for p in e.value.problems] == [(1, "admin_password"),
                                                              (2, "addres")]
    assert out.getvalue() == ""


def test_remote_checks_apply_to_the_file(tmp_path):
    from dragonball.shared import codes
    from dragonball.wizard import Checks
    path = tmp_path / "device.yaml"
    path.write_text(f"role: device\nportal: 10.0.0.10\nenrollment_code: {codes.EXAMPLE}\n"
                    f"ca_fingerprint: SHA256:{'0' * 64}\n")
    checks = Checks(check_portal=lambda a: f"{a} does not answer: is the portal installed?")
    with pytest.raises(AnswersInvalid) as e:
        collect_answers(Options(answers=str(path), yes=True), FACTS, no_terminal()[0], checks)
    assert "10.0.0.10:8443 does not answer" in str(e.value)


def test_what_counts_as_a_terminal(tmp_path):
    closed = io.StringIO()
    closed.close()
    with open(os.devnull) as null:
        assert not _is_tty(null)
    assert not _is_tty(None) and not _is_tty(closed) and not _is_tty(io.StringIO())
    assert Io(stdin=None).not_terminal_reason() == "standard input is closed"
    assert Io(stdin=io.StringIO(), stdout=io.StringIO()).is_terminal() is False


# -- the real process -----------------------------------------------------------------------

def wizard(*args, stdin=subprocess.DEVNULL, **kwargs):
    env = dict(os.environ, PROMPT_TOOLKIT_NO_CPR="1")
    return subprocess.run([sys.executable, "-m", "dragonball.wizard", *args], stdin=stdin,
                          capture_output=True, text=True, timeout=60, env=env, **kwargs)


def test_stdin_from_dev_null_refuses_at_once():
    done = wizard()
    assert done.returncode == 2, done.stderr
    assert "standard input is not a terminal" in done.stderr
    assert "--answers FILE --yes" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_pipe_is_not_taken_as_keystrokes():
    done = wizard(input="\r\r\r\ry\r", stdin=None)
    assert done.returncode == 2 and "standard input is not a terminal" in done.stderr


def test_closed_stdin_refuses_at_once():
    done = subprocess.run(f"exec {sys.executable} -m dragonball.wizard <&-", shell=True,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "standard input is closed" in done.stderr and "Traceback" not in done.stderr


def test_unattended_process_prints_masked_yaml(tmp_path):
    from dragonball.wizard.host import live_facts
    interfaces = live_facts().interfaces
    if not interfaces:
        pytest.skip("this machine has no address other servers could reach")
    path = tmp_path / "portal.yaml"
    path.write_text(PORTAL.replace("10.0.0.5", interfaces[0].address))
    path.chmod(0o600)
    done = wizard("--answers", str(path), "--yes")
    assert done.returncode == 0, done.stderr
    assert "Correct horse" not in done.stdout + done.stderr
    assert f"address: {interfaces[0].address}\n" in done.stdout
    assert "admin_password: '********'\n" in done.stdout


# -- answers on the command line (what 'dragonball enroll' prints) --------------------------

FINGERPRINT = "SHA256:" + "ab" * 32


def device_options(**changes):
    from dragonball.shared import codes
    values = dict(role="device", portal="10.0.0.10", code=codes.EXAMPLE.lower(),
                  ca_fingerprint=FINGERPRINT)
    return Options(**{**values, **changes})


def test_unattended_from_the_command_line():
    answers = collect_answers(device_options(yes=True), FACTS, no_terminal()[0])
    assert (answers.role, answers.address, answers.portal, answers.ca_fingerprint) == (
        "device", "10.0.0.5", "10.0.0.10:8443", FINGERPRINT)


def test_the_command_line_alone_must_be_complete_with_yes():
    with pytest.raises(AnswersInvalid) as e:
        collect_answers(Options(role="device", portal="10.0.0.10", yes=True), FACTS,
                        no_terminal()[0])
    assert e.value.source == "the command line"
    assert {p.field for p in e.value.problems} == {"ca_fingerprint", "enrollment_code"}
    assert "on the command line" in e.value.hint


def test_the_command_line_completes_a_file(tmp_path):
    path = tmp_path / "devices.yaml"
    path.write_text("role: device\nportal: 10.0.0.10\ndata_dir: /data/db\n")
    options = device_options(role=None, portal=None, answers=str(path), yes=True)
    answers = collect_answers(options, FACTS, no_terminal()[0])
    assert answers.data_dir == "/data/db" and answers.ca_fingerprint == FINGERPRINT


def test_an_answer_in_the_file_and_on_the_command_line_is_a_problem(tmp_path):
    path = tmp_path / "devices.yaml"
    path.write_text("role: device\nportal: 10.0.0.10\n")
    options = device_options(role=None, portal="10.0.0.11", answers=str(path), yes=True)
    with pytest.raises(AnswersInvalid) as e:
        collect_answers(options, FACTS, no_terminal()[0])
    [problem] = e.value.problems
    assert (problem.field, problem.line) == ("portal", 2)
    assert "given on the command line too (10.0.0.11): keep one" in problem.message


def test_the_same_answer_in_both_is_fine(tmp_path):
    path = tmp_path / "devices.yaml"
    path.write_text("role: device\ndata_dir: /data/db\n")
    options = device_options(role=None, data_dir="/data/db", answers=str(path), yes=True)
    assert collect_answers(options, FACTS, no_terminal()[0]).data_dir == "/data/db"


def test_command_line_answers_without_yes_and_no_terminal():
    with pytest.raises(NoTerminal) as e:
        collect_answers(device_options(), FACTS, no_terminal()[0])
    assert "cannot ask the remaining questions" in e.value.message
    assert "add --yes" in e.value.hint


def test_a_file_and_the_command_line_without_yes_and_no_terminal(tmp_path):
    path = tmp_path / "devices.yaml"
    path.write_text("role: device\n")
    with pytest.raises(NoTerminal) as e:
        collect_answers(device_options(role=None, answers=str(path)), FACTS, no_terminal()[0])
    assert e.value.hint.endswith("run the same command with --yes added")
