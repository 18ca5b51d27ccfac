"""Every command ends with the exit status of its error's category (README.md, "Exit
statuses"): `dragonball.cli.main` run in-process with bad input, one case per category, each
asserting one specific status. Remote commands end as their local twins do."""

from __future__ import annotations

import io
import json
import pathlib
import re
import socket

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from dragonball import cli, pki
from dragonball import portal_login as pl
from dragonball.commands import apps_local
from dragonball.commands.apps_local import LocalApps
from dragonball.commands import remote as remote_cli
from dragonball.commands import spec as spec_cli
from dragonball.errors import ExitStatus
from dragonball.orchestrator.control import Control
from dragonball.orchestrator.state import AppStore
from dragonball.portal import settings as settings_mod
from dragonball.portal.store import Store
from orchestrator_fakes import FakeAgents, FakeRegistry, FakeSwarm
from portal_client_fakes import URL, apps_app, mount

REPO_README = pathlib.Path(__file__).parents[2] / "README.md"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """No real login or portal settings are read: a config home of the test's own."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setattr(settings_mod, "CONFIG_FILE", str(tmp_path / "none.yaml"))
    return tmp_path


@pytest.fixture
def local_portal(tmp_path, monkeypatch):
    """The local app commands over a Control of fakes and an empty store (no app applied)."""
    store = Store.open(str(tmp_path / "portal.db"))
    control = Control(FakeSwarm(), AppStore(store), FakeAgents(), FakeRegistry({}),
                      "10.0.0.5:5000", wait_s=1.0)
    monkeypatch.setattr(apps_local, "open_local", lambda args: LocalApps(control))
    yield control
    store.close()


def _login(home, url: str, ca: str = "/ca.crt") -> None:
    pl.save_login(pl.Login(url, ca, "a-token"), pl.login_path({"XDG_CONFIG_HOME":
                                                               str(home / "config")}))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _busy_portal(monkeypatch) -> None:
    """A portal whose app is busy with another job: every action answers 409."""
    app = FastAPI()

    @app.get("/api/v1/apps")
    def apps():
        return {"apps": ["notes"]}

    @app.post("/api/v1/apps/{name}/services/{service}/{verb}")
    def action(name: str, service: str, verb: str):
        return JSONResponse({"error": "app 'notes' is busy: job 7 (apply) is still running",
                             "hint": "wait for it to end", "category": "conflict",
                             "job": "7"}, 409)
    mount(monkeypatch, app)


def _raising(monkeypatch, error: BaseException) -> None:
    """`dragonball plan` raises `error` from inside its handler."""
    def handler(args):
        raise error
    monkeypatch.setattr(spec_cli, "plan_command", handler)


CASES = [
    # usage: argparse's own 2
    ("usage", [], ExitStatus.INVALID),
    ("usage", ["plan"], ExitStatus.INVALID),
    ("usage", ["preflight", "--role", "manager"], ExitStatus.INVALID),
    # invalid input
    ("invalid module", ["module", "check", "{tmp}/no-module"], ExitStatus.INVALID),
    ("invalid spec", ["plan", "{tmp}/bad.app.yaml"], ExitStatus.INVALID),
    ("invalid option", ["preflight", "--data-dir", "relative"], ExitStatus.INVALID),
    ("invalid option", ["enroll", "--ttl", "forever"], ExitStatus.INVALID),
    ("no portal settings here", ["services", "--config", "{tmp}/none.yaml"],
     ExitStatus.INVALID),
    ("invalid answers", ["answers", "check", "{tmp}/answers.yaml"], ExitStatus.INVALID),
    ("no .bin", ["images", "list"], ExitStatus.INVALID),
    # not found
    ("local portal", ["services", "--app", "nope"], ExitStatus.NOT_FOUND),
    ("local portal", ["services"], ExitStatus.NOT_FOUND),  # no app applied yet
    ("remote portal", ["services", "--app", "nope", "--remote"], ExitStatus.NOT_FOUND),
    ("remote portal", ["stop", "nope", "--remote"], ExitStatus.NOT_FOUND),
    # conflict
    ("busy portal", ["restart", "web", "--remote"], ExitStatus.CONFLICT),
    # unavailable
    ("closed port", ["devices"], ExitStatus.UNAVAILABLE),
    ("closed port", ["services", "--remote"], ExitStatus.UNAVAILABLE),
    # denied
    ("not logged in", ["devices"], ExitStatus.DENIED),
    # a defect, and Ctrl-C
    ("foreign exception", ["plan", "x.yaml"], ExitStatus.INTERNAL),
    ("ctrl-c", ["plan", "x.yaml"], ExitStatus.INTERRUPTED),
]


def _prepare(what: str, request, monkeypatch, home) -> None:
    tmp = home
    if what == "invalid spec":
        (tmp / "bad.app.yaml").write_text("app: notes\nservices: {}\nunknown: 1\n")
    elif what == "invalid answers":
        (tmp / "answers.yaml").write_text("role: emperor\n")
    elif what == "no .bin":
        monkeypatch.delenv("DRAGONBALL_BIN", raising=False)
        monkeypatch.delenv("DRAGONBALL_BIN_SECTIONS", raising=False)
    elif what == "local portal":
        request.getfixturevalue("local_portal")
    elif what == "remote portal":
        _login(home, URL)
        mount(monkeypatch, apps_app())
    elif what == "busy portal":
        _login(home, URL)
        _busy_portal(monkeypatch)
    elif what == "closed port":
        ca = home / "ca.crt"
        ca.write_bytes(pki.create_ca().cert_pem)
        _login(home, f"https://127.0.0.1:{_closed_port()}", str(ca))
    elif what == "foreign exception":
        _raising(monkeypatch, ZeroDivisionError("division by zero"))
    elif what == "ctrl-c":
        _raising(monkeypatch, KeyboardInterrupt())


@pytest.mark.parametrize("what, argv, status", CASES,
                         ids=[f"{c[0]}: {' '.join(c[1])}" for c in CASES])
def test_each_command_ends_with_the_status_of_its_category(what, argv, status, request,
                                                           monkeypatch, home, capsys):
    _prepare(what, request, monkeypatch, home)
    argv = [a.replace("{tmp}", str(home)) for a in argv]
    try:
        code = cli.main(argv)
    except SystemExit as e:  # argparse ends a wrong command line itself
        code = e.code
    out = capsys.readouterr()
    assert code == status, out.out + out.err
    assert "Traceback" not in out.out + out.err


def test_a_foreign_exception_is_an_internal_error_naming_debug(monkeypatch, capsys):
    _raising(monkeypatch, ZeroDivisionError("division by zero"))
    assert cli.main(["plan", "x.yaml"]) == ExitStatus.INTERNAL == 70
    err = capsys.readouterr().err
    assert "internal error" in err and "ZeroDivisionError" in err and "--debug" in err
    assert "Traceback" not in err
    assert cli.main(["--debug", "plan", "x.yaml"]) == 70
    assert "Traceback" in capsys.readouterr().err


def test_an_error_says_its_message_and_hint_and_with_json_is_one_document(local_portal,
                                                                          capsys):
    assert cli.main(["services", "--app", "nope"]) == 3
    err = capsys.readouterr().err
    assert "error: the portal has no app 'nope'" in err and "hint: apply its spec first" in err
    assert cli.main(["services", "--app", "nope", "--json"]) == 3
    document = json.loads(capsys.readouterr().out)
    assert document == {"ok": False, "exit_status": 3, "category": "not_found",
                        "error": document["error"], "hint": document["hint"]}
    assert "no app 'nope'" in document["error"]


def test_a_remote_error_lists_the_portals_problems(home, monkeypatch, capsys):
    _login(home, URL)
    mount(monkeypatch, apps_app())
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    (home / "bad.yaml").write_text("app: notes\n")
    assert cli.main(["apply", str(home / "bad.yaml"), "--remote"]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml: 1 problem" in err and "  - services: is missing" in err


# --- the one documentation of the statuses ---------------------------------------------------

def _readme_table(title: str) -> dict:
    """{status: name} of the README's exit-status table under `title`."""
    text = REPO_README.read_text(encoding="utf-8")
    section = re.split(r"\n#{2,3} ", text.split(f"### {title}\n", 1)[1])[0]
    return {int(m.group(1)): m.group(2) for m in
            re.finditer(r"^\| (\d+) \| `?([A-Z_]+)`? \|", section, re.M)}


def test_the_readme_documents_the_runtimes_statuses_as_the_code_has_them():
    assert _readme_table("Statuses of the runtime") == {s.value: s.name for s in ExitStatus}


def test_the_readme_documents_the_stubs_statuses_as_the_stub_has_them():
    stub = (REPO_README.parent / "scripts" / "stub.sh").read_text()
    codes = dict(re.findall(r"(E_[A-Z]+)=(\d+)", stub.split("\nsay()")[0]))
    assert {int(v): k for k, v in codes.items()} == _readme_table("Statuses of the .bin's stub")
    assert all(80 <= int(v) <= 89 for v in codes.values())
    assert not set(map(int, codes.values())) & {s.value for s in ExitStatus}
