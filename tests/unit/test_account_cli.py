"""`dragonball password` and `dragonball logout --all` through the API (in process): the
passwords come from stdin or a terminal, never argv; a change keeps this login and ends
the others; --all ends every token and session."""

from __future__ import annotations

import io
import json

import pytest

from dragonball.cli import main
from dragonball.commands import account
from portal_client_fakes import mount
from portal_web_fakes import ADMIN_PASSWORD, make_client, make_settings
from test_portal_app import FakeCluster
from test_remote_cli import home  # noqa: F401 - the autouse config home

NEW = "Another-Long-Passphrase-7"


@pytest.fixture
def portal(portal_store, tmp_path, monkeypatch):
    client, _ = make_client(portal_store, make_settings(tmp_path), FakeCluster())
    return mount(monkeypatch, client.app)


@pytest.fixture
def logged_in(portal, tmp_path, monkeypatch):
    ca = tmp_path / "ca.crt"
    ca.write_text("a CA file (the in-process transport does no TLS)")
    _stdin(monkeypatch, ADMIN_PASSWORD + "\n")
    assert main(["login", "--portal", "portal.test", "--ca", str(ca), "--password-stdin"]) == 0
    return portal


def _stdin(monkeypatch, text: str, tty: bool = False) -> None:
    stream = io.StringIO(text)
    stream.isatty = lambda: tty
    monkeypatch.setattr("sys.stdin", stream)


def test_password_from_stdin_changes_it_and_keeps_this_login(logged_in, portal_store,
                                                            monkeypatch, capsys):
    other, _ = portal_store.create_session("admin", "token", 60, 60)
    capsys.readouterr()
    _stdin(monkeypatch, f"{ADMIN_PASSWORD}\n{NEW}\n")
    assert main(["password", "--password-stdin", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True, "ended": 1}
    assert portal_store.session(other) is None
    assert main(["devices", "--json"]) == 0  # this machine's token still works
    assert portal_store.check_admin("admin", NEW)
    sent = logged_in.sent[-2]
    assert sent.path_url == "/api/v1/password" and NEW not in sent.path_url


def test_password_on_a_terminal_asks_the_new_one_twice(logged_in, monkeypatch, capsys):
    answers = iter([ADMIN_PASSWORD, NEW, NEW + "x"])
    monkeypatch.setattr(account.getpass, "getpass", lambda prompt: next(answers))
    _stdin(monkeypatch, "", tty=True)
    assert main(["password"]) == 2 and "differ" in capsys.readouterr().err


@pytest.mark.parametrize("lines, status, words", [
    (f"wrong-current\n{NEW}\n", 6, "current password is wrong"),
    (f"{ADMIN_PASSWORD}\nshort\n", 2, "too short"),
    (f"{ADMIN_PASSWORD}\n", 2, "empty")])
def test_password_refusals(logged_in, monkeypatch, capsys, lines, status, words):
    _stdin(monkeypatch, lines)
    assert main(["password", "--password-stdin"]) == status
    assert words in capsys.readouterr().err


def test_password_without_a_terminal_or_stdin_flag_says_how(logged_in, monkeypatch, capsys):
    _stdin(monkeypatch, f"{ADMIN_PASSWORD}\n{NEW}\n")
    assert main(["password"]) == 2 and "--password-stdin" in capsys.readouterr().err


def test_logout_all_ends_every_token_and_session(logged_in, portal_store, monkeypatch,
                                                 capsys):
    other, _ = portal_store.create_session("admin", "session", 60, 60)
    capsys.readouterr()
    assert main(["logout", "--all", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["token_ended"] is True
    assert portal_store.session(other) is None
    assert logged_in.sent[-1].method == "DELETE" and logged_in.sent[-1].path_url == \
        "/api/v1/tokens"
