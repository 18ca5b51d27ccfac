"""Parameters on the portal (pure): typed values from the command line, edits that change
nothing unless every assignment is valid, the values in force, masked secrets."""

from __future__ import annotations

import pytest

from dragonball.app.model import Parameter, ServiceSpec, SharedParameter
from dragonball.orchestrator import params
from dragonball.orchestrator.params import MASK, ParamsInvalid

SERVICE = ServiceSpec.model_validate({"kind": "backend", "image": "notes/api:0.1.0",
                                      "parameters": {
                                          "greeting": {"type": "string", "default": "hi"},
                                          "port": {"type": "int", "default": 8080},
                                          "ratio": {"type": "float", "default": 0.5},
                                          "debug": {"type": "bool", "default": False},
                                          "hosts": {"type": "list", "default": ["a"]},
                                          "password": {"type": "string", "default": "",
                                                       "secret": True}}})


def p(kind: str) -> Parameter:
    return SERVICE.parameters[{"string": "greeting", "int": "port", "float": "ratio",
                               "bool": "debug", "list": "hosts"}[kind]]


# -- coerce ----------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["true", "True", "YES", "on", "1", " true "])
def test_bool_true_words(text):
    assert params.coerce("debug", p("bool"), text) is True


@pytest.mark.parametrize("text", ["false", "No", "OFF", "0"])
def test_bool_false_words(text):
    assert params.coerce("debug", p("bool"), text) is False


@pytest.mark.parametrize("text", ["maybe", "", "2", "y"])
def test_bool_refuses_other_words(text):
    with pytest.raises(ValueError) as caught:
        params.coerce("debug", p("bool"), text)
    assert str(caught.value) == f"debug is a bool: give true or false, not {text!r}"


@pytest.mark.parametrize("text, value", [("8081", 8081), ("-3", -3), (" 42 ", 42)])
def test_int(text, value):
    assert params.coerce("port", p("int"), text) == value


@pytest.mark.parametrize("text", ["8080.0", "eighty", "", "0x10", "1e3"])
def test_bad_ints(text):
    with pytest.raises(ValueError) as caught:
        params.coerce("port", p("int"), text)
    assert str(caught.value) == f"port is an int: {text!r} is not a whole number"


def test_float():
    assert params.coerce("ratio", p("float"), "0.25") == 0.25
    assert params.coerce("ratio", p("float"), "2") == 2.0
    with pytest.raises(ValueError, match="ratio is a float: 'half' is not a number"):
        params.coerce("ratio", p("float"), "half")


def test_string_is_kept_as_given():
    assert params.coerce("greeting", p("string"), " Hello = world ") == " Hello = world "


@pytest.mark.parametrize("text, value", [
    ('["api:8080", "api2:8080"]', ["api:8080", "api2:8080"]),
    ("[1, true, null]", [1, True, None]),
    ("[]", []),
    ("api:8080, api2:8080", ["api:8080", "api2:8080"]),
    ("one", ["one"]),
    (" a ,, b ,", ["a", "b"]),
    ("", [])])
def test_list_as_json_or_comma_list(text, value):
    assert params.coerce("hosts", p("list"), text) == value


def test_list_with_bad_json():
    with pytest.raises(ValueError) as caught:
        params.coerce("hosts", p("list"), '["a", ')
    assert str(caught.value).startswith("hosts is a list: '[\"a\", ' is not a JSON list")


# -- edit ------------------------------------------------------------------------------
def test_edit_sets_typed_values_over_the_current_ones():
    values = params.edit("api", SERVICE, {"greeting": "yo"},
                         ["port=9000", "debug=yes", "hosts=x,y", "ratio=1.5"])
    assert values == {"greeting": "yo", "port": 9000, "debug": True, "hosts": ["x", "y"],
                      "ratio": 1.5}


def test_edit_keeps_an_equals_sign_in_the_value():
    assert params.edit("api", SERVICE, {}, ["greeting=a=b"]) == {"greeting": "a=b"}


def test_edit_collects_every_problem_and_changes_nothing():
    current = {"greeting": "yo"}
    with pytest.raises(ParamsInvalid) as caught:
        params.edit("api", SERVICE, current, ["port=abc", "greeting=fine", "colour=red",
                                              "debug=perhaps", "noequals"], unset=["nope"])
    message = caught.value.message
    assert message.startswith("api: ")
    assert "port is an int: 'abc' is not a whole number" in message
    assert "debug is a bool" in message
    assert "api has no parameter 'colour' (it has: debug, greeting, hosts, password, " \
           "port, ratio)" in message
    assert "api has no parameter 'nope'" in message
    assert "'noequals': give KEY=VALUE" in message
    assert message.count("; ") == 4
    assert "dragonball params get api" in caught.value.hint
    assert current == {"greeting": "yo"}   # not touched


def test_unset_returns_to_the_default():
    current = {"greeting": "yo", "port": 9000}
    values = params.edit("api", SERVICE, current, [], unset=["greeting", "debug"])
    assert values == {"port": 9000}
    assert current == {"greeting": "yo", "port": 9000}
    assert params.in_force(SERVICE, values)["greeting"] == "hi"


def test_a_service_without_parameters_says_so():
    bare = ServiceSpec.model_validate({"kind": "backend", "image": "x/y:1"})
    with pytest.raises(ParamsInvalid, match=r"it has: none"):
        params.edit("y", bare, {}, ["a=1"])


# -- in force, shown -------------------------------------------------------------------
def test_in_force_is_defaults_overlaid_with_values_set():
    assert params.in_force(SERVICE, {"port": 1}) == {
        "greeting": "hi", "port": 1, "ratio": 0.5, "debug": False, "hosts": ["a"],
        "password": ""}


def test_in_force_drops_keys_the_spec_no_longer_has():
    assert "gone" not in params.in_force(SERVICE, {"gone": 1, "port": 2})


def test_shown_masks_secrets_that_are_set():
    values = params.in_force(SERVICE, {"password": "s3cret"})
    assert params.shown(SERVICE, values)["password"] == MASK
    assert params.shown(SERVICE, values)["greeting"] == "hi"
    assert "s3cret" not in repr(params.shown(SERVICE, values))


def test_shown_leaves_an_empty_secret_visible_as_empty():
    assert params.shown(SERVICE, {"password": ""}) == {"password": ""}


def test_shown_keeps_keys_the_spec_does_not_know():
    assert params.shown(SERVICE, {"other": "x"}) == {"other": "x"}


# -- a shared parameter a service takes ------------------------------------------------
TAKER = SERVICE.model_copy(update={"parameters": {
    **SERVICE.parameters, "db_password": SharedParameter(type="string", default="",
                                                         secret=True, shared="db_pw")}})


def test_in_force_takes_a_shared_parameter_from_the_shared_values_only():
    assert params.in_force(TAKER, {"db_password": "its own, from before"})["db_password"] == ""
    assert params.in_force(TAKER, {}, {"db_pw": "s3cret"})["db_password"] == "s3cret"
    assert params.in_force(TAKER, {"port": 1}, {"db_pw": "x"})["port"] == 1


def test_a_shared_parameter_is_not_set_or_unset_for_one_service():
    for assignments, unset in ((["db_password=x", "port=1"], []), ([], ["db_password"])):
        with pytest.raises(ParamsInvalid) as caught:
            params.edit("api", TAKER, {}, assignments, unset)
        assert caught.value.problems == [
            "api's db_password is the shared parameter 'db_pw': set it once for every "
            "service taking it with: dragonball params set @shared db_pw=..."]
