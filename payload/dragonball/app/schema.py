"""Pydantic's errors turned into problems with a line, a path, words and a hint.

Pydantic reports every shape error of the whole spec in one pass, with the path of
each (its ``loc``); `Document.lines` gives that path's line. Unknown keys get a
"did you mean" from the fields of the model at that path.
"""

from __future__ import annotations

import difflib
from typing import Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from dragonball.app.document import Document
from dragonball.app.model import (MAX_CPUS, MAX_JOB_TIMEOUT, MAX_REPLICAS, PARAMETER_TAGS,
                                  AppSpec, JobSpec, Parameter, ServiceSpec, SharedReference)

UNKNOWN_IMAGE = "(unknown)"  # stands in for a broken image field
NAME_HINT = ("lower-case letters, digits and '-', starting with a letter, at most 63 "
             "characters (a DNS label)")
_FIELD_HINTS = {
    "app": NAME_HINT,
    "memory": "bytes, or a number with k, m or g: 536870912, 512m, 2g (at most 15 digits)",
    "kind": "'service' (nginx in front of backends) or 'backend' (does the work)",
    "protocol": "tcp or udp",
    "replicas": f"a whole number from 0 to {MAX_REPLICAS} (docs/app-spec.md, 'Limits')",
    "published": "a port number from 1 to 65535",
    "target": "a port number from 1 to 65535",
    "cpus": f"a number above 0 and at most {MAX_CPUS}, e.g. 0.5",
    "address": "an IPv4 address, with the network's prefix if not /24: 10.0.0.100/24",
    "type": "one of string, int, float, bool, list",
    "timeout": f"whole seconds from 1 to {MAX_JOB_TIMEOUT} (default 600)",
    "command": "a list of words: [/opt/dragon_ball/service/wiki/module/install.sh, --quiet]",
    "shared": "the name of a parameter declared under the spec's top-level 'shared:'",
}
#: The models a parameter entry's error path names (by the tag pydantic puts after its key).
_ENTRY_MODELS = dict(zip(PARAMETER_TAGS, (Parameter, SharedReference)))
_REFERENCE_KEYS = ("a shared parameter taken here holds 'shared:' (and may restate "
                   "'type:'): its default and secret are the shared declaration's")
_LABEL_HINTS = {  # a Swarm constraint holds them: node.labels.KEY==VALUE
    "[key]": "a label's name: letters, digits, '_', '.' and '-', at most 128",
    "value": "a label's value: letters, digits and ':_./-', 1 to 128 of them",
}


def check_shape(doc: Document) -> tuple[AppSpec | None, dict, dict]:
    """The spec if its shape is valid, and every service and every job whose own shape is
    valid (name -> model, each).

    Problems go to `doc.problems`. A service (or job) with a broken field is left out of
    the second (third) result but its name still counts (no false "unknown backend").
    """
    if not isinstance(doc.data, dict):
        doc.problem((), "must be a mapping with 'app:' and 'services:'",
                    "start from examples/notes.app.yaml")
        return None, {}, {}
    try:
        return AppSpec.model_validate(doc.data), {}, {}
    except ValidationError as e:
        errors = e.errors()
    broken: dict = {}  # (section, name) -> its fields with a problem
    for error in errors:
        error["loc"], error["entry"] = _untagged(error["loc"])
        path = _real_path(error["loc"], doc.data)
        if not doc.full:
            _report(error, path, doc)
        if not path or path[0] not in _SECTIONS:
            continue
        if len(path) >= 4 and path[2] == "parameters":
            broken.setdefault(path[:2], set()).add(("parameters", path[3]))
        elif len(path) >= 3:
            broken.setdefault(path[:2], set()).add(path[2])
        elif len(path) == 2:
            broken.setdefault(path[:2], set()).add("*")
    return None, *(_salvaged(doc.data.get(section), section, broken) for section in _SECTIONS)


_SECTIONS = ("services", "jobs")


def _salvaged(raw: object, section: str, broken: dict) -> dict:
    """name -> the model of each entry of `section` whose shape is valid once its broken
    fields are left out."""
    if not isinstance(raw, dict):
        return {}
    model = ServiceSpec if section == "services" else JobSpec
    salvaged = {name: _salvage(entry, broken.get((section, name), set()), model)
                for name, entry in raw.items()}
    return {name: spec for name, spec in salvaged.items() if spec is not None}


def _salvage(entry: object, bad: set, model: type = ServiceSpec):
    """The service (or job) without its broken fields, so the cross-checks still see the
    rest.

    One broken parameter leaves out that parameter only. A broken `kind` reads as 'service'
    (no Backend rule applies) and a broken `image` as UNKNOWN_IMAGE (not looked up in the
    registry).
    """
    if not isinstance(entry, dict) or "*" in bad:
        return None
    kept = {k: v for k, v in entry.items() if k in model.model_fields and k not in bad}
    if isinstance(kept.get("parameters"), dict):  # a broken parameter leaves the others
        kept["parameters"] = {k: v for k, v in kept["parameters"].items()
                              if ("parameters", k) not in bad}
    if model is ServiceSpec:
        kept.setdefault("kind", "service")
    kept.setdefault("image", UNKNOWN_IMAGE)
    try:
        return model.model_validate(kept)
    except ValidationError:
        return None


def shared_declarations(doc: Document, spec: AppSpec | None) -> dict:
    """name -> Parameter of each shared declaration whose shape is valid (all of them when
    the spec is)."""
    if spec is not None:
        return dict(spec.shared)
    raw = doc.data.get("shared") if isinstance(doc.data, dict) else None
    found = {}
    for name, entry in (raw.items() if isinstance(raw, dict) else ()):
        try:
            found[name] = Parameter.model_validate(entry)
        except ValidationError:
            continue
    return found


def _untagged(loc: tuple) -> tuple[tuple, type | None]:
    """`loc` without the tag pydantic puts after a parameter's key (which of a parameter
    entry's two models it was checked against: model.ParameterEntry), and that model."""
    if len(loc) > 4 and loc[2] == "parameters" and loc[4] in _ENTRY_MODELS:
        return loc[:4] + loc[5:], _ENTRY_MODELS[loc[4]]
    return loc, None


def _real_path(loc: tuple, data: object) -> tuple:
    """`loc` cut where the data ends: pydantic adds union members ('str', 'int')."""
    path: list = []
    for part in loc:
        if isinstance(data, dict):
            path.append(part)
            if part not in data:
                break
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            path.append(part)
            data = data[part]
        else:
            break
    return tuple(path)


def _report(error: dict, path: tuple, doc: Document) -> None:
    kind, key = error["type"], path[-1] if path else ""
    if kind == "missing":
        doc.problem(path, f"{key!r} is required", f"add '{key}:' here (docs/app-spec.md)",
                    doc.line(path[:-1]))
    elif kind == "extra_forbidden":
        model = error.get("entry") or _model_at(path[:-1])
        known = sorted(model.model_fields) if model else []
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"the keys here are: {', '.join(known)}"
        if model is SharedReference and not close:
            hint = _REFERENCE_KEYS
        doc.problem(path, f"unknown key {key!r}", hint)
    else:
        message = error["msg"][0].lower() + error["msg"][1:]
        if kind == "string_pattern_mismatch":
            message = "has the wrong form"
        hint = _FIELD_HINTS.get(str(key), "see docs/app-spec.md for this field")
        if len(path) >= 2 and path[-2] == "command":   # one word of a job's command
            hint = _FIELD_HINTS["command"]
        if len(path) >= 2 and path[-2] == "labels":
            hint = _LABEL_HINTS["[key]" if error["loc"][-1] == "[key]" else "value"]
        doc.problem(path, f"{message}: got {error['input']!r}"
                    if not isinstance(error["input"], (dict, list)) else message, hint)


def _model_at(path: tuple) -> type | None:
    """The model class describing the value at `path`, if it is one."""
    current: object = AppSpec
    for part in path:
        if isinstance(current, type) and issubclass(current, BaseModel):
            if part not in current.model_fields:
                return None
            current = current.model_fields[part].annotation
        else:
            current = get_args(current)[-1] if get_args(current) else None
        while get_origin(current) is Union:  # Optional[X] -> X
            current = next(a for a in get_args(current) if a is not type(None))
    is_model = isinstance(current, type) and issubclass(current, BaseModel)
    return current if is_model else None
