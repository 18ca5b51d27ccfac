"""release.record: the server writes down which release it runs (issue 18).

Right after images.load on every role: /var/lib/dragonball/release/current.json, the
record of the .bin this install runs from (dragonball/release/installed.py); the portal also
keeps the app spec the release carries, releases/<name>/<version>/app.yaml, the spec that
`dragonball apply` with no file and `dragonball deploy` apply. An upgrade compares itself
with this record; a rollback goes back to previous.json.

A runtime not started from a .bin (a test's, a developer's) records nothing and says so.
Reset removes what the step wrote, and `placed.app.yaml` beside the kept spec (deploy's).
"""

from __future__ import annotations

import logging
import os

import yaml

from dragonball.errors import Failed, InstallerError
from dragonball.installer.steps import Step
from dragonball.installer.undo import undoer
from dragonball.release import installed
from dragonball.release.sections import BinError

log = logging.getLogger(__name__)

STEP_ID = "release.record"
PLACED = installed.PLACED      # deploy's placed spec, beside the kept app.yaml


class ReleaseNotRecorded(InstallerError, Failed):
    """The release's record (or the app spec it carries) could not be written."""


def record_step(ctx, read_bin=installed.this_bin, environ=None) -> Step:
    """Every role's, after images.load (installer/roles.py)."""
    return Step(STEP_ID, "this release recorded (and the app it carries kept)",
                lambda: record_release(ctx, read_bin, os.environ if environ is None
                                       else environ))


def app_spec_path(name: str, version: str) -> str:
    """Where the portal keeps the app spec of release `name` `version`."""
    return os.path.join(installed.RELEASES_DIR, name, version, "app.yaml")


def record_release(ctx, read_bin, environ) -> dict:
    undo = ctx.undo(STEP_ID)
    try:
        manifest, signed = read_bin(environ)
    except BinError as e:
        ctx.progress.warn(f"no release recorded: this runtime was not started from a .bin "
                          f"({e.message})")
        return undo.entries()
    app = installed.manifest_app(manifest) if ctx.role == "portal" else None
    spec = app_spec_path(manifest["name"], manifest["version"]) if app is not None else None
    undo.note("record", {"kind": "release_record", "files": written_files(spec),
                         "dirs": written_dirs(spec)})
    host = ctx.host
    try:
        if spec is not None:
            installed.keep_app_spec(manifest["name"], manifest["version"], app,
                                    root=host.path(installed.RELEASES_DIR))
        installed.record(installed.bin_record(manifest, signed, spec),
                         root=host.path(installed.RELEASE_DIR))
    except OSError as e:
        raise ReleaseNotRecorded(f"cannot record the release in {installed.RELEASE_DIR}: "
                             f"{e.strerror}", "check the disk is writable and not full") from e
    log.info("recorded release %s %s (app spec: %s)", manifest["name"], manifest["version"],
             spec or "none")
    return undo.entries()


def deploy_offer(record: dict | None) -> str | None:
    """What the portal's install ends with when its release carries an app (pure): the app,
    and how to deploy it once the servers have joined (DESIGN point 9)."""
    if not record or not record.get("app_spec"):
        return None
    try:
        app = yaml.safe_load(record["manifest"]["app"]["text"])["app"]
    except (KeyError, TypeError, yaml.YAMLError):
        app = "its app"
    return (f"The release {record['name']} {record['version']} carries app {app} "
            f"({record['app_spec']}). Once the servers have joined, on this server: "
            "dragonball deploy (asks where each service runs; --answers FILE --yes "
            "unattended), or dragonball apply (no file: the spec's own placement)")


def written_files(spec: str | None) -> list[str]:
    """What the step may write (pure): the records, and the kept spec with deploy's beside."""
    files = [os.path.join(installed.RELEASE_DIR, name)
             for name in (installed.CURRENT, installed.PREVIOUS)]
    if spec is not None:
        files += [spec, os.path.join(os.path.dirname(spec), PLACED)]
    return files


def written_dirs(spec: str | None) -> list[str]:
    """The folders it may have made, innermost first (pure)."""
    if spec is None:
        return [installed.RELEASE_DIR]
    version_dir = os.path.dirname(spec)
    return [version_dir, os.path.dirname(version_dir), installed.RELEASES_DIR,
            installed.RELEASE_DIR]


@undoer("release_record")
def undo_release_record(host, entry: dict) -> None:
    for path in entry["files"]:
        host.remove(path)
        host.remove(f"{path}.part")      # a write a kill cut short
    host.remove_empty_dirs(entry["dirs"])
