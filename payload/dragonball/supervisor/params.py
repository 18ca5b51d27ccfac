"""A module's parameters: one JSON object, merged, persisted, handed to scripts.

Two owners (docs/module-spec.md, "Parameters"):
- the module (`ParamStore`, the default): in force = the initial parameters from the
  container environment overlaid key by key with the persisted ones
  (`storage/.dragonball/params.json`, written by config_change);
- the portal (`PortalParamStore`, DRAGONBALL_PARAMS_OWNER=portal): in force = the last
  parameters applied in this container (the run folder's params.json), else the
  initial file; storage/ is never read or written.
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
OWNER_ENV = "DRAGONBALL_PARAMS_OWNER"
OWNERS = ("module", "portal")
LIVE_FILE = "params.json"  # in the run folder: the parameters every script is handed
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


def read_object(path: str, missing: dict | None = None) -> dict:
    """The JSON object in the file at `path`; `missing` when there is no such file."""
    try:
        with open(path, encoding="utf-8") as f:
            return parse(f.read(), path)
    except FileNotFoundError:
        if missing is None:
            raise
        return missing


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
        return read_object(self.path, missing={})

    def in_force(self) -> dict:
        return {**self.initial(), **self.persisted()}

    def at_start(self) -> dict:
        """The parameters a container starts with."""
        return self.in_force()

    def current_file(self) -> str | None:
        """A file already holding the parameters in force, or None: write one per event."""
        return None

    def save(self, params: dict) -> None:
        write_private(self.path, params)

    @contextlib.contextmanager
    def locked(self):
        """Serialise config changes: two at once would lose one of them."""
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        with open(os.path.join(self.folder, "lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield


class PortalParamStore(ParamStore):
    """Parameters owned by the portal: it rewrites the initial file, nothing goes to storage/.

    The record of what this container applied is the run folder's params.json, which
    the supervisor writes at start and after every successful config_change. A new
    container (a restarted Swarm task) starts from the portal's latest initial file.
    """

    def __init__(self, run_dir: str, environ: dict) -> None:
        self.folder = run_dir
        self.path = os.path.join(run_dir, LIVE_FILE)
        self.environ = environ

    def in_force(self) -> dict:
        try:
            return read_object(self.path)
        except FileNotFoundError:
            return self.initial()

    def at_start(self) -> dict:
        return self.initial()

    def current_file(self) -> str | None:
        # status/info/stop hand out the record (else the initial file) as it is: rewriting
        # the record from a read made before a concurrent config_change finished would
        # undo that change
        if os.path.exists(self.path):
            return self.path
        return self.environ.get(PARAMS_FILE_ENV) or None

    def save(self, params: dict) -> None:
        """Nothing to keep: the run folder's params.json, which the supervisor writes, is it."""


def open_store(storage_dir: str, run_dir: str, environ: dict) -> ParamStore:
    """The parameter store $DRAGONBALL_PARAMS_OWNER asks for (default: the module's)."""
    owner = environ.get(OWNER_ENV) or "module"
    if owner not in OWNERS:
        raise ParamsError(f"${OWNER_ENV}={owner!r} is not one of: {', '.join(OWNERS)}",
                          "unset it, or set it to portal when the portal owns the parameters")
    if owner == "portal":
        return PortalParamStore(run_dir, environ)
    return ParamStore(storage_dir, environ)
