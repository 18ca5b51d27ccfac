"""The sections of a DragonBall.bin, read in place: no section is copied out to read it."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os

from dragonball.errors import InvalidInput, ReleaseError

SECTIONS_ENV = "DRAGONBALL_BIN_SECTIONS"
BIN_ENV = "DRAGONBALL_BIN"
CHUNK = 1 << 20


class BinError(ReleaseError, InvalidInput):
    """The .bin file is missing, or a section of it is not what the build wrote."""


@dataclasses.dataclass(frozen=True)
class Section:
    name: str
    offset: int
    size: int
    sha256: str


def parse_sections(text: str) -> dict:
    """``name:offset:size:sha256 ...`` (the stub's DB_SECTIONS) -> name -> Section."""
    sections = {}
    for item in text.split():
        try:
            name, offset, size, sha = item.split(":")
            sections[name] = Section(name, int(offset), int(size), sha)
        except ValueError as e:
            raise BinError(f"malformed section entry {item!r} in ${SECTIONS_ENV}",
                           "run the .bin itself, not its extracted runtime") from e
    return sections


def bin_sections(environ: dict) -> tuple[str, dict]:
    """(path of the .bin, its sections) as the stub passed them in the environment."""
    path, text = environ.get(BIN_ENV), environ.get(SECTIONS_ENV)
    if not path or not text:
        raise BinError("this command needs the DragonBall.bin it came from",
                       "run it as: sudo ./DragonBall-<version>.bin COMMAND")
    return path, parse_sections(text)


class SectionFile(io.RawIOBase):
    """A read-only, seekable view of `size` bytes at `offset` of an open file."""

    def __init__(self, fileobj, offset: int, size: int) -> None:
        super().__init__()
        self._f, self._offset, self._size, self._pos = fileobj, offset, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        self._pos = max(0, min(self._size, base + pos))
        return self._pos

    def readinto(self, buffer) -> int:
        want = min(len(buffer), self._size - self._pos)
        if want <= 0:
            return 0
        self._f.seek(self._offset + self._pos)
        got = self._f.readinto(memoryview(buffer)[:want])
        self._pos += got
        return got

    def view(self, offset: int, size: int) -> "SectionFile":
        """A view of part of this one (a member of a tar inside a section)."""
        return SectionFile(self._f, self._offset + offset, size)


def sha256_of(stream, size: int | None = None) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def open_section(fileobj, section: Section, verify: bool = False) -> SectionFile:
    """A view of `section`; with `verify`, its SHA-256 is checked first."""
    view = SectionFile(fileobj, section.offset, section.size)
    if verify:
        actual = sha256_of(view)
        if actual != section.sha256:
            raise BinError(f"section {section.name} is corrupt (sha256 {actual[:16]}…, "
                           f"expected {section.sha256[:16]}…)",
                           "copy the .bin again and compare it with SHA256SUMS")
        view.seek(0)
    return view
