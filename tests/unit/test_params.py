"""Parameters: merge rules, PARAM_ variables, private atomic persistence."""

from __future__ import annotations

import json
import stat

import pytest

from dragonball.errors import ParamsError
from dragonball.supervisor.params import ParamStore, merge, parse, to_env, write_private


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
