"""The image archive (images.tar) read in place: its index and each blob as a view."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tarfile
from collections.abc import Iterator

from dragonball.release.sections import BinError, SectionFile, bin_sections, open_section

INDEX = "index.json"
#: Set by the stub once it verified the whole .bin: its sections need no second check.
VERIFIED_ENV = "DRAGONBALL_BIN_VERIFIED"
SCHEMA = 1


@dataclasses.dataclass(frozen=True)
class ArchivedImage:
    """One image of the archive, as index.json describes it."""

    ref: str
    repository: str
    tag: str
    manifest: dict  # {"digest", "size"}
    config: dict
    layers: list  # [{"digest", "size", "diff_id"}]

    @property
    def size(self) -> int:
        return self.manifest["size"] + self.config["size"] + sum(l["size"] for l in self.layers)


class ImageArchive:
    """images.tar over a seekable view; nothing is extracted to read it."""

    def __init__(self, view: SectionFile) -> None:
        self._view = view
        self._members = {}
        with tarfile.open(fileobj=view, mode="r:") as tar:  # seeks past data
            for member in tar:
                self._members[member.name] = (member.offset_data, member.size)
        index = json.loads(self._read(INDEX))
        if index.get("schema") != SCHEMA:
            raise BinError(f"image archive schema {index.get('schema')!r} is not {SCHEMA}",
                           "use the DragonBall runtime of the same release")
        self.images = [ArchivedImage(**{k: i[k] for k in ArchivedImage.__annotations__})
                       for i in index["images"]]

    def _read(self, name: str) -> bytes:
        return self.member(name).read()

    def member(self, name: str) -> SectionFile:
        try:
            offset, size = self._members[name]
        except KeyError:
            raise BinError(f"image archive has no {name}",
                           "the .bin is incomplete: build it again") from None
        return self._view.view(offset, size)

    def blob(self, digest: str) -> SectionFile:
        """The bytes of the blob `digest` ("sha256:..."), as a view."""
        return self.member("blobs/sha256/" + digest.split(":", 1)[1])

    def blob_bytes(self, digest: str) -> bytes:
        return self.blob(digest).read()

    def digests(self) -> set:
        return {name.rsplit("/", 1)[1] for name in self._members if name.startswith("blobs/")}


# --- the archive of a file or of the running .bin ---------------------------------------

@contextlib.contextmanager
def open_archive(path: str | None, environ=os.environ) -> Iterator[ImageArchive]:
    """The image archive of `path`, else of the .bin this command runs from; read in place."""
    f, view, where = _open_view(path, environ)
    with f:
        yield _archive(view, where)


def _open_view(path: str | None, environ):
    """(open file, view of the archive in it, a name for messages)."""
    section = None
    if not path:
        path, sections = bin_sections(environ)
        section = sections.get("images")
        if section is None:
            raise BinError(f"{path} has no images section", "build the .bin again")
    try:
        f = open(path, "rb")
    except OSError as e:
        raise BinError(f"cannot read {path}: {e.strerror}",
                       "check the path given with --archive") from e
    if section is None:
        return f, SectionFile(f, 0, os.fstat(f.fileno()).st_size), path
    try:
        view = open_section(f, section, verify=environ.get(VERIFIED_ENV) != "1")
    except BaseException:
        f.close()
        raise
    return f, view, f"{path} (images section)"


def _archive(view, where: str) -> ImageArchive:
    try:
        return ImageArchive(view)
    except (tarfile.TarError, ValueError, KeyError, TypeError) as e:
        raise BinError(f"{where} is not a DragonBall image archive ({e})",
                       "give the images.tar of a release (docs/bin-format.md)") from e
