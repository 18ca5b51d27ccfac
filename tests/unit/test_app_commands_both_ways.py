"""Each app command through both transports of commands/app_access.py, against equivalent
fakes: LocalApps over a Control on the orchestrator's fakes, and RemoteApps through the real
apps API (portal/apps_api.py, FastAPI's TestClient as the transport) over a Control on the
same kind of fakes, the notes app deployed on each. Same argv, same stdout (times masked),
same --json document (event times dropped), same exit status."""

from __future__ import annotations

import json
import re

import pytest

from dragonball import portal_login as pl
from dragonball.cli import main
from dragonball.commands import apps_local
from dragonball.commands.apps_local import LocalApps
from dragonball.swarm import SwarmError
from dragonball.orchestrator.state import AppStore
from dragonball.portal import settings as settings_mod
from portal_apps_fakes import BASIC, NOTES, make_portal
from portal_client_fakes import URL, mount

TRANSPORTS = ("local", "remote")


class Both:
    """Two portals, one per transport, each with the notes app deployed; `run` gives each
    command to both and returns what each printed and how it ended."""

    def __init__(self, tmp_path, monkeypatch, capsys) -> None:
        self.capsys, self.login = capsys, tmp_path / "config" / "dragonball" / "portal.json"
        self.portals = {}
        for name in TRANSPORTS:
            (tmp_path / name).mkdir()
            self.portals[name] = made = make_portal(tmp_path / name)
            made.deploy()
            made.agents.logs_of.update({"c-api-1": ["api 1 is up", "[markup] stays"],
                                        "c-api-2": ["api 2 is up"]})
            _notified(AppStore(made.store))
        local = self.portals["local"]
        monkeypatch.setattr(apps_local, "open_local", lambda args: LocalApps(local.control()))
        mount(monkeypatch, self.portals["remote"].client.app)
        answer = self.portals["remote"].client.post("/api/v1/tokens", headers=BASIC, json={})
        self.token = answer.json()["token"]

    def each(self, change) -> None:
        """The same change to both portals' fakes."""
        for made in self.portals.values():
            change(made)

    def run(self, *argv: str) -> dict:
        """transport -> (exit status, stdout, stderr), times masked."""
        found = {}
        for name in TRANSPORTS:
            if name == "remote":  # a login here, no portal settings: the API
                pl.save_login(pl.Login(URL, "/ca.crt", self.token), self.login)
            else:
                self.login.unlink(missing_ok=True)
            status = main(list(argv))
            out, err = self.capsys.readouterr()
            found[name] = (int(status), _masked(out), _masked(err))
        return found

    def same(self, *argv: str) -> tuple:
        """(exit status, stdout, stderr), asserted the same through both transports."""
        found = self.run(*argv)
        assert found["local"] == found["remote"], argv
        return found["local"]

    def close(self) -> None:
        for made in self.portals.values():
            made.gate.set()
            made.store.close()


def _notified(store: AppStore) -> None:
    """web told twice of api: once delivered, once refused (pending)."""
    store.record_changes("notes", {}, [("web", {"service": "api", "event": "healthy"}),
                                       ("web", {"service": "api", "event": "unhealthy"})])
    first, second = sorted(r["id"] for r in store.notifications("notes"))
    store.delivered(first)
    store.failed(second, "config_change exited 1")


def _masked(text: str) -> str:
    """Times (event lines, "in 0.4 s", "t": 0.12) masked: they differ from run to run."""
    text = re.sub(r"\d+\.\d+ ?s\b", "T s", text)
    return re.sub(r'"t": [0-9.]+', '"t": 0', text)


@pytest.fixture
def both(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setattr(settings_mod, "CONFIG_FILE", str(tmp_path / "no-settings.yaml"))
    made = Both(tmp_path, monkeypatch, capsys)
    yield made
    made.close()


def _json(result: tuple) -> dict:
    return json.loads(result[1])


READS = [("services",), ("services", "--json"), ("params", "get", "api"),
         ("params", "get", "api", "--json"), ("logs", "api", "--tail", "5"),
         ("logs", "api", "--json"), ("notifications",), ("notifications", "--json"),
         ("services", "--app", "notes", "--json"), ("images", "where"),
         ("images", "where", "--json")]


@pytest.mark.parametrize("argv", READS, ids=" ".join)
def test_reads_print_the_same(both, argv):
    status, out, _ = both.same(*argv)
    assert status == 0 and out
    assert any(word in out for word in ("api", "web")), out


@pytest.mark.parametrize("argv, status", [
    (("services", "--app", "nope"), 3), (("services", "--app", "nope", "--json"), 3),
    (("stop", "nope"), 3), (("restart", "nope", "--json"), 3),
    (("params", "get", "nope", "--json"), 3), (("logs", "nope"), 3),
    (("params", "set", "api", "store_port=many", "nope=1", "--json"), 2),
    (("params", "set", "api", "store_port=many"), 2), (("params", "set", "api"), 2),
    (("params", "set", "api", "--unset", "nope", "--json"), 2),
    (("logs", "api", "--tail", "0"), 2), (("notifications", "--limit", "0", "--json"), 2),
], ids=lambda v: " ".join(v) if isinstance(v, tuple) else str(v))
def test_errors_end_the_same(both, argv, status):
    found, out, err = both.same(*argv)
    assert found == status and (out or err)


def test_params_set_then_get(both):
    status, out, _ = both.same("params", "set", "api", "greeting=Hi there", "store_port=6380",
                               "--json")
    assert status == 0 and _json((status, out))["ok"]
    shown = _json(both.same("params", "get", "api", "--json"))
    assert shown["parameters"]["greeting"]["value"] == "Hi there"
    assert shown["parameters"]["store_port"]["value"] == 6380
    assert both.same("params", "set", "api", "--unset", "greeting")[0] == 0


def test_a_task_that_refuses_its_parameters_exits_1_both_ways(both):
    def refuse(made):
        for container in ("c-api-1", "c-api-2"):
            made.agents.answers[container] = {"exit_code": 1, "output": "greeting refused",
                                              "report": {"ok": False, "scripts": []}}
    both.each(refuse)
    status, out, _ = both.same("params", "set", "api", "greeting=x", "--json")
    assert status == 1 and not _json((status, out))["ok"]


@pytest.mark.parametrize("verb", ["stop", "start", "restart"])
def test_lifecycle_prints_the_same_events(both, verb):
    status, out, _ = both.same(verb, "web")
    assert status == 0 and f"{verb} done" in out
    status, out, _ = both.same(verb, "api", "--json")
    document = _json((status, out))
    assert status == 0 and document["ok"] and document["app"] == "notes" and verb in document


def test_a_failed_rollout_exits_1_with_where_and_why(both):
    def fail(made):
        made.engine.failing["notes_web"] = "task: non-zero exit (1)"
    both.each(fail)
    status, out, _ = both.same("restart", "web", "--json")
    document = _json((status, out))
    assert status == 1 and document["exit_status"] == 1 and document["service"] == "web"
    assert both.same("restart", "web")[0] == 1


def test_an_engine_that_does_not_answer_exits_5_both_ways(both):
    def down(made):
        def nodes():
            raise SwarmError("the engine at /var/run/docker.sock does not answer", "start it")
        made.engine.nodes = nodes
    both.each(down)
    status, out, _ = both.same("services", "--json")
    assert status == 5 and _json((status, out))["hint"] == "start it"


def test_apply_dry_run_apply_and_an_invalid_spec(both, tmp_path):
    spec = tmp_path / "notes.app.yaml"
    spec.write_text(NOTES.replace("replicas: 2", "replicas: 3"))
    status, out, _ = both.same("apply", str(spec), "--dry-run")
    assert status == 0 and "change" in out
    status, out, _ = both.same("apply", str(spec), "--json")
    document = _json((status, out))
    assert status == 0 and document["applied"] and document["events"]
    assert both.same("apply", str(spec))[0] == 0
    bad = tmp_path / "bad.app.yaml"
    bad.write_text(NOTES.replace("depends_on: [store]", "depends_on: [web]"))
    status, out, _ = both.same("apply", str(bad), "--json")
    assert status == 2 and "problems" in _json((status, out))
    status, _, err = both.same("apply", str(bad))
    assert status == 2 and "bad.app.yaml" in err
    assert both.same("apply", str(tmp_path / "missing.yaml"), "--json")[0] == 2


def test_no_app_applied_or_several(both):
    def forget(made):
        AppStore(made.store).forget_app("notes")
    both.each(forget)
    status, out, _ = both.same("services", "--json")
    assert status == 3 and _json((status, out))["error"] == "no app is applied yet"


def test_each_transport_is_the_one_taken(both, monkeypatch):
    """The local run makes no HTTP call; the remote one makes its calls through the API."""
    adapter = mount(monkeypatch, both.portals["remote"].client.app)
    found = both.run("restart", "api", "--json")
    assert [r.path_url for r in adapter.sent][:2] == [
        "/api/v1/apps", "/api/v1/apps/notes/services/api/restart"]
    local, remote = (both.portals[name].engine.mutations() for name in TRANSPORTS)
    assert local == remote and ("scale", "notes_api", 0) in local
    assert found["local"][0] == found["remote"][0] == 0


def test_params_before_the_first_apply_with_its_spec(both, tmp_path):
    """Issue 15: a secret could not be set before the first apply ("the portal has no app
    'wiki'"). With --spec, the values are checked against the spec the app will be applied
    with and kept; the first apply starts its tasks with them."""
    spec = tmp_path / "later.app.yaml"
    spec.write_text(NOTES.replace("app: notes", "app: later", 1))
    status, _, err = both.same("params", "set", "api", "greeting=x", "--app", "later")
    assert status == 3 and "--spec SPEC" in err           # not applied: how to do it
    status, out, _ = both.same("params", "set", "api", "store_port=abc", "--spec", str(spec))
    assert status == 2 and "store_port" in out + _ and "whole number" in out + _
    status, out, _ = both.same("params", "set", "nope", "a=1", "--spec", str(spec))
    assert status == 3
    status, out, _ = both.same("params", "set", "api", "greeting=Early", "store_port=6390",
                               "--spec", str(spec), "--json")
    answer = _json((status, out))
    assert status == 0 and answer["ok"] and answer["tasks"] == [] and not answer["restored"]
    for made in both.portals.values():
        assert AppStore(made.store).params("later", "api")[1] == \
            {"greeting": "Early", "store_port": 6390}
        assert "later" not in AppStore(made.store).apps()     # kept, nothing applied


def test_remove_an_app_both_ways(both, monkeypatch):
    """`dragonball remove APP`: confirmed (--yes, or 'yes' on a terminal), then its
    services, network, folders and record gone, its volumes kept and listed by server
    and name; the other app's commands work again."""
    both.each(lambda made: setattr(made.agents, "held", {"10.0.0.1": ["notes_store-1_data"]}))
    status, out, err = both.same("remove", "notes")        # no terminal, no --yes
    assert status == 2 and "--yes" in out + err
    status, out, err = both.same("remove", "nope", "--yes")
    assert status == 3 and "nope" in out + err and "applied: notes" in out + err
    status, out, _ = both.same("remove", "notes", "--yes", "--json")
    done = _json((status, out))
    assert status == 0 and done["app"] == "notes" and "notes_api" in done["services"]
    assert done["kept"] == [{"server": "node-a", "name": "notes_store-1_data"}]
    assert done["volumes"] == [] and done["purge_data"] is False
    for made in both.portals.values():
        assert AppStore(made.store).apps() == []
        assert not [s for s in made.engine.services() if s.name.startswith("notes_")]
        assert made.agents.held == {"10.0.0.1": ["notes_store-1_data"]}
    status, out, err = both.same("services")              # no app any more: said so
    assert status == 3 and "no app" in (out + err).lower(), out + err


def test_remove_says_each_volume_it_kept(both):
    both.each(lambda made: setattr(made.agents, "held", {"10.0.0.1": ["notes_store-1_data"]}))
    status, out, _ = both.same("remove", "notes", "--yes", "--keep-data")   # the old flag
    assert status == 0 and "kept its data, 1 volume(s)" in out
    assert "notes_store-1_data on node-a" in out and "volumes rm NAME --on SERVER" in out


@pytest.mark.parametrize("argv", [("--purge-data", "note"), ("--purge-data", ""),
                                  ("--purge-data",), ("--purge-data", "Notes", "--yes")],
                         ids=" ".join)
def test_purge_data_without_the_name_typed_again_changes_nothing(both, argv):
    both.each(lambda made: setattr(made.agents, "held", {"10.0.0.1": ["notes_store-1_data"]}))
    status, out, err = both.same("remove", "notes", *argv)
    assert status == 2 and "--purge-data notes" in out + err, out + err
    for made in both.portals.values():
        assert AppStore(made.store).apps() == ["notes"]
        assert made.agents.held == {"10.0.0.1": ["notes_store-1_data"]}


def test_purge_data_with_the_name_typed_again_deletes_the_volumes_too(both):
    both.each(lambda made: setattr(made.agents, "held", {"10.0.0.1": ["notes_store-1_data"]}))
    status, out, _ = both.same("remove", "notes", "--purge-data", "notes", "--json")
    done = _json((status, out))
    assert status == 0 and done["purge_data"] is True and done["kept"] == []
    assert done["volumes"] == [{"server": "node-a", "name": "notes_store-1_data"}]
    for made in both.portals.values():
        assert made.agents.held == {"10.0.0.1": []} and AppStore(made.store).apps() == []


def test_the_api_refuses_another_name_before_any_job(both):
    client = both.portals["remote"].client
    headers = {"Authorization": f"Bearer {both.token}"}
    answer = client.delete("/api/v1/apps/notes", params={"purge_data": "wiki"},
                           headers=headers)
    assert answer.status_code == 422 and "'wiki'" in answer.json()["error"]
    assert client.delete("/api/v1/apps/nope", params={"purge_data": "nope"},
                         headers=headers).status_code == 404
    assert AppStore(both.portals["remote"].store).apps() == ["notes"]


@pytest.mark.parametrize("argv", [
    ("services", "--app", "nope"), ("params", "get", "api", "--app", "nope"),
    ("params", "set", "api", "greeting=x", "--app", "nope"), ("logs", "api", "--app", "nope"),
    ("stop", "api", "--app", "nope"), ("notifications", "--app", "nope"),
    ("remove", "nope", "--yes"), ("move", "store.1", "--to", "node-b", "--app", "nope"),
], ids=" ".join)
def test_an_unknown_app_is_named_with_the_apps_there_are(both, argv):
    """Issue 15: every command that needs an app says which apps exist when it is given
    an unknown one (exit 3), the same on both paths."""
    status, out, err = both.same(*argv)
    assert status == 3 and "'nope'" in out + err and "applied: notes" in out + err, out + err


def test_plan_on_the_portal_checks_against_the_cluster(both, tmp_path, capsys):
    """Issue 15: `plan` on the portal accepted a missing image (apply's hint says to re-run
    plan). Where a portal is at hand it now plans against the cluster, as apply --dry-run;
    --offline is the check of the spec alone, which says so."""
    spec = tmp_path / "notes.app.yaml"
    spec.write_text(NOTES.replace("image: notes/api:0.1.0", "image: notes/api:9.9.9", 1))
    for name in ("local", "remote"):
        if name == "local":      # root on the portal: its settings readable here
            both.login.unlink(missing_ok=True)
            (tmp_path / "no-settings.yaml").write_text("settings")
        else:                    # logged in from elsewhere
            (tmp_path / "no-settings.yaml").unlink()
            pl.save_login(pl.Login(URL, "/ca.crt", both.token), both.login)
        assert main(["plan", str(spec)]) == 2, name
        out, err = capsys.readouterr()
        assert "notes/api:9.9.9" in out + err, (name, out + err)
        assert main(["plan", str(spec), "--offline"]) == 0, name
        assert "not against a cluster" in capsys.readouterr().out


def test_a_value_shared_by_two_services_is_set_once(both):
    """Issue 15: a secret shared by two services had to be set twice. NAME may list them:
    each service's types checked before either is set."""
    status, out, err = both.same("params", "set", "api,web", "greeting=x")   # web has none
    assert status == 2 and "greeting" in out + err
    for made in both.portals.values():
        assert AppStore(made.store).params("notes", "api")[1] == {}        # nothing set
    status, out, _ = both.same("params", "set", "api,web", "listen_port=8090", "--json")
    answer = _json((status, out))
    assert status == 0 and answer["ok"] and answer["service"] == "api,web"
    assert {t["service"] for t in answer["tasks"]} == {"api", "web"}
    for made in both.portals.values():
        for name in ("api", "web"):
            assert AppStore(made.store).params("notes", name)[1] == {"listen_port": 8090}
