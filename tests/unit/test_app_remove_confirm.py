"""How `dragonball remove APP` is confirmed (commands/data.py, issue 15): its volumes are
kept unless the app's name is typed again, on the command line (`--purge-data notes`) or
at the question on a terminal; 'yes' (or --yes) confirms a removal that keeps them. The
terminal and the answers are injected; the command itself runs both ways in
test_app_commands_both_ways.py."""

from __future__ import annotations

import io

import pytest

from dragonball.cli import _parser
from dragonball.commands.data import ASK, confirm_removal, print_removal
from dragonball.portal_client import PortalInvalid
from dragonball.orchestrator.removing import PurgeRefused


def _args(*argv: str):
    return _parser().parse_args(["remove", "notes", *argv])


def _terminal(*answers: str, tty: bool = True):
    stream = io.StringIO()
    stream.isatty = lambda: tty
    asked, given = [], list(answers)

    def ask(question: str) -> str:
        asked.append(question)
        return given.pop(0)
    return stream, ask, asked


def test_the_command_line_reads_as_documented():
    assert _args().purge_data is None and not _args("--keep-data").purge_data
    assert _args("--purge-data").purge_data is ASK
    assert _args("--purge-data", "notes").purge_data == "notes"
    with pytest.raises(SystemExit) as caught:           # both at once: argparse says no
        _args("--keep-data", "--purge-data", "notes")
    assert caught.value.code == 2


def test_yes_on_a_terminal_removes_and_keeps_the_data():
    stdin, ask, asked = _terminal("yes")
    assert confirm_removal(_args(), stdin, ask) == (True, None)
    assert "its volumes are kept" in asked[0]
    stdin, ask, _ = _terminal("no")
    assert confirm_removal(_args(), stdin, ask) == (False, None)
    assert confirm_removal(_args("--yes"), *_terminal(tty=False)[:2]) == (True, None)


def test_the_name_typed_at_the_question_deletes_the_data_and_confirms_it_all():
    stdin, ask, asked = _terminal("notes")
    assert confirm_removal(_args("--purge-data", "--yes"), stdin, ask) == (True, "notes")
    assert asked == ["remove app notes and DELETE ITS DATA (its volumes on every server) "
                     "for good? type the app's name to delete its data: "]


def test_another_name_at_the_question_is_refused():
    stdin, ask, _ = _terminal("yes")
    with pytest.raises(PurgeRefused) as caught:
        confirm_removal(_args("--purge-data"), stdin, ask)
    assert caught.value.exit_status == 2 and "'yes', not 'notes'" in caught.value.message


def test_the_name_given_on_the_command_line_needs_no_terminal():
    stdin, ask, asked = _terminal(tty=False)
    assert confirm_removal(_args("--purge-data", "notes"), stdin, ask) == (True, "notes")
    assert asked == []


@pytest.mark.parametrize("argv, error, said", [
    ((), PortalInvalid, "--yes"),
    (("--purge-data",), PurgeRefused, "--purge-data notes"),
    (("--purge-data", "wiki", "--yes"), PurgeRefused, "--purge-data notes"),
])
def test_without_a_terminal_what_is_missing_is_said(argv, error, said):
    stdin, ask, asked = _terminal(tty=False)
    with pytest.raises(error) as caught:
        confirm_removal(_args(*argv), stdin, ask)
    assert caught.value.exit_status == 2 and said in caught.value.hint and asked == []


def test_a_removal_keeping_its_data_names_each_volume(capsys):
    print_removal("notes", {"services": ["notes_api"], "network": True, "params": ["a:api"],
                            "volumes": [], "purge_data": False, "problems": ["x stays"],
                            "kept": [{"server": "s2", "name": "notes_store-1_data"}]})
    out = capsys.readouterr().out
    assert "removed app notes: 1 service(s), its network, 1 parameter folder(s)\n" in out
    assert "kept its data, 1 volume(s):\n  notes_store-1_data on s2\n" in out
    assert "left: x stays" in out
