"""An app-only release (`<name>-<version>.app`, builder/app_release.py) opened and checked
before anything is sent anywhere: a tar of app.json, app.yaml and images.tar.

    with open_app(path) as app:   # AppFile: .about (app.json), .spec_text, .archive
        ...

Refused with a BinError naming the file and the fix: not a tar, no app.json or an app.json
of another kind or format, a member missing, a SHA-256 that does not match app.json (a
truncated or tampered file), an app.json over 1 MiB.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import tarfile
from collections.abc import Iterator

from dragonball.release.archive import ImageArchive
from dragonball.release.sections import BinError, SectionFile, sha256_of

FORMAT = 1
ABOUT = "app.json"
LIMIT = 1 << 20
NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}\Z")
VERSION = re.compile(r"[0-9][0-9A-Za-z.+~-]{0,63}\Z")


@dataclasses.dataclass
class AppFile:
    path: str
    about: dict
    spec_text: str
    archive: ImageArchive

    @property
    def label(self) -> str:
        return f"{self.about['name']} {self.about['version']}"


@contextlib.contextmanager
def open_app(path: str) -> Iterator[AppFile]:
    """The checked app release at `path`, its images read in place."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise BinError(f"cannot read {path}: {e.strerror}",
                       "give the .app file build.py app wrote") from e
    with f:
        yield _checked(path, f)


def _checked(path: str, f) -> AppFile:
    again = f"copy {path} again (compare it with its .sha256), or build it again"
    try:
        with tarfile.open(fileobj=f, mode="r:") as tar:
            members = {m.name: (m.offset_data, m.size) for m in tar if m.isfile()}
    except tarfile.TarError as e:
        raise BinError(f"{path} is not an app release (not a tar: {e})", again) from e
    for name in (ABOUT, "app.yaml", "images.tar"):
        if name not in members:
            raise BinError(f"{path} has no {name}: not an app release, or cut short", again)
    about = _about(path, f, members[ABOUT], again)
    spec_view = SectionFile(f, *members["app.yaml"])
    images_view = SectionFile(f, *members["images.tar"])
    for view, key, name in ((spec_view, "spec_sha256", "app.yaml"),
                            (images_view, "images_sha256", "images.tar")):
        found = sha256_of(view)
        if found != about.get(key):
            raise BinError(f"{name} in {path} has SHA-256 {found[:16]}…, app.json says "
                           f"{str(about.get(key))[:16]}…: the file is damaged or changed",
                           again)
        view.seek(0)
    try:
        spec_text = spec_view.read().decode("utf-8")
    except UnicodeDecodeError as e:
        raise BinError(f"app.yaml in {path} is not UTF-8", again) from e
    return AppFile(path, about, spec_text, ImageArchive(images_view))


def _about(path: str, f, where: tuple, again: str) -> dict:
    offset, size = where
    if size > LIMIT:
        raise BinError(f"app.json in {path} is {size} bytes: too big", again)
    f.seek(offset)
    try:
        about = json.loads(f.read(size))
    except ValueError as e:
        raise BinError(f"app.json in {path} is not JSON: {e}", again) from e
    if not isinstance(about, dict) or about.get("kind") != "app":
        raise BinError(f"{path} is not an app-only release (app.json's kind is "
                       f"{about.get('kind') if isinstance(about, dict) else None!r})",
                       "a DragonBall .bin installs or upgrades the cluster itself; "
                       "'release add' takes the .app of build.py app")
    if about.get("format") != FORMAT:
        raise BinError(f"{path} is an app release of format {about.get('format')!r}; this "
                       f"runtime reads format {FORMAT}", "use a runtime of the same release")
    if not (NAME.match(str(about.get("name", ""))) and
            VERSION.match(str(about.get("version", "")))):
        raise BinError(f"app.json in {path} names no valid release name and version", again)
    if not isinstance(about.get("left_out") or {}, dict):
        raise BinError(f"app.json in {path}: left_out is not a mapping", again)
    return about
