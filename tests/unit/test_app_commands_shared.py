"""`dragonball params get|set @shared` through both transports (the fixture of
test_app_commands_both_ways: LocalApps on the portal, RemoteApps through the real API): a
shared value set once reaches every service taking it, a refusal in any of them restores it
everywhere (exit 1), a service cannot set its shared key alone (exit 2), `get` says who
takes each, and a shared secret can be set before the first apply with `--spec`."""

from __future__ import annotations

import pytest

from dragonball.orchestrator.state import AppStore
from dragonball.portal import settings as settings_mod
from test_app_commands_both_ways import Both, _json
from test_orchestrator_shared_params import REFUSE, SHARED_NOTES

STORE_TASK = "c-notes_store-1-1"   # the store's one slot, as the fake Swarm names its task


@pytest.fixture
def both(tmp_path, monkeypatch, capsys):
    """A portal per transport, each with the notes app deployed (test_app_commands_both_ways)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setattr(settings_mod, "CONFIG_FILE", str(tmp_path / "no-settings.yaml"))
    made = Both(tmp_path, monkeypatch, capsys)
    yield made
    made.close()


def shared_values(made, app: str = "notes") -> dict:
    return AppStore(made.store).params(app, "@shared")[1]


def test_set_once_reaches_the_api_and_the_store(both):
    both.each(lambda made: made.deploy(SHARED_NOTES))
    status, out, err = both.same("params", "set", "@shared", "store_password=s3cret", "--json")
    answer = _json((status, out))
    assert status == 0 and answer["ok"] and answer["service"] == "@shared"
    assert [(t["service"], t["task"]) for t in answer["tasks"]] == [
        ("store", "store.1"), ("api", "api.1"), ("api", "api.2")]   # needed first
    assert "store_password is a secret given on the command line" in err
    for made in both.portals.values():
        assert shared_values(made) == {"store_password": "s3cret"}
        given = {c[2]: c[4] for c in made.agents.named("exec")}
        assert given["c-api-1"]["store_password"] == given[STORE_TASK]["password"] == "s3cret"


def test_a_refusal_by_the_store_restores_the_value_in_every_service(both):
    both.each(lambda made: made.deploy(SHARED_NOTES))
    assert both.same("params", "set", "@shared", "store_password=old")[0] == 0
    both.each(lambda made: made.agents.answers.__setitem__(STORE_TASK, REFUSE))
    status, out, _ = both.same("params", "set", "@shared", "store_password=new", "--json")
    answer = _json((status, out))
    assert status == 1 and answer["restored"] and not answer["ok"]
    assert [t["detail"] for t in answer["tasks"] if t["refused"]] == [
        "2_auth.sh exited 3: the store refuses this password"]
    for made in both.portals.values():
        assert shared_values(made) == {"store_password": "old"}
        last = {c[2]: c[4] for c in made.agents.named("exec")}
        assert last["c-api-2"]["store_password"] == last[STORE_TASK]["password"] == "old"


def test_get_shows_who_takes_a_shared_value_and_what_a_service_takes(both):
    both.each(lambda made: made.deploy(SHARED_NOTES))
    status, out, _ = both.same("params", "get", "@shared")   # folded at 80 columns
    assert status == 0 and "used by" in out and "api.store_passwo" in out and "nobody" in out
    found = _json(both.same("params", "get", "@shared", "--json"))["parameters"]
    assert found["store_password"]["used_by"] == ["api.store_password", "store.password",
                                                  "migrate.pw"]
    status, out, _ = both.same("params", "get", "api")
    assert status == 0 and "@shared" in out and "params set @shared KEY=VALUE" in out
    found = _json(both.same("params", "get", "api", "--json"))["parameters"]
    assert found["store_password"]["shared"] == "store_password"
    assert "shared" not in found["greeting"]


def test_a_service_does_not_set_its_shared_key_nor_with_shared_together(both):
    both.each(lambda made: made.deploy(SHARED_NOTES))
    status, out, err = both.same("params", "set", "api", "store_password=x")
    assert status == 2 and "params set @shared store_password=" in out + err
    status, out, err = both.same("params", "set", "api,@shared", "greeting=x")
    assert status == 2 and "@shared is set alone, not with api" in out + err
    status, out, err = both.same("params", "set", "@shared", "nope=1")
    assert status == 2 and "@shared has no parameter 'nope'" in out + err
    for made in both.portals.values():
        assert shared_values(made) == {} and made.agents.named("exec") == []


def test_a_shared_secret_before_the_first_apply(both, tmp_path):
    spec = tmp_path / "later.app.yaml"
    spec.write_text(SHARED_NOTES.replace("app: notes", "app: later", 1))
    status, out, _ = both.same("params", "set", "@shared", "store_password=Early",
                               "--spec", str(spec), "--json")
    answer = _json((status, out))
    assert status == 0 and answer["ok"] and answer["tasks"] == []
    for made in both.portals.values():
        assert shared_values(made, "later") == {"store_password": "Early"}
        assert "later" not in AppStore(made.store).apps()
