"""The wizard on a real pseudo-terminal: `python -m dragonball.wizard` driven by pexpect,
as a person would type at a server's console (the answers are this machine's)."""

from __future__ import annotations

import os
import sys

import pexpect
import pytest

from dragonball.wizard.host import live_facts

PASSWORD = "Correct horse battery"
CLEAR_LINE, CTRL_C = "\x15", "\x03"


@pytest.fixture
def terminal():
    """A spawned wizard on an 80x24 pty; killed at the end whatever happened."""
    env = dict(os.environ, PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm", COLUMNS="80", LINES="24")
    child = pexpect.spawn(sys.executable, ["-m", "dragonball.wizard"], env=env,
                          encoding="utf-8", timeout=20, dimensions=(24, 80))
    yield child
    child.close(force=True)


@pytest.fixture
def address():
    interfaces = live_facts().interfaces
    if not interfaces:
        pytest.skip("this machine has no address other servers could reach")
    return interfaces[0].address


def test_a_portal_install_answered_on_a_terminal(terminal, address):
    terminal.expect_exact("What will this server be?")
    terminal.send("\r")                                   # the portal
    terminal.expect_exact("This server's address")
    terminal.expect_exact(address)
    terminal.send("\r")                                   # the first address
    terminal.expect_exact("admin password")
    terminal.send("dragonball\r")                         # refused, with the reason
    terminal.expect_exact("too short (10 characters)")
    terminal.send(CLEAR_LINE + PASSWORD + "\r")
    terminal.expect_exact("The same password again")
    terminal.send(PASSWORD + "\r")
    terminal.expect_exact("Where should DragonBall keep its data?")
    terminal.send("\r")                                   # the default
    terminal.expect_exact("Your answers")
    terminal.expect_exact("********")
    terminal.expect_exact("Install DragonBall with these answers?")
    terminal.send("y")
    terminal.expect_exact(f"address: {address}")
    terminal.expect_exact("admin_password: '********'")
    terminal.expect(pexpect.EOF)
    terminal.close()
    assert terminal.exitstatus == 0
    assert PASSWORD not in terminal.before


def test_ctrl_c_on_a_terminal_exits_130(terminal):
    terminal.expect_exact("What will this server be?")
    terminal.send(CTRL_C)
    terminal.expect_exact("nothing was changed")
    terminal.expect(pexpect.EOF)
    terminal.close()
    assert terminal.exitstatus == 130


def test_the_command_dragonball_enroll_prints_on_a_terminal(address):
    """A device's answers on the command line: only the address, the data directory and
    the confirmation are left to answer."""
    fingerprint = "SHA256:" + "ab" * 32
    env = dict(os.environ, PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm")
    child = pexpect.spawn(sys.executable, [
        "-m", "dragonball.wizard", "--role", "device", "--portal", "192.0.2.250",
        "--ca-fingerprint", fingerprint, "--code", "7k3m q9xd 2hbw p4t3"],
        env=env, encoding="utf-8", timeout=20, dimensions=(24, 100))
    try:
        child.expect_exact("(from the command line)")
        child.expect_exact("This server's address")
        child.send("\r")
        child.expect_exact("Where should DragonBall keep its data?")
        child.send("\r")
        child.expect_exact("Install DragonBall with these answers?")
        child.send("y")
        child.expect_exact("portal: 192.0.2.250:8443")
        child.expect_exact("enrollment_code: '********'")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
