"""The one KEY=VALUE parser (orchestrator.params.assignments), pure: the rules the CLI on
the portal, the CLI through the API and the pages' form share, and its messages."""

from __future__ import annotations

import pytest

from dragonball.commands.apps import spec_name
from dragonball.errors import ExitStatus
from dragonball.orchestrator import params
from dragonball.orchestrator.params import ParamsInvalid
from test_orchestrator_params import SERVICE

TYPES = {key: p.type for key, p in SERVICE.parameters.items()}


def parse(*texts: str) -> dict:
    return params.assignments("api", list(texts), TYPES)


def problems(*texts: str) -> list:
    with pytest.raises(ParamsInvalid) as caught:
        parse(*texts)
    return caught.value.problems


def test_each_value_takes_its_parameters_type():
    assert parse("greeting=007", "port=9000", "ratio=2", "debug=on", "hosts=x, y") == {
        "greeting": "007", "port": 9000, "ratio": 2.0, "debug": True, "hosts": ["x", "y"]}


@pytest.mark.parametrize("text, value", [
    ("greeting= Hello = world ", " Hello = world "),   # the first = splits; the rest is kept
    ("greeting=", ""), (" greeting =x", "x"),            # the key is stripped, not the value
])
def test_the_first_equals_sign_splits_and_the_value_stays_as_it_is(text, value):
    assert parse(text) == {"greeting": value}


@pytest.mark.parametrize("text, value", [
    ('hosts=["a", "b"]', ["a", "b"]), ("hosts=a,b,,c", ["a", "b", "c"]), ("hosts=", []),
    ("debug=FALSE", False), ("debug=1", True), ("ratio=0.25", 0.25), ("port=-1", -1)])
def test_lists_booleans_and_numbers(text, value):
    assert list(parse(text).values()) == [value]


def test_the_last_of_a_key_wins_and_nothing_is_nothing():
    assert parse("port=1", "port=2") == {"port": 2}
    assert parse() == {}


def test_every_problem_at_once_the_malformed_first():
    assert problems("port=abc", "colour=red", "noequals", "debug=perhaps", "=5") == [
        "'noequals': give KEY=VALUE", "'=5': give KEY=VALUE",
        "port is an int: 'abc' is not a whole number",
        "api has no parameter 'colour' (it has: debug, greeting, hosts, password, port, "
        "ratio)",
        "debug is a bool: give true or false, not 'perhaps'"]


def test_the_error_is_invalid_input_naming_the_service_and_what_to_run():
    with pytest.raises(ParamsInvalid) as caught:
        parse("port=x", "ratio=half")
    error = caught.value
    assert error.exit_status == ExitStatus.INVALID == 2
    assert error.message == ("api: port is an int: 'x' is not a whole number; "
                             "ratio is a float: 'half' is not a number")
    assert error.hint == "see its parameters: dragonball params get api"


def test_a_type_it_does_not_know_is_a_problem_not_a_guess():
    with pytest.raises(ParamsInvalid, match="a type this command does not know: 'integer'"):
        params.assignments("web", ["workers=4"], {"workers": "integer"})


def test_the_pages_form_follows_the_same_rules():
    texts = ["greeting=007", "port=9000", "debug=yes", "hosts=x,y"]
    assert params.edit("api", SERVICE, {}, texts) == parse(*texts)
    with pytest.raises(ParamsInvalid) as caught:
        params.edit("api", SERVICE, {}, ["port=abc", "noequals"])
    assert caught.value.problems == problems("port=abc", "noequals")


@pytest.mark.parametrize("path, name", [
    ("/root/notes.app.yaml", "notes.app.yaml"), ("my spec (2).yaml", "my_spec__2_.yaml"),
    ("/tmp/.hidden.yaml", "hidden.yaml"), ("/tmp/...", "spec.yaml"),
    ("x" * 150 + ".yaml", "x" * 100)])
def test_a_spec_is_known_on_the_portal_by_a_safe_file_name(path, name):
    assert spec_name(path) == name
