"""The CLI through the portal's API (dragonball.commands.remote): login and logout, status,
devices, enroll, the app commands with --remote, the exit statuses of their categories (those
of the local twins: 0 done, 1 failed, 2 invalid, 3 not found, 5 unreachable, 6 denied), and
when a command goes remote by itself. The portal is the real app (or the apps stand-in)
in-process."""

from __future__ import annotations

import io
import pathlib
import json
import stat
import types

import pytest

from dragonball import portal_login as pl
from dragonball.cli import main
from dragonball.commands import app_access
from dragonball.commands import remote as remote_cli
from dragonball.portal import settings as settings_mod
from dragonball.shared import node_labels
from portal_client_fakes import URL, apps_app, mount
from portal_web_fakes import ADMIN_PASSWORD, make_client, make_settings
from test_portal_app import FakeCluster


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """A config home of the test's own: no real login is read or written."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setattr(settings_mod, "CONFIG_FILE", str(tmp_path / "no.yaml"))
    return tmp_path / "config"


@pytest.fixture
def store(portal_store):
    """The portal's store with one more device, node-2 (10.0.0.2), enrolled."""
    code, _ = portal_store.create_code(actor="test")
    portal_store.enroll(code, "node-2", "10.0.0.2", "10.0.0.2")
    return portal_store


@pytest.fixture
def cluster():
    return FakeCluster()


@pytest.fixture
def portal(store, tmp_path, monkeypatch, cluster):
    client, _ = make_client(store, make_settings(tmp_path), cluster)
    client.app.state.control_factory = lambda: types.SimpleNamespace(   # no app applied
        store=types.SimpleNamespace(apps=lambda: []))
    return mount(monkeypatch, client.app)


@pytest.fixture
def ca(tmp_path):
    path = tmp_path / "ca.crt"
    path.write_text("a CA file (the in-process transport does no TLS)")
    return str(path)


def _stdin(monkeypatch, text: str, tty: bool = False) -> None:
    stream = io.StringIO(text)
    stream.isatty = lambda: tty
    monkeypatch.setattr("sys.stdin", stream)


def _login(monkeypatch, ca, password=ADMIN_PASSWORD) -> int:
    _stdin(monkeypatch, password + "\n")
    return main(["login", "--portal", "portal.test", "--ca", ca, "--password-stdin", "--json"])


def _out(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_login_keeps_a_token_0600_and_never_the_password(portal, ca, home, monkeypatch, capsys):
    assert _login(monkeypatch, ca) == 0
    answer = _out(capsys)
    assert answer["ok"] and answer["portal"] == URL and answer["ca"] == ca
    saved = home / "dragonball" / "portal.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    data = json.loads(saved.read_text())
    assert set(data) == {"url", "ca", "token", "username", "expires_at", "portals"}
    assert data["portals"][0] == URL  # the one that answered first, then every manager's
    assert answer["portals"] == data["portals"]
    assert ADMIN_PASSWORD not in saved.read_text()
    sent, listed = portal.sent[-2:]
    assert sent.method == "POST" and sent.path_url == "/api/v1/tokens"
    assert sent.headers["Authorization"].startswith("Basic ")
    assert listed.path_url == "/api/v1/portals"
    assert listed.headers["Authorization"] == f"Bearer {data['token']}"


def test_login_asks_on_a_terminal_and_refuses_without_one(portal, ca, monkeypatch, capsys):
    asked = []
    monkeypatch.setattr(remote_cli.getpass, "getpass",
                        lambda prompt: asked.append(prompt) or ADMIN_PASSWORD)
    _stdin(monkeypatch, "", tty=True)
    assert main(["login", "--portal", "portal.test", "--ca", ca]) == 0
    assert asked == ["password of admin on the portal: "]
    assert "logged in" in capsys.readouterr().out
    _stdin(monkeypatch, ADMIN_PASSWORD + "\n", tty=False)
    assert main(["login", "--portal", "portal.test", "--ca", ca]) == 2
    assert "--password-stdin" in capsys.readouterr().err


def test_login_errors_exit_2_or_6(portal, ca, tmp_path, monkeypatch, capsys):
    assert _login(monkeypatch, ca, "wrong") == 6  # DENIED
    assert _out(capsys)["error"] == "wrong user name or password"
    assert _login(monkeypatch, str(tmp_path / "missing.crt")) == 2
    assert "cannot read the CA file" in _out(capsys)["error"]
    _stdin(monkeypatch, "x\n")
    assert main(["login", "--portal", "http://portal.test", "--ca", ca,
                 "--password-stdin"]) == 2
    assert not (tmp_path / "config" / "dragonball" / "portal.json").exists()


def test_a_second_login_ends_the_first_token(portal, ca, home, monkeypatch, store):
    assert _login(monkeypatch, ca) == 0
    first = json.loads((home / "dragonball" / "portal.json").read_text())["token"]
    assert _login(monkeypatch, ca) == 0
    assert store.session(first) is None


def test_devices_and_status(portal, ca, monkeypatch, capsys):
    assert main(["devices", "--json"]) == 6  # not logged in yet: DENIED
    assert "dragonball login" in _out(capsys)["hint"]
    _login(monkeypatch, ca)
    capsys.readouterr()
    assert main(["devices", "--json"]) == 0
    assert [d["hostname"] for d in _out(capsys)["devices"]] == ["s1", "node-2"]
    assert main(["devices"]) == 0
    assert "node-2" in capsys.readouterr().out
    assert main(["status", "--json"]) == 0
    status = _out(capsys)
    assert status["devices"] == {"total": 2, "by_state": {"enrolled": 1, "joined": 1}}
    assert main(["status"]) == 0
    assert "devices: 2 (1 enrolled, 1 joined)" in capsys.readouterr().out


def test_devices_show_each_servers_version_and_release(portal, ca, monkeypatch, capsys,
                                                       cluster):
    cluster.update_node("portalnode", labels=node_labels.version_labels(
        "0.9.1", {"name": "notes", "version": "0.2.0"}))
    _login(monkeypatch, ca)
    capsys.readouterr()
    assert main(["devices", "--json"]) == 0
    running = {d["hostname"]: (d["version"], d["release"]) for d in _out(capsys)["devices"]}
    assert running == {"s1": ("0.9.1", {"name": "notes", "version": "0.2.0"}),
                       "node-2": (None, None)}   # enrolled, no node yet: unknown
    monkeypatch.setattr(remote_cli.console, "width", 200)   # no column folded
    assert main(["devices"]) == 0
    table = capsys.readouterr().out
    assert "version" in table and "release" in table
    s1 = next(line for line in table.splitlines() if " s1 " in line)
    assert "0.9.1" in s1 and "notes 0.2.0" in s1
    node2 = next(line for line in table.splitlines() if "node-2" in line)
    assert node2.count("unknown") == 2


def test_on_the_portal_as_root_status_needs_no_login(portal, store, tmp_path, monkeypatch,
                                                     capsys):
    """Issue 15: `dragonball status` on the portal, as root, said "not logged in". There,
    root reads the portal's settings and store (as `apply` does): the command makes a token
    of its own, in the audit log as root's, and ends it when it ends."""
    config = tmp_path / "portal.yaml"
    config.write_text("settings")
    monkeypatch.setattr(settings_mod, "CONFIG_FILE", str(config))
    settings = make_settings(tmp_path)
    settings = type(settings)(**{**settings.__dict__, "address": "portal.test"})
    monkeypatch.setattr(settings_mod, "load", lambda path: settings)
    closed = []
    monkeypatch.setattr("dragonball.portal.statelog.open_store", lambda s: store)
    monkeypatch.setattr(store, "close", lambda: closed.append(True))
    monkeypatch.setattr(remote_cli.os, "geteuid", lambda: 1000)
    assert main(["status", "--json"]) == 6      # not root: the login is still asked for
    assert "dragonball login" in _out(capsys)["hint"]
    monkeypatch.setattr(remote_cli.os, "geteuid", lambda: 0)
    assert main(["status", "--json"]) == 0
    assert _out(capsys)["devices"]["total"] == 2
    assert closed == [True]
    made = [e for e in store.events() if e["kind"] == "token.created"]
    assert made[0]["client"] == remote_cli.LOCAL_CLIENT   # newest first
    ended = [e for e in store.events() if e["kind"] == "token.ended"]
    assert ended and ended[0]["client"] == remote_cli.LOCAL_CLIENT   # over with the command


def test_a_stranger_is_shown_and_devices_remove_confirms_then_removes(
        portal, ca, monkeypatch, capsys, cluster, store):
    cluster.add("intruder", "evil")
    _login(monkeypatch, ca)
    capsys.readouterr()
    assert main(["devices", "--json"]) == 0
    assert [n["node_id"] for n in _out(capsys)["strangers"]] == ["intruder"]
    assert main(["status"]) == 0
    assert "stranger: node intruder (evil" in capsys.readouterr().out
    _stdin(monkeypatch, "")
    assert main(["devices", "remove", "node-2", "--json"]) == 2   # no terminal, no --yes
    assert "--yes" in _out(capsys)["hint"]
    _stdin(monkeypatch, "no\n", tty=True)
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    assert main(["devices", "remove", "node-2"]) == 0
    assert "nothing removed" in capsys.readouterr().out
    assert len(store.devices()) == 2
    assert main(["devices", "remove", "node-2", "--yes", "--json"]) == 0
    assert _out(capsys)["removed"]["name"] == "node-2"
    assert main(["devices", "remove", "intruder", "--yes"]) == 0
    assert "removed evil (node intruder)" in capsys.readouterr().out
    assert main(["devices", "remove", "nosuch", "--yes", "--json"]) == 3
    assert [d.hostname for d in store.devices()] == ["s1"] and cluster.removed == ["intruder"]


def test_status_counts_services_by_app():
    rows = [{"service": "a", "state": "healthy", "healthy": 1, "desired": 1},
            {"service": "b", "state": "down", "healthy": 0, "desired": 2}]
    summary = remote_cli.status_summary([{"state": "joined"}], {"notes": rows})
    assert summary["apps"]["notes"] == {
        "total": 2, "by_state": {"down": 1, "healthy": 1},
        "not_healthy": [{"service": "b", "state": "down", "healthy": 0, "desired": 2}]}


def test_status_says_which_slot_waits_for_which_server():
    rows = [{"service": "store-2", "state": "waiting", "healthy": 0, "desired": 1,
             "waiting": "s3"}]
    summary = remote_cli.status_summary([{"state": "joined"}], {"notes": rows})
    assert summary["apps"]["notes"]["not_healthy"] == [
        {"service": "store-2", "state": "waiting", "healthy": 0, "desired": 1, "waiting": "s3"}]


def test_enroll_remote_prints_what_local_enroll_prints(portal, ca, monkeypatch, capsys):
    _login(monkeypatch, ca)
    capsys.readouterr()
    assert main(["enroll", "--json", "--ttl", "1h"]) == 0  # no settings here: remote
    info = _out(capsys)
    assert set(info) == {"code", "expires", "expires_at", "ca_fingerprint", "portal",
                         "portal_url", "command", "command_line", "answers"}
    assert main(["enroll", "--remote", "--ttl", "1y"]) == 2
    assert main(["enroll", "--remote"]) == 0
    assert "Enrollment code:" in capsys.readouterr().out


def test_logout_ends_the_token_and_forgets_it(portal, ca, home, monkeypatch, capsys, store):
    _login(monkeypatch, ca)
    token = json.loads((home / "dragonball" / "portal.json").read_text())["token"]
    capsys.readouterr()
    assert main(["logout", "--json"]) == 0
    assert _out(capsys) == {"ok": True, "was_logged_in": True, "token_ended": True, "note": ""}
    assert store.session(token) is None
    assert not (home / "dragonball" / "portal.json").exists()
    assert main(["logout"]) == 0 and "not logged in" in capsys.readouterr().out


def _logged_in(home, app=None, monkeypatch=None):
    pl.save_login(pl.Login(URL, "/ca.crt", "t"), home / "dragonball" / "portal.json")
    if app is not None:
        return mount(monkeypatch, app)


def test_start_polls_the_job_printing_events_as_they_come(home, monkeypatch, capsys):
    _logged_in(home, apps_app(), monkeypatch)
    assert main(["start", "web"]) == 0
    out = capsys.readouterr().out
    assert out.index("web starting") < out.index("web healthy") < out.index("start done: web")
    assert main(["restart", "web", "--json"]) == 0
    answer = _out(capsys)
    assert answer["ok"] and answer["app"] == "notes" and answer["restart"] == ["web"]
    assert [e["state"] for e in answer["events"]] == ["starting", "healthy"]


def test_a_failed_job_exits_1_and_an_unknown_service_3(home, monkeypatch, capsys):
    _logged_in(home, apps_app(fail_jobs=True), monkeypatch)
    assert main(["stop", "web", "--json"]) == 1
    answer = _out(capsys)
    assert answer["error"] == "web failed its status check" and answer["exit_status"] == 1
    assert main(["stop", "nope"]) == 3  # NOT_FOUND, as the local command
    err = capsys.readouterr().err
    assert "no service nope in app notes" in err and "its services: store, web" in err


def test_services_and_the_only_app_or_app_needed(home, monkeypatch, capsys):
    _logged_in(home, apps_app(), monkeypatch)
    assert main(["services", "--json"]) == 0
    assert [r["service"] for r in _out(capsys)["services"]] == ["store", "web"]
    assert main(["services"]) == 0
    assert "degraded" in capsys.readouterr().out
    _logged_in(home, apps_app(apps=("a", "b")), monkeypatch)
    assert main(["services", "--json"]) == 2
    assert _out(capsys)["hint"] == "say which: --app NAME"


def test_params_get_and_set_typed_by_the_portals_types(home, monkeypatch, capsys):
    app = apps_app()
    _logged_in(home, app, monkeypatch)
    assert main(["params", "get", "web", "--json"]) == 0
    assert _out(capsys)["parameters"]["password"]["value"] == "********"
    assert main(["params", "set", "web", "workers=4", "title=007", "--unset", "x"]) == 0
    assert app.state.params_sent[-1] == {"set": {"workers": 4, "title": "007"},
                                         "unset": ["x"]}
    assert "config_change done" in capsys.readouterr().out
    sent = len(app.state.params_sent)
    assert main(["params", "set", "web", "workers=many", "--json"]) == 2
    assert _out(capsys)["problems"] == ["workers is an int: 'many' is not a whole number"]
    assert len(app.state.params_sent) == sent  # refused here, by the portal's types
    assert main(["params", "set", "web"]) == 2


def test_a_secret_parameter_from_stdin_or_a_file_never_on_the_command_line(
        home, tmp_path, monkeypatch, capsys):
    app = apps_app()
    _logged_in(home, app, monkeypatch)
    _stdin(monkeypatch, "s3cret=with=equals\n")
    assert main(["params", "set", "web", "workers=2", "--stdin", "password"]) == 0
    assert app.state.params_sent[-1]["set"] == {"password": "s3cret=with=equals", "workers": 2}
    assert "note:" not in capsys.readouterr().err
    secret = tmp_path / "title.txt"
    secret.write_text("from a file\n")
    assert main(["params", "set", "web", "--from-file", f"title={secret}"]) == 0
    assert app.state.params_sent[-1]["set"] == {"title": "from a file"}
    assert main(["params", "set", "web", "password=typed"]) == 0
    assert "password is a secret given on the command line" in capsys.readouterr().err
    sent = len(app.state.params_sent)
    assert main(["params", "set", "web", "--from-file", "title=/no/such", "--json"]) == 2
    assert "cannot read the file /no/such" in _out(capsys)["error"]
    assert main(["params", "set", "web", "--from-file", "title", "--json"]) == 2
    assert "give KEY=FILE" in _out(capsys)["error"]
    _stdin(monkeypatch, "x" * (2 << 20))
    assert main(["params", "set", "web", "--stdin", "title", "--json"]) == 2
    assert "over 64 KiB" in _out(capsys)["error"]
    assert len(app.state.params_sent) == sent


def test_plan_and_apply_send_the_spec_text(home, tmp_path, monkeypatch, capsys):
    adapter = _logged_in(home, apps_app(), monkeypatch)
    spec = tmp_path / "notes.app.yaml"
    spec.write_text("app: notes\nservices: {}\n")
    assert main(["plan", str(spec), "--remote", "--json"]) == 0
    assert _out(capsys)["summary"]["start"] == 1
    assert json.loads(adapter.sent[-1].body) == {"spec": spec.read_text(),
                                                 "file": "notes.app.yaml"}
    assert main(["apply", str(spec)]) == 0
    out = capsys.readouterr().out
    assert out.index("wave 1: start web") < out.index("web healthy") < out.index("applied")
    bad = tmp_path / "bad.yaml"
    bad.write_text("app: notes\n")
    assert main(["apply", str(bad), "--json"]) == 2
    assert _out(capsys)["problems"] == [{"path": "services", "message": "is missing"}]
    assert main(["apply", str(tmp_path / "missing.yaml")]) == 2


def test_logs_per_task(home, monkeypatch, capsys):
    _logged_in(home, apps_app(), monkeypatch)
    assert main(["logs", "web", "--tail", "2"]) == 0
    out = capsys.readouterr().out
    assert "== web.1 on node-a ==" in out and "line 1" in out and "line 2" not in out
    assert main(["logs", "web", "--tail", "0"]) == 2


def test_when_a_command_goes_remote_by_itself(tmp_path, home):
    def args(command, **kw):
        return types.SimpleNamespace(command=command, remote=False,
                                     config=settings_mod.CONFIG_FILE, **kw)
    environ = {"XDG_CONFIG_HOME": str(home)}
    assert not app_access.use_remote(args("services"), environ)  # no login
    _logged_in(home)
    assert app_access.use_remote(args("services"), environ)  # a login, no settings
    # plan follows the same rule (issue 15: on the portal it ignored the cluster); only
    # --offline or --observed make it a check of the spec alone (commands/spec.py)
    assert app_access.use_remote(args("plan"), environ)
    assert app_access.reaches_a_cluster(args("plan"), environ)
    assert app_access.use_remote(types.SimpleNamespace(command="plan", remote=True), environ)
    explicit = types.SimpleNamespace(command="services", remote=False,
                                     config=str(tmp_path / "other.yaml"))
    assert not app_access.use_remote(explicit, environ)  # --config FILE: local
    (tmp_path / "no.yaml").write_text("address: 10.0.0.1\n")  # settings readable here
    assert not app_access.use_remote(args("services"), environ)
    assert app_access.reaches_a_cluster(args("plan"), {"XDG_CONFIG_HOME": str(tmp_path)})



def test_the_app_commands_against_the_real_apps_api(home, tmp_path, monkeypatch, capsys):
    """portal/apps_api.py over the orchestrator's fakes, the notes app deployed."""
    from portal_apps_fakes import BASIC, make_portal
    made = make_portal(tmp_path)
    made.deploy()
    mount(monkeypatch, made.client.app)
    token = made.client.post("/api/v1/tokens", headers=BASIC, json={}).json()["token"]
    pl.save_login(pl.Login(URL, "/ca.crt", token), home / "dragonball" / "portal.json")
    try:
        assert main(["services", "--json"]) == 0
        assert {r["service"] for r in _out(capsys)["services"]} == {"web", "api", "store-1"}
        assert main(["restart", "api", "--json"]) == 0
        answer = _out(capsys)
        assert answer["ok"] and "api" in answer["restart"] and answer["events"]
        assert main(["params", "get", "api", "--json"]) == 0
        assert _out(capsys)["service"] == "api"
        assert main(["stop", "nope"]) == 3  # NOT_FOUND, as the local command
        assert "nope" in capsys.readouterr().err
        assert main(["logs", "api", "--json"]) == 0
        assert [t["task"] for t in _out(capsys)["tasks"]]
        assert main(["status", "--json"]) == 0
        assert _out(capsys)["apps"]["notes"]["total"] == 3
    finally:
        made.store.close()


def test_plan_with_a_login_whose_portal_is_gone_checks_the_spec_alone(home, ca, capsys):
    """A saved login to a portal that no longer answers does not stop `plan` from checking
    the spec (it says the portal did not answer); `--remote` still fails (exit 5)."""
    pl.save_login(pl.Login("https://127.0.0.1:1", ca, "t"), home / "dragonball" / "portal.json")
    spec = str(pathlib.Path(__file__).resolve().parents[2] / "examples" / "notes.app.yaml")
    assert main(["plan", spec]) == 0
    out = capsys.readouterr().out
    assert "the portal did not answer" in out and "checked alone" in out
    assert main(["plan", spec, "--remote"]) == 5
