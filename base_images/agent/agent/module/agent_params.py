"""The parameters the portal hands to a service's containers on this node (docs/agent.md):
`<root>/<app>/<service>/params.json` (0600, folders 0700), which the orchestrator mounts
read-only into the service's tasks at /run/dragonball-params; `<root>` is the host's
/var/lib/dragonball/params, at /host/params in the agent. A revision number beside it
keeps an older write from replacing a newer one.

Checks are pure; ParamsStore is the adapter that writes."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading

NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")
PARAMS_FILE, REVISION_FILE = "params.json", "revision"


class Conflict(Exception):
    """The folder holds a higher revision than the one offered."""

    def __init__(self, current: int, offered: int) -> None:
        super().__init__(f"revision {offered} is older than the {current} already written")
        self.current, self.offered = current, offered


# --- pure -------------------------------------------------------------------------------------

def name_problems(app, service) -> list[str]:
    """App and service names safe as one folder name each (no '..', '/', dots, capitals)."""
    return [f"{what} must match ^[a-z][a-z0-9-]{{0,62}}$, got {value!r}"
            for what, value in (("app", app), ("service", service))
            if not isinstance(value, str) or not NAME.fullmatch(value)]


def put_problems(body: dict) -> list[str]:
    """Every problem with the body of PUT /v1/params."""
    problems = name_problems(body.get("app"), body.get("service"))
    revision = body.get("revision")
    if isinstance(revision, bool) or not isinstance(revision, int) or revision < 0:
        problems.append(f"revision must be an integer >= 0, got {revision!r}")
    if not isinstance(body.get("params"), dict):
        problems.append("params must be a JSON object")
    unknown = sorted(set(body) - {"app", "service", "revision", "params"})
    if unknown:
        problems.append(f"unknown fields: {', '.join(unknown)}")
    return problems


def parse_revision(text: str | None) -> int | None:
    """The revision file's number; None when there is none (or it is not a number)."""
    text = (text or "").strip()
    return int(text) if text.isdigit() else None


def is_stale(current: int | None, offered: int) -> bool:
    """An offered revision lower than the one written is refused; the same one is written
    again (a retried call), a higher one replaces it."""
    return current is not None and offered < current


# --- the adapter ---------------------------------------------------------------------------------

class ParamsStore:
    """Writes and removes the folders under `root` (one lock: writes of a service never
    interleave)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._lock = threading.Lock()

    def folder(self, app: str, service: str) -> str:
        if name_problems(app, service):  # the API checked; never build a path without it
            raise ValueError(f"invalid names {app!r}, {service!r}")
        return os.path.join(self.root, app, service)

    def revision(self, app: str, service: str) -> int | None:
        try:
            with open(os.path.join(self.folder(app, service), REVISION_FILE)) as f:
                return parse_revision(f.read())
        except FileNotFoundError:
            return None

    def put(self, app: str, service: str, revision: int, params: dict) -> None:
        """params.json then the revision, each atomically; Conflict for an older revision."""
        with self._lock:
            current = self.revision(app, service)
            if is_stale(current, revision):
                raise Conflict(current, revision)
            folder = self.folder(app, service)
            for path in (os.path.dirname(folder), folder):
                os.makedirs(path, mode=0o700, exist_ok=True)
                os.chmod(path, 0o700)  # whatever the umask, or an older folder's mode
            write_atomic(os.path.join(folder, PARAMS_FILE),
                         json.dumps(params, indent=2, sort_keys=True) + "\n")
            write_atomic(os.path.join(folder, REVISION_FILE), f"{revision}\n")

    def delete(self, app: str, service: str) -> bool:
        """Remove the service's folder (and the app's, once empty); True if it was there."""
        with self._lock:
            folder = self.folder(app, service)
            if not os.path.isdir(folder):
                return False
            shutil.rmtree(folder)
            try:
                os.rmdir(os.path.dirname(folder))
            except OSError:
                pass  # other services of the app are still there
            return True


def write_atomic(path: str, text: str, mode: int = 0o600) -> None:
    """A reader sees the old file or the new one, never half of it; `mode` (0600: a
    parameter may be a secret)."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
