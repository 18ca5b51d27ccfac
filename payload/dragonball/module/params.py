"""Parameters for module authors: the values in force, typed, with the module's defaults.

Order, later wins: the module's `module/defaults.json`, then `PARAM_<KEY>` variables (typed
like the default), then the JSON object in $DRAGONBALL_PARAMS_FILE (docs/module-spec.md).
A key set to null counts as absent. In every image built FROM dragonballbase:

From sh:      eval "$(/opt/dragon_ball/bin/params sh port password)"   sets $param_port, $param_password
              /opt/dragon_ball/bin/params get backends                prints one value (JSON if not a scalar)
              /opt/dragon_ball/bin/params --file OLD.json sh password reads another file (old params)
From Python:  sys.path.insert(0, "/opt/dragon_ball/lib"); from dragonball.module import params
              params.load()

Exit status of the command (the runtime's, README.md "Exit statuses"): 0 done, 2 a wrong
command line or a parameter that cannot be read or has the wrong type.

Standard library only: it runs on the base image's python3.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys

from dragonball.errors import ExitStatus, InvalidInput, SupervisorError

DEFAULTS = os.path.join("module", "defaults.json")


class ParamError(SupervisorError, InvalidInput):
    """A parameter cannot be read or has the wrong type."""


def defaults() -> dict:
    """The module's module/defaults.json ({} when it has none)."""
    root = os.environ.get("DRAGONBALL_MODULE_DIR") or os.getcwd()
    try:
        with open(os.path.join(root, DEFAULTS), encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ParamError(f"cannot read {os.path.join(root, DEFAULTS)}: {e}") from e
    if not isinstance(data, dict):
        raise ParamError(f"{os.path.join(root, DEFAULTS)} must hold a JSON object")
    return data


def env_name(key: str) -> str:
    """The spec's variable name for a top-level key: PARAM_ + upper-cased, [^A-Z0-9_] -> _."""
    return "PARAM_" + re.sub(r"[^A-Z0-9_]", "_", key.upper())


def coerce(key: str, raw: str, default):
    """A PARAM_* string typed like the key's default (lists: JSON or comma-separated)."""
    try:
        if isinstance(default, bool):
            return raw.strip().lower() in ("true", "1", "yes")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, (list, dict)):
            if raw.strip().startswith(("[", "{")):
                return json.loads(raw)
            return [item.strip() for item in raw.split(",") if item.strip()]
    except ValueError as e:
        raise ParamError(f"{env_name(key)}={raw!r} is not a valid {type(default).__name__}") from e
    return raw


def read_file(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise ParamError(f"cannot read parameters from {path}: {e}") from e
    if not isinstance(data, dict):
        raise ParamError(f"{path} holds {type(data).__name__}, not a JSON object")
    return {k: v for k, v in data.items() if v is not None}


def load(path: str | None = None) -> dict:
    """Defaults, overlaid by PARAM_* variables, overlaid by the parameters file."""
    params = defaults()
    for key, default in list(params.items()):
        raw = os.environ.get(env_name(key))
        if raw is not None:
            params[key] = coerce(key, raw, default)
    path = path if path is not None else os.environ.get("DRAGONBALL_PARAMS_FILE")
    if path:
        params.update(read_file(path))
    return params


def as_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def main(argv: list[str]) -> int:
    path = None
    if argv[:1] == ["--file"] and len(argv) >= 2:
        path, argv = argv[1], argv[2:]
    if len(argv) < 2 or argv[0] not in ("get", "sh"):
        print(__doc__, file=sys.stderr)
        return ExitStatus.INVALID
    try:
        params = load(path)
    except ParamError as e:
        print(f"params: {e}", file=sys.stderr)
        return e.exit_status
    if argv[0] == "get":
        print(as_text(params.get(argv[1], "")))
        return ExitStatus.OK
    for key in argv[1:]:
        name = "param_" + re.sub(r"[^a-z0-9_]", "_", key.lower())
        print(f"{name}={shlex.quote(as_text(params.get(key, '')))}")
    return ExitStatus.OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
