"""Where `params set`'s values come from (commands/param_values.py, issue 15): KEY=VALUE,
KEY=@PATH, KEY=@@TEXT, KEY=-, --stdin KEY, --from-file KEY=FILE; read here, before the one
KEY=VALUE parser, never shown. Streams and the hidden prompt are injected; the command runs
against the apps stand-in of test_remote_cli.py (what it sends is what the portal gets)."""

from __future__ import annotations

import io
import json

import pytest

from dragonball.cli import main
from dragonball.commands.param_values import STDIN, Given, Sources, resolve
from dragonball.orchestrator.params import ParamsInvalid
from dragonball.portal import settings as settings_mod
from portal_client_fakes import apps_app
from test_remote_cli import _logged_in, _out, _stdin


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A config home of the test's own (as test_remote_cli's): no real login read or
    written, no portal settings here, so the command goes through the API."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setattr(settings_mod, "CONFIG_FILE", str(tmp_path / "no.yaml"))
    return tmp_path / "config"


def _sources(text: str = "", tty: bool = False, typed: str = "") -> Sources:
    stream = io.StringIO(text)
    stream.isatty = lambda: tty
    asked = []

    def ask_hidden(prompt: str) -> str:
        asked.append(prompt)
        return typed
    found = Sources(stream, ask_hidden)
    found.asked = asked
    return found


def test_each_form_gives_its_text_and_says_where_it_came_from(tmp_path):
    path = tmp_path / "pw"
    path.write_bytes(b"line one\r\nline two\r\n")
    given = resolve(["a=plain", f"b=@{path}", "c=@@at", "d=-", "e=x=y"],
                    sources=_sources("from stdin\n\n"))
    assert given == [Given("a", "plain"), Given("b", "line one\r\nline two", str(path)),
                     Given("c", "@at"), Given("d", "from stdin\n", STDIN),
                     Given("e", "x=y")]
    assert [g.assignment() for g in given][2:] == ["c=@at", "d=from stdin\n", "e=x=y"]


def test_the_options_read_as_the_forms_do(tmp_path):
    path = tmp_path / "t"
    path.write_text("title\n")
    given = resolve([], "pw", [f"t={path}"], sources=_sources("s"))
    assert given == [Given("pw", "s", STDIN), Given("t", "title", str(path))]


def test_on_a_terminal_one_line_is_asked_without_echo():
    sources = _sources(tty=True, typed="typed secret")
    assert resolve(["password=-"], sources=sources) == [
        Given("password", "typed secret", STDIN)]
    assert sources.asked == ["password (not shown): "]


def test_what_is_no_key_value_is_left_for_the_parser_to_name():
    assert [g.assignment() for g in resolve(["novalue", "=x", " =y"])] == [
        "novalue", "=x", " =y"]


@pytest.mark.parametrize("argv, said", [
    (["k=@{missing}"], "k: cannot read the file {missing}"),
    (["k=@{latin}"], "k: cannot read the file {latin}"),
    (["k=@{folder}"], "k: cannot read the file {folder}"),
    (["k=@{big}"], "k: the value from {big} is over 64 KiB"),
    (["k=-", "j=-"], "standard input gives one value per command: k and j"),
])
def test_what_cannot_be_read_is_refused_naming_the_key_and_the_path(tmp_path, argv, said):
    paths = {"missing": tmp_path / "no", "latin": tmp_path / "latin", "folder": tmp_path,
             "big": tmp_path / "big"}
    paths["latin"].write_bytes(b"caf\xe9")
    paths["big"].write_text("x" * (64 * 1024 + 1))
    with pytest.raises(ParamsInvalid) as caught:
        resolve([a.format(**paths) for a in argv], sources=_sources("in"))
    assert said.format(**paths) in caught.value.message
    assert caught.value.hint


def test_the_limit_itself_is_fine(tmp_path):
    path = tmp_path / "max"
    path.write_text("x" * (64 * 1024) + "\n")
    assert len(resolve([f"k=@{path}"])[0].text) == 64 * 1024


def test_values_from_a_file_or_stdin_as_key_at_path_and_key_dash(
        home, tmp_path, monkeypatch, capsys):
    """Issue 15: `KEY=@PATH` reads the file, `KEY=-` stdin, `KEY=@@TEXT` is the literal
    `@TEXT`; a value read is never printed, and a secret read so is no secret exposed."""
    app = apps_app()
    _logged_in(home, app, monkeypatch)
    secret = tmp_path / "pw"
    secret.write_text("s3cret-from-file\n\n")
    _stdin(monkeypatch, "s3cret-from-stdin\n")
    assert main(["params", "set", "web", f"password=@{secret}", "title=-", "--json"]) == 0
    assert app.state.params_sent[-1]["set"] == {"password": "s3cret-from-file\n",
                                                "title": "s3cret-from-stdin"}
    out, err = capsys.readouterr()
    assert "s3cret" not in out + err and "note:" not in err
    assert main(["params", "set", "web", "title=@@home", "password=@@"]) == 0
    assert app.state.params_sent[-1]["set"] == {"title": "@home", "password": "@"}
    capsys.readouterr()


@pytest.mark.parametrize("argv, said", [
    (["password=@/no/such/file"], "cannot read the file /no/such/file"),
    (["password=@"], "password=@ names no file"),
    (["password=-", "title=-"], "standard input gives one value per command"),
    (["password=-", "--stdin", "title"], "standard input gives one value per command"),
    (["workers=@{big}"], "the value from {big} is over 64 KiB"),
    (["workers=@{file}"], "workers is an int: the value read (not shown) is not a whole"),
], ids=["missing", "no-path", "stdin-twice", "stdin-and-option", "too-big", "not-shown"])
def test_a_value_that_cannot_be_read_changes_nothing_and_is_never_shown(
        home, tmp_path, monkeypatch, capsys, argv, said):
    app = apps_app()
    _logged_in(home, app, monkeypatch)
    big, file = tmp_path / "big", tmp_path / "file"
    big.write_text("x" * (64 * 1024 + 1))
    file.write_text("many-s3cret\n")
    _stdin(monkeypatch, "s3cret\n")
    argv = [a.format(big=big, file=file) for a in argv]
    assert main(["params", "set", "web", *argv, "--json"]) == 2
    answer = _out(capsys)
    assert said.format(big=big) in answer["error"] + " ".join(answer.get("problems", []))
    assert "s3cret" not in json.dumps(answer)
    assert app.state.params_sent == []
