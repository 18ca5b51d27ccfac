"""A module's parameters: one JSON object, merged, persisted, handed to scripts.

In force = the initial parameters from the container environment
(`DRAGONBALL_PARAMS`, set by the orchestrator) overlaid key by key with the
persisted ones (`storage/.dragonball/params.json`, written by config_change).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile

from dragonball.errors import ParamsError

PARAMS_ENV = "DRAGONBALL_PARAMS"
PARAMS_FILE_ENV = "DRAGONBALL_PARAMS_FROM"  # a file (e.g. a Swarm secret): not in `docker inspect`
ENV_PREFIX = "PARAM_"
_KEY_CHARS = re.compile(r"[^A-Z0-9_]")


def parse(text: str, source: str) -> dict:
    """The JSON object in `text`; ParamsError naming `source` otherwise."""
    try:
        value = json.loads(text)
    except ValueError as e:
        raise ParamsError(f"parameters from {source} are not valid JSON: {e}",
                          'give one JSON object, e.g. {"port": 8080}') from e
    if not isinstance(value, dict):
        raise ParamsError(f"parameters from {source} must be a JSON object, "
                          f"not {type(value).__name__}", 'wrap them: {"key": value}')
    return value


def merge(current: dict, change: dict, replace: bool = False) -> dict:
    """`change` over `current` (or instead of it); keys set to null are dropped."""
    merged = dict(change) if replace else {**current, **change}
    return {k: v for k, v in merged.items() if v is not None}


def to_env(params: dict) -> dict:
    """PARAM_<KEY> variables for the scalar top-level parameters."""
    env = {}
    for key, value in params.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif not isinstance(value, (str, int, float)):
            continue
        env[ENV_PREFIX + _KEY_CHARS.sub("_", str(key).upper())] = str(value)
    return env


def write_private(path: str, params: dict) -> None:
    """Write `params` to `path` atomically, readable by its owner only (0600)."""
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".params-")  # mkstemp makes it 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(params, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class ParamStore:
    """The persisted parameters of one module, under its storage folder."""

    def __init__(self, storage_dir: str, environ: dict) -> None:
        self.folder = os.path.join(storage_dir, ".dragonball")
        self.path = os.path.join(self.folder, "params.json")
        self.environ = environ

    def initial(self) -> dict:
        """The initial parameters: the file named by $DRAGONBALL_PARAMS_FROM, else $DRAGONBALL_PARAMS."""
        path = self.environ.get(PARAMS_FILE_ENV)
        if path:
            try:
                with open(path, encoding="utf-8") as f:
                    return parse(f.read(), f"{path} (${PARAMS_FILE_ENV})")
            except OSError as e:
                raise ParamsError(f"cannot read the initial parameters {path} "
                                  f"(${PARAMS_FILE_ENV}): {e.strerror}",
                                  "mount the file into the container, or unset the variable") from e
        text = self.environ.get(PARAMS_ENV)
        return parse(text, f"${PARAMS_ENV}") if text else {}

    def persisted(self) -> dict:
        try:
            with open(self.path, encoding="utf-8") as f:
                return parse(f.read(), self.path)
        except FileNotFoundError:
            return {}

    def in_force(self) -> dict:
        return {**self.initial(), **self.persisted()}

    def save(self, params: dict) -> None:
        write_private(self.path, params)

    @contextlib.contextmanager
    def locked(self):
        """Serialise config changes: two at once would lose one of them."""
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        with open(os.path.join(self.folder, "lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
