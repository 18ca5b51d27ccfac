"""`dragonball answers check FILE [--json]` through its own parser (register(subparsers))."""

from __future__ import annotations

import argparse
import io
import json

import pytest
from rich.console import Console

from dragonball.wizard import Facts, Interface
from dragonball.commands import answers as wizard_cli
from dragonball.wizard import options

FACTS = Facts("node-1", (Interface("eth0", "10.0.0.5"),))


def check(*argv):
    """(exit status, printed text) of `answers check ...` on a server with FACTS."""
    parser = argparse.ArgumentParser(prog="dragonball")
    wizard_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["answers", "check", *argv])
    out = io.StringIO()
    status = args.handler(args, facts=FACTS, out=Console(file=out, width=100))
    return status, out.getvalue()


@pytest.fixture
def answers(tmp_path):
    def write(text, mode=0o600):
        path = tmp_path / "answers.yaml"
        path.write_text(text)
        path.chmod(mode)
        return str(path)
    return write


def test_a_valid_file(answers):
    status, printed = check(answers("role: portal\nadmin_password: 'Correct horse battery'\n"))
    assert status == 0
    assert "valid" in printed and "********" in printed and "Correct" not in printed


def test_an_invalid_file_lists_every_problem(answers):
    status, printed = check(answers("role: device\nportal: https://x\nenrolment_code: 1\n"))
    assert status == 2
    assert "3 problem(s)" in printed
    for shown in ("portal", "did you mean 'enrollment_code'?", "ca_fingerprint"):
        assert shown in printed


def test_json(answers):
    path = answers("role: portal\nadmin_password: 'Correct horse battery'\n", mode=0o644)
    status, printed = check(path, "--json")
    document = json.loads(printed)
    assert status == 2 and document["ok"] is False and document["answers"] is None
    assert document["problems"] == [{
        "field": "admin_password", "line": 2,
        "message": f"{path} holds a password yet others can read it (mode 0644): "
                   f"run chmod 600 {path}"}]
    path = answers("role: portal\nadmin_password: 'Correct horse battery'\n")
    status, printed = check(path, "--json")
    assert status == 0 and json.loads(printed)["answers"]["admin_password"] == "********"


def test_answer_options_carry_what_collect_reads():
    from dragonball.wizard.collect import command_line_answers
    parser = argparse.ArgumentParser()
    options.add_answer_options(parser)
    args = parser.parse_args(["--role", "device", "--portal", "p", "--code", "C",
                              "--ca-fingerprint", "F", "--address", "A", "--data-dir", "/d"])
    assert command_line_answers(args) == {
        "role": "device", "portal": "p", "enrollment_code": "C", "ca_fingerprint": "F",
        "address": "A", "data_dir": "/d"}
    assert command_line_answers(parser.parse_args([])) == {}


def test_the_code_from_a_file_never_on_the_command_line(tmp_path):
    from dragonball.wizard.collect import command_line_answers
    from dragonball.wizard.errors import UsageError
    parser = argparse.ArgumentParser()
    options.add_answer_options(parser)
    saved = tmp_path / "code"
    saved.write_text("\n  7K3M-Q9XD-2HBW-P4T3  \n")
    args = parser.parse_args(["--role", "device", "--code-file", str(saved)])
    assert command_line_answers(args) == {"role": "device",
                                          "enrollment_code": "7K3M-Q9XD-2HBW-P4T3"}
    for path, said in ((tmp_path / "none", "cannot read"), (tmp_path, "cannot read")):
        with pytest.raises(UsageError, match=said):
            command_line_answers(parser.parse_args(["--code-file", str(path)]))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(UsageError, match="holds no code"):
        command_line_answers(parser.parse_args(["--code-file", str(tmp_path / "empty")]))
