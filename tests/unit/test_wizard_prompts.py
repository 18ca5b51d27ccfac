"""The questions driven in-process, as questionary's own tests do: keystrokes through a
prompt_toolkit pipe input, the screen to a DummyOutput, what rich prints to a StringIO."""

from __future__ import annotations

import argparse
import io
import os

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from dragonball import cli
from dragonball.shared import ports
from dragonball.wizard import (Answers, Cancelled, Checks, Declined, Facts, Interface, Io,
                               Options, collect_answers)
from dragonball.shared import codes

DOWN, ENTER, CTRL_C, CLEAR_LINE = "\x1b[B", "\r", "\x03", "\x15"
FACTS = Facts("node-1", (Interface("eth0", "10.0.0.5"), Interface("eth1", "192.168.7.5")))
PASSWORD = "Correct horse battery"
CODE = codes.EXAMPLE
FINGERPRINT = "SHA256:" + "ab" * 32


def typed(text: str) -> str:
    return text + ENTER


def raising(error):
    def handler(args):
        raise error
    return handler


def run(keys: str, options=Options(), facts=FACTS, checks=Checks()):
    """(Answers or the WizardError raised, what was printed) after typing `keys`."""
    out = io.StringIO()
    with create_pipe_input() as pipe:
        pipe.send_text(keys)
        pipe.close()  # the end of the keys ends input: a test short of keys fails, never hangs
        wizard_io = Io(stdin=None, stdout=out, isatty=lambda: True, prompt_input=pipe,
                       prompt_output=DummyOutput())
        try:
            result = collect_answers(options, facts, wizard_io, checks)
        except (Cancelled, Declined) as e:
            result = e
    return result, out.getvalue()


def test_a_full_portal_run():
    keys = (ENTER                                 # role: the portal (first choice)
            + DOWN + ENTER                        # address: the second interface
            + typed("short")                      # refused: too short ...
            + CLEAR_LINE + typed(PASSWORD)        # ... typed again
            + typed(PASSWORD)                     # confirmed
            + CLEAR_LINE + typed("/data/dragonball/")
            + "y")
    answers, printed = run(keys)
    assert answers == Answers(role="portal", address="192.168.7.5", data_dir="/data/dragonball",
                              admin_password=PASSWORD, cluster_name="node-1")
    assert "Your answers" in printed and "********" in printed
    assert PASSWORD not in printed
    for shown in ("192.168.7.5", "node-1 (this server's)", "/data/dragonball", "portal (the"):
        assert shown in printed


def test_the_two_passwords_must_match():
    keys = (ENTER + ENTER + typed(PASSWORD) + typed(PASSWORD + "!")  # differ: asked again
            + typed("Another good one 2") + typed("Another good one 2") + ENTER + "y")
    answers, printed = run(keys)
    assert answers.admin_password == "Another good one 2"
    assert "The two passwords differ" in printed


def test_a_device_run_with_a_bad_code_then_a_good_one():
    asked = []

    def check_code(portal, code):
        asked.append((portal, code))
        return True if code == CODE else "this code has expired: ask the portal for a new one"

    checks = Checks(check_portal=lambda portal: asked.append(portal) or True,
                    check_fingerprint=lambda portal, ca: asked.append(ca) or True,
                    check_code=check_code)
    typo = CODE[:-1] + ("4" if CODE[-1] != "4" else "5")   # caught by the check character
    other = codes.new_code()
    keys = (DOWN + ENTER                         # role: a device
            + ENTER                               # address: the first interface
            + typed("https://portal.lan")         # refused: a URL, not an address
            + CLEAR_LINE + typed("portal.lan")
            + typed("SHA256:abab")                # refused: too short a fingerprint
            + CLEAR_LINE + typed(":".join(["AB"] * 32))
            + typed(typo)                         # refused locally: never sent to the portal
            + CLEAR_LINE + typed(other.lower())   # well formed, refused by the portal
            + CLEAR_LINE + typed(CODE)            # accepted
            + ENTER + "y")
    answers, printed = run(keys, checks=checks)
    portal = f"portal.lan:{ports.PORTAL}"
    assert answers == Answers(role="device", address="10.0.0.5", portal=portal,
                              enrollment_code=CODE, ca_fingerprint=FINGERPRINT)
    assert asked == [portal, FINGERPRINT, (portal, other), (portal, CODE)]
    assert CODE in printed and portal in printed


def test_a_device_cannot_name_itself_as_the_portal():
    keys = (DOWN + ENTER + ENTER + typed("10.0.0.5") + CLEAR_LINE + typed("10.0.0.10")
            + typed(FINGERPRINT) + typed(CODE) + ENTER + "y")
    answers, _ = run(keys)
    assert answers.portal == f"10.0.0.10:{ports.PORTAL}"


def test_typing_an_address_instead_of_choosing():
    keys = (ENTER + DOWN + DOWN + ENTER          # "type another address"
            + typed("10.0.0.6")                   # not this server's: refused
            + CLEAR_LINE + typed("192.168.7.5")
            + typed(PASSWORD) + typed(PASSWORD) + ENTER + "y")
    answers, _ = run(keys)
    assert answers.address == "192.168.7.5"


def test_ctrl_c_before_the_summary_changes_nothing():
    answers, printed = run(ENTER + ENTER + CTRL_C)
    assert isinstance(answers, Cancelled) and isinstance(answers, KeyboardInterrupt)
    assert cli.run(raising(answers), argparse.Namespace()) == 130  # like any Ctrl-C
    assert "nothing was changed" in str(answers)
    assert "Your answers" not in printed


def test_no_at_the_summary():
    answers, printed = run(ENTER + ENTER + typed(PASSWORD) + typed(PASSWORD) + ENTER + "n")
    assert isinstance(answers, Declined) and answers.exit_status == 1
    assert "nothing was changed" in str(answers)
    assert "Your answers" in printed


def test_enter_at_the_summary_means_no():
    answers, _ = run(ENTER + ENTER + typed(PASSWORD) + typed(PASSWORD) + ENTER + ENTER)
    assert isinstance(answers, Declined)


def test_an_answers_file_confirmed_on_the_terminal(tmp_path):
    path = tmp_path / "portal.yaml"
    path.write_text(f"role: portal\naddress: 10.0.0.5\nadmin_password: '{PASSWORD}'\n")
    os.chmod(path, 0o600)
    answers, printed = run("y", Options(answers=str(path)))
    assert answers.role == "portal" and "Your answers" in printed
    refused, _ = run(CTRL_C, Options(answers=str(path)))
    assert isinstance(refused, Cancelled)


@pytest.mark.parametrize("facts", [Facts("node-1", (Interface("eth0", "10.0.0.5"),))])
def test_one_interface_is_still_chosen_on_screen(facts):
    answers, _ = run(ENTER + ENTER + typed(PASSWORD) + typed(PASSWORD) + ENTER + "y",
                     facts=facts)
    assert answers.address == "10.0.0.5"


# -- answers from the command line ------------------------------------------------------------

def test_answers_from_the_command_line_are_checked_and_not_asked():
    calls = []
    checks = Checks(check_portal=lambda p: calls.append("portal") or True,
                    check_fingerprint=lambda p, f: calls.append("ca") or True,
                    check_code=lambda p, c: calls.append("code") or True)
    options = Options(role="device", portal="10.0.0.10", ca_fingerprint=FINGERPRINT,
                      code=CODE.lower())
    answers, printed = run(ENTER + ENTER + "y", options, checks=checks)  # address, data dir
    assert answers == Answers(role="device", address="10.0.0.5",
                              portal=f"10.0.0.10:{ports.PORTAL}", ca_fingerprint=FINGERPRINT,
                              enrollment_code=CODE)
    assert calls == ["portal", "ca", "code"]
    assert printed.count("✓") == 4 and "(from the command line)" in printed


def test_a_bad_answer_from_the_command_line_is_said_and_asked_again():
    refused = {CODE}
    checks = Checks(check_code=lambda p, c: "this code was used already: ask the portal for "
                                            "a new one" if c in refused else True)
    other = codes.new_code()
    options = Options(role="device", portal="10.0.0.10", ca_fingerprint=FINGERPRINT, code=CODE)
    keys = ENTER + CLEAR_LINE + typed(other) + ENTER + "y"
    answers, printed = run(keys, options, checks=checks)
    assert answers.enrollment_code == other
    assert "✗ The enrollment code" in printed and "used already" in printed
