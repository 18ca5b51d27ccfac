"""Which release this server runs, and the one before it (issue 18).

    /var/lib/dragonball/release/current.json    the release installed or upgraded to last
    /var/lib/dragonball/release/previous.json   the one before it: what `dragonball rollback`
                                                and a failed upgrade go back to
    /var/lib/dragonball/releases/<name>/<version>/app.yaml
                                                the app spec a release carries (a .bin's
                                                manifest `app`, an .app's app.yaml)

A record is {"kind": "bin"|"app", "name", "version", "runtime_version", "signed",
"app_spec": path or null, "recorded": epoch seconds, "manifest": the .bin's manifest}.
Files are written whole, then renamed: a kill leaves the old or the new one, never half.
`record` is the only writer; what it replaces becomes previous.json (not when the same
release is recorded again: a re-run of an install or of a finished upgrade).
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import dragonball
from dragonball.errors import InvalidInput, ReleaseError
from dragonball.release.sections import BinError, bin_sections, open_section
from dragonball.shared import paths

RELEASE_DIR = f"{paths.DATA_DIR}/release"
RELEASES_DIR = f"{paths.DATA_DIR}/releases"
CURRENT, PREVIOUS = "current.json", "previous.json"
PLACED = "placed.app.yaml"      # `dragonball deploy`'s placed spec, beside the kept app.yaml


class NoReleaseApp(ReleaseError, InvalidInput):
    """`dragonball apply` or `deploy` with no spec file, and the installed release names no
    app to apply (no record here, or a release that carries none): nothing was changed."""


def read(which: str = CURRENT, root: str = RELEASE_DIR) -> dict | None:
    """The record `which` (CURRENT or PREVIOUS); None when there is none (or it is unreadable:
    a server installed before releases were recorded)."""
    try:
        with open(os.path.join(root, which), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "name" in data and "version" in data else None


def bin_record(manifest: dict, signed: bool, app_spec: str | None = None) -> dict:
    """The record of a .bin release (its manifest), before it is written."""
    return {"kind": "bin", "name": manifest["name"], "version": manifest["version"],
            "runtime_version": (manifest.get("runtime") or {}).get("version")
            or dragonball.__version__, "signed": signed, "app_spec": app_spec,
            "recorded": time.time(), "manifest": manifest}


def record(entry: dict, root: str = RELEASE_DIR) -> dict:
    """Make `entry` the current record; the one it replaces becomes the previous one."""
    os.makedirs(root, mode=0o700, exist_ok=True)
    old = read(CURRENT, root)
    if old and (old["name"], old["version"], old.get("kind")) != \
            (entry["name"], entry["version"], entry.get("kind")):
        _write(os.path.join(root, PREVIOUS), old)
    _write(os.path.join(root, CURRENT), entry)
    return entry


def restore_previous(root: str = RELEASE_DIR) -> dict | None:
    """A rollback's record: previous becomes current again (and current previous)."""
    old, current = read(PREVIOUS, root), read(CURRENT, root)
    if old is None:
        return None
    if current is not None:
        _write(os.path.join(root, PREVIOUS), current)
    _write(os.path.join(root, CURRENT), {**old, "recorded": time.time()})
    return old


def keep_app_spec(name: str, version: str, text: str, root: str = RELEASES_DIR) -> str:
    """releases/<name>/<version>/app.yaml, written whole then renamed; its path."""
    folder = os.path.join(root, name, version)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    target = os.path.join(folder, "app.yaml")
    keep_file(target, text.encode("utf-8"))
    return target


def manifest_app(manifest: dict) -> str | None:
    """The app spec text a .bin's manifest carries (`app.text`, its SHA-256 checked), or
    None when the release carries no app."""
    app = manifest.get("app")
    if not app:
        return None
    text = app.get("text", "")
    if hashlib.sha256(text.encode("utf-8")).hexdigest() != app.get("sha256"):
        raise BinError("the release manifest's app spec does not match its SHA-256",
                       "the .bin was altered: copy it again and compare it with SHA256SUMS")
    return text


def release_app(root: str | None = None) -> tuple[dict, str]:
    """(the current record, the path of the app spec it carries); NoReleaseApp, saying what
    to do, when there is no record or the release carries no app."""
    current = read(CURRENT, root or RELEASE_DIR)
    if current is None:
        raise NoReleaseApp("no installed release is recorded on this server: no app spec to "
                           "apply", "run it as root on the portal of a cluster installed from "
                           "a .bin that carries its app, or give a spec file: dragonball apply "
                           "SPEC")
    if not current.get("app_spec"):
        raise NoReleaseApp(f"the installed release {current['name']} {current['version']} "
                           "carries no app", "give a spec file: dragonball apply SPEC (or name "
                           "it in release.yaml's app: and build the .bin again)")
    return current, current["app_spec"]


def placed_or_kept(spec: str, exists=os.path.exists) -> str:
    """The spec to apply for a kept app spec: `dragonball deploy`'s placed one beside it when
    there is one (applying the unplaced spec would undo the placement), else the kept one."""
    placed = os.path.join(os.path.dirname(spec), PLACED)
    return placed if exists(placed) else spec


def this_bin(environ) -> tuple[dict, bool]:
    """(the manifest, signed?) of the .bin this runtime was started from; BinError when it
    was not started from one (the stub checked every section before it started us)."""
    path, sections = bin_sections(environ)
    if "manifest" not in sections:
        raise BinError(f"{path} has no manifest section", "run a DragonBall .bin")
    try:
        with open(path, "rb") as f:
            manifest = json.loads(open_section(f, sections["manifest"], verify=True).read())
    except (OSError, ValueError) as e:
        raise BinError(f"cannot read the release manifest of {path}: {e}",
                       "copy the .bin again and compare it with SHA256SUMS") from e
    if not isinstance(manifest, dict) or not {"name", "version"} <= set(manifest):
        raise BinError(f"{path}: its manifest names no release",
                       "run a .bin that build.py made")
    return manifest, "signature" in sections


def _write(path: str, data: dict) -> None:
    keep_file(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())


def keep_file(path: str, data: bytes) -> None:
    """`data` at `path` (0600), written whole, synced, then renamed over it."""
    part = f"{path}.part"
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(part, path)
