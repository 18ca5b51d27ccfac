"""Parameters: merge rules, PARAM_ variables, private atomic persistence."""

from __future__ import annotations

import json
import stat

import pytest

from dragonball.errors import ParamsError
from dragonball.supervisor.params import (
    ParamStore, PortalParamStore, merge, open_store, parse, to_env, write_private)


def test_merge_overlays_and_null_removes():
    assert merge({"a": 1, "b": 2}, {"b": 3, "c": 4}) == {"a": 1, "b": 3, "c": 4}
    assert merge({"a": 1, "b": 2}, {"a": None}) == {"b": 2}


def test_replace_drops_what_is_not_given():
    assert merge({"a": 1, "b": 2}, {"c": 3, "d": None}, replace=True) == {"c": 3}


def test_env_has_scalars_only_with_safe_names():
    env = to_env({"port": 8080, "Store-Host": "db", "tls": True, "ratio": 0.5,
                  "list": [1], "nested": {"x": 1}})
    assert env == {"PARAM_PORT": "8080", "PARAM_STORE_HOST": "db", "PARAM_TLS": "true",
                   "PARAM_RATIO": "0.5"}


@pytest.mark.parametrize("text, fragment", [("{", "not valid JSON"), ("[1]", "JSON object")])
def test_bad_parameters_say_where_they_came_from(text, fragment):
    with pytest.raises(ParamsError) as err:
        parse(text, "standard input")
    assert fragment in str(err.value) and "standard input" in str(err.value)


def test_written_parameters_are_private_and_complete(tmp_path):
    path = tmp_path / "state" / "params.json"
    write_private(str(path), {"password": "s3cret"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {"password": "s3cret"}
    assert [p.name for p in path.parent.iterdir()] == ["params.json"]  # no temp file left


def test_persisted_parameters_win_over_initial_ones(tmp_path):
    store = ParamStore(str(tmp_path), {"DRAGONBALL_PARAMS": '{"a": 1, "b": 1}'})
    assert store.in_force() == {"a": 1, "b": 1}
    store.save({"b": 2, "c": 3})
    assert ParamStore(str(tmp_path), {"DRAGONBALL_PARAMS": '{"a": 1, "b": 1}'}).in_force() == \
        {"a": 1, "b": 2, "c": 3}


def test_invalid_initial_parameters_name_the_variable(tmp_path):
    with pytest.raises(ParamsError, match=r"\$DRAGONBALL_PARAMS"):
        ParamStore(str(tmp_path), {"DRAGONBALL_PARAMS": "nope"}).in_force()


def test_initial_parameters_can_come_from_a_file_kept_out_of_the_environment(tmp_path):
    secret = tmp_path / "params.json"
    secret.write_text('{"password": "from-file"}')
    store = ParamStore(str(tmp_path / "storage"), {"DRAGONBALL_PARAMS_FROM": str(secret),
                                                   "DRAGONBALL_PARAMS": '{"password": "env"}'})
    assert store.in_force() == {"password": "from-file"}
    with pytest.raises(ParamsError, match="DRAGONBALL_PARAMS_FROM"):
        ParamStore(str(tmp_path), {"DRAGONBALL_PARAMS_FROM": str(tmp_path / "nope")}).initial()


def test_portal_owned_parameters_start_from_the_file_then_follow_the_record(tmp_path):
    initial = tmp_path / "portal.json"
    initial.write_text('{"a": 1}')
    env = {"DRAGONBALL_PARAMS_OWNER": "portal", "DRAGONBALL_PARAMS_FROM": str(initial)}
    store = open_store(str(tmp_path / "storage"), str(tmp_path / "run"), env)
    assert isinstance(store, PortalParamStore)
    assert store.in_force() == store.at_start() == {"a": 1}
    assert store.current_file() == str(initial)
    write_private(str(tmp_path / "run" / "params.json"), {"a": 2})  # what the supervisor applied
    initial.write_text('{"a": 3}')  # the portal's next file, for the next container
    assert store.in_force() == {"a": 2} and store.at_start() == {"a": 3}
    assert store.current_file() == str(tmp_path / "run" / "params.json")
    store.save({"a": 4})
    assert not (tmp_path / "storage").exists()


def test_the_module_owns_its_parameters_unless_told_otherwise(tmp_path):
    assert type(open_store(str(tmp_path), str(tmp_path / "run"), {})) is ParamStore
    with pytest.raises(ParamsError, match="DRAGONBALL_PARAMS_OWNER"):
        open_store(str(tmp_path), str(tmp_path / "run"), {"DRAGONBALL_PARAMS_OWNER": "me"})
