"""Parameters of an app's services (pure): the values in force, typed edits, masking.

In force = the spec's defaults, overlaid with the values set on the portal
(`dragonball params set`); a shared parameter a service takes (`{shared: NAME}`) is the
app's one value of NAME (`params set @shared NAME=...`), never one of its own. Values set
are checked against the types the spec declares; secret values are never printed (`shown`).
"""

from __future__ import annotations

import json
import math

from dragonball.app.model import SHARED, Parameter, ServiceSpec, SharedParameter
from dragonball.errors import AppError, Failed, InvalidInput

MASK = "********"
MAX_TEXT = 64 * 1024  # one value given as text (docs/security.md, "Hostile input")


class ParamsInvalid(AppError, InvalidInput):
    """Values given for a service's parameters do not fit the spec: every problem listed
    (one line each in `problems`)."""

    def __init__(self, message: str, hint: str = "", problems: list | None = None) -> None:
        super().__init__(message, hint, problems or [message])


class ParamsRefused(AppError, Failed):
    """Valid parameters that running tasks refused (their config_change failed)."""


def in_force(service: ServiceSpec, values: dict, shared: dict | None = None) -> dict:
    """The spec's defaults overlaid with the values set (unknown keys are dropped: the spec
    no longer declares them); a shared parameter's from `shared`, the app's shared values
    set (a value the service had of its own before it took the shared one is ignored)."""
    shared = shared or {}
    return {name: shared.get(p.shared, p.default) if isinstance(p, SharedParameter) else
            values.get(name, p.default) for name, p in service.parameters.items()}


def coerce(name: str, param: Parameter, text: str):
    """`text` from a command line as a value of the parameter's type; ValueError says why."""
    return coerce_as(name, param.type, text)


def coerce_as(name: str, kind: str, text: str, quote: bool = True):
    """`text` as a value of the spec type `kind` (string, int, float, bool, list): a string
    is the text as it is; a bool is true/yes/on/1 or false/no/off/0; a list is JSON
    (``["a","b"]``) or comma-separated items. ValueError says why not, a value longer than
    MAX_TEXT among the reasons (a parameter is a setting, not a payload); it quotes the
    value unless `quote` is false (a value read from a file or stdin is never shown)."""
    shown = _shown if quote else _unshown
    if len(text) > MAX_TEXT:
        raise ValueError(f"{name}: a value may hold at most {MAX_TEXT // 1024} KiB")
    if kind == "string":
        return text
    if kind == "int":
        try:
            return int(text, 10)
        except ValueError:  # also past Python's 4300 digits
            raise ValueError(f"{name} is an int: {shown(text)} is not a whole number") \
                from None
    if kind == "float":
        return _finite(name, text, shown)
    if kind == "bool":
        lowered = text.strip().lower()
        if lowered in ("true", "yes", "on", "1"):
            return True
        if lowered in ("false", "no", "off", "0"):
            return False
        raise ValueError(f"{name} is a bool: give true or false, not {shown(text)}")
    if kind != "list":
        raise ValueError(f"{name} has a type this command does not know: {kind!r}")
    try:  # list: JSON, or comma-separated strings
        value = json.loads(text) if text.strip().startswith("[") else \
            [item.strip() for item in text.split(",") if item.strip()]
    except (ValueError, RecursionError) as e:  # RecursionError: [[[[... nested past Python
        raise ValueError(f"{name} is a list: {shown(text)} is not a JSON list "
                         f"({str(e)[:80]})") from None
    if not isinstance(value, list):
        raise ValueError(f"{name} is a list: give a JSON list or comma-separated items")
    return value


def _finite(name: str, text: str, shown) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} is a float: {shown(text)} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} is a float: give a finite number, not {shown(text)}")
    return value


def _shown(text: str) -> str:
    """`text` as a problem quotes it: at most 40 characters of it."""
    return repr(text) if len(text) <= 40 else repr(text[:40]) + "..."


def _unshown(text: str) -> str:
    """A value read from a file or stdin as a problem names it: never its text."""
    return "the value read (not shown)"


def edit(service_name: str, service: ServiceSpec, current: dict, assignments: list[str],
         unset: list[str] = ()) -> dict:
    """The values set after `KEY=VALUE` assignments and `unset` keys (back to the default);
    ParamsInvalid listing every problem, nothing changed then."""
    types = {key: param.type for key, param in service.parameters.items()}
    values, problems = _assigned(service_name, assignments, types)
    return _edited(service_name, service, current, list(values.items()), unset, check_value,
                   problems)


def assignments(service_name: str, texts: list[str], types: dict,
                unquoted: frozenset = frozenset()) -> dict:
    """`KEY=VALUE` texts (a command line's, a form's) as typed values, by `types` (each
    parameter of the service -> its spec type, as `Control.get_params` and the API give
    them): the one parser of KEY=VALUE, for the CLI on the portal, through the API, and the
    pages. Splits at the first ``=`` (a value may hold more); the key is stripped, the value
    kept as it is. ParamsInvalid listing every problem (not KEY=VALUE, an unknown key, a
    value not of its type); the values of the `unquoted` keys are never quoted in them."""
    values, problems = _assigned(service_name, texts, types, unquoted)
    if problems:
        raise _invalid(service_name, problems)
    return values


def _assigned(service_name: str, texts: list[str], types: dict,
              unquoted: frozenset = frozenset()) -> tuple[dict, list]:
    """(typed values, problems) of KEY=VALUE texts: the malformed ones first."""
    pairs, problems = [], []
    for item in texts:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            problems.append(f"{item!r}: give KEY=VALUE")
        else:
            pairs.append((key.strip(), text))
    values = {}
    for key, text in pairs:
        if key not in types:
            problems.append(_unknown(service_name, types, key))
            continue
        try:
            values[key] = coerce_as(key, types[key], text, quote=key not in unquoted)
        except ValueError as e:
            problems.append(str(e))
    return values, problems


def check_value(name: str, param: Parameter, value):
    """A JSON value (the REST API's) as a value of the parameter's type: no guessing from
    text here, but a whole number is a fine float; ValueError says why not."""
    kind, wanted = param.type, _JSON_TYPES[param.type]
    if isinstance(value, bool) and kind != "bool":
        raise ValueError(f"{name} is {_article(kind)}: got {json.dumps(value)}")
    if kind == "float" and isinstance(value, int):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name} is a finite number: got {value}")
    if not isinstance(value, wanted):
        raise ValueError(f"{name} is {_article(kind)}: got {json.dumps(value)[:80]}")
    if kind == "list" and not all(isinstance(i, (str, int, float, bool)) for i in value):
        raise ValueError(f"{name} is a list of strings, numbers or booleans")
    return value


def edit_values(service_name: str, service: ServiceSpec, current: dict, values: dict,
                unset=()) -> dict:
    """As `edit`, with typed JSON values ({key: value}) instead of KEY=VALUE text."""
    return _edited(service_name, service, current, list(values.items()), unset, check_value)


_JSON_TYPES = {"string": str, "int": int, "float": float, "bool": bool, "list": list}


def _article(kind: str) -> str:
    return f"an {kind}" if kind == "int" else f"a {kind}"


def _edited(service_name: str, service: ServiceSpec, current: dict, changes: list,
            unset, convert, problems: list | None = None) -> dict:
    """`current` with each (key, raw) of `changes` converted by `convert(key, param, raw)`
    and each `unset` key removed; ParamsInvalid listing every problem, nothing changed."""
    values, problems = dict(current), list(problems or [])
    for key, raw in changes:
        if key not in service.parameters:
            problems.append(_unknown(service_name, service.parameters, key))
            continue
        if isinstance(service.parameters[key], SharedParameter):
            problems.append(_shared(service_name, key, service.parameters[key]))
            continue
        try:
            values[key] = convert(key, service.parameters[key], raw)
        except ValueError as e:
            problems.append(str(e))
    for key in unset:
        if key not in service.parameters:
            problems.append(_unknown(service_name, service.parameters, key))
        elif isinstance(service.parameters[key], SharedParameter):
            problems.append(_shared(service_name, key, service.parameters[key]))
        else:
            values.pop(key, None)
    if problems:
        raise _invalid(service_name, problems)
    return values


def _invalid(service_name: str, problems: list) -> ParamsInvalid:
    return ParamsInvalid(f"{service_name}: " + "; ".join(problems),
                         f"see its parameters: dragonball params get {service_name}", problems)


def _shared(service_name: str, key: str, param: SharedParameter) -> str:
    """A service's shared parameter is set for every service taking it, or for none."""
    return (f"{service_name}'s {key} is the shared parameter {param.shared!r}: set it once for "
            f"every service taking it with: dragonball params set {SHARED} {param.shared}=...")


def _unknown(service_name: str, known_keys, key: str) -> str:
    known = ", ".join(sorted(known_keys)) or "none"
    return f"{service_name} has no parameter {key!r} (it has: {known})"


def shown(service: ServiceSpec, values: dict) -> dict:
    """`values` with every secret parameter's value masked (for people and logs)."""
    return {k: (MASK if k in service.parameters and service.parameters[k].secret and v != ""
                else v) for k, v in values.items()}
