"""Deterministic tar archives: the same entries give the same bytes, on any machine.

    write_tar(out, entries, mtime, gzip_level=None) -> TarSummary(sha256, size)

`out` is a path (written to a temporary file beside it, then renamed into
place, so a crash never leaves a half archive under the final name) or a
binary file object opened for writing (written sequentially, never sought).

`entries` is an iterable of ``(arcname, source, mode)``:

- `arcname`: the path inside the archive, posix form, relative (``dragonball/x``);
- `source`: ``bytes`` (a regular file with that content) or a path on disk
  (a regular file, a directory, or a symlink, which is stored as a symlink);
- `mode`: the permission bits to store, or None for the normalized mode of the
  source: 0755 for directories and executable files, 0644 otherwise.

What makes the bytes reproducible: entries sorted by arcname (the writer
sorts; a directory's own entry sorts before its contents), POSIX pax format,
every mtime set to `mtime` (callers pass ``SOURCE_DATE_EPOCH`` or 0, see
`source_date_epoch`), uid/gid 0, empty user and group names, no device
numbers, no pax records carrying atime/ctime. With `gzip_level`, the stream is
gzip-compressed with a header that holds no file name and mtime 0.

`tree_entries` turns a directory into entries (a helper, not required).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import pathlib
import stat
import tarfile
from collections.abc import Iterable, Mapping
from typing import BinaryIO, Union

Source = Union[bytes, str, os.PathLike]
Entry = tuple[str, Source, Union[int, None]]


@dataclasses.dataclass(frozen=True)
class TarSummary:
    """The written archive's sha256 (hex) and size in bytes (after compression)."""

    sha256: str
    size: int


def source_date_epoch(environ: Mapping[str, str] = os.environ) -> int:
    """``SOURCE_DATE_EPOCH`` as an int, or 0 when unset or empty (reproducible-builds.org)."""
    value = environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return 0
    if not value.isdigit():
        raise ValueError(f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds")
    return int(value)


def write_tar(out: str | os.PathLike | BinaryIO, entries: Iterable[Entry], mtime: int,
              gzip_level: int | None = None) -> TarSummary:
    """Write `entries` as a deterministic tar (gzip when `gzip_level` is 1..9) to `out`."""
    ordered = _sorted_entries(entries)
    if isinstance(out, (str, os.PathLike)):
        return _write_to_path(pathlib.Path(out), ordered, mtime, gzip_level)
    return _write_stream(out, ordered, mtime, gzip_level)


def tree_entries(root: str | os.PathLike, arcroot: str,
                 skip_names: frozenset[str] = frozenset({"__pycache__"})) -> list[Entry]:
    """Entries for `root` and everything below it, stored under `arcroot`.

    Modes are normalized (None); symlinks are kept as symlinks, never followed;
    a file or directory whose name is in `skip_names` is left out with its contents.
    """
    root = pathlib.Path(root)
    found: list[Entry] = [(arcroot, root, None)]
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip_names]
        base = pathlib.Path(folder)
        relative = base.relative_to(root).as_posix()
        prefix = arcroot if relative == "." else f"{arcroot}/{relative}"
        for name in [*dirs, *files]:
            if name not in skip_names:
                found.append((f"{prefix}/{name}", base / name, None))
    return found


def _sorted_entries(entries: Iterable[Entry]) -> list[Entry]:
    ordered = sorted(entries, key=lambda entry: entry[0])
    names = [entry[0] for entry in ordered]
    duplicates = sorted({a for a, b in zip(names, names[1:]) if a == b})
    if duplicates:
        raise ValueError(f"duplicate archive names: {', '.join(duplicates)}")
    bad = [n for n in names if not n or n.startswith("/") or ".." in n.split("/")]
    if bad:
        raise ValueError(f"archive names must be relative and stay inside: {', '.join(bad)}")
    return ordered


def _write_to_path(path: pathlib.Path, entries: list[Entry], mtime: int,
                   gzip_level: int | None) -> TarSummary:
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        with open(partial, "wb") as raw:
            summary = _write_stream(raw, entries, mtime, gzip_level)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return summary


class _HashingWriter(io.RawIOBase):
    """A write-only stream that hashes and counts what passes through it."""

    def __init__(self, target: BinaryIO) -> None:
        self._target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._target.write(data)
        self.digest.update(data)
        self.size += len(data)
        return len(data)


def _write_stream(out: BinaryIO, entries: list[Entry], mtime: int,
                  gzip_level: int | None) -> TarSummary:
    counted = _HashingWriter(out)
    if gzip_level is None:
        _write_members(counted, entries, mtime)
    else:
        # filename="" and mtime=0: the gzip header names no file and no time.
        with gzip.GzipFile(filename="", mode="wb", fileobj=counted,
                           compresslevel=gzip_level, mtime=0) as packed:
            _write_members(packed, entries, mtime)
    return TarSummary(counted.digest.hexdigest(), counted.size)


def _write_members(stream: BinaryIO, entries: list[Entry], mtime: int) -> None:
    # "w|": a plain sequential stream; tarfile never seeks and pads the end to
    # whole records, so the output depends on the entries only.
    with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for arcname, source, mode in entries:
            info, content = _member(arcname, source, mode, mtime)
            if content is None:
                tar.addfile(info)
            else:
                with content:
                    tar.addfile(info, content)


def _member(arcname: str, source: Source, mode: int | None,
            mtime: int) -> tuple[tarfile.TarInfo, BinaryIO | None]:
    info = tarfile.TarInfo(arcname)
    info.mtime, info.uid, info.gid, info.uname, info.gname = mtime, 0, 0, "", ""
    if isinstance(source, bytes):
        info.size, info.mode = len(source), 0o644 if mode is None else mode
        return info, io.BytesIO(source)
    path = pathlib.Path(source)
    status = path.lstat()
    if stat.S_ISLNK(status.st_mode):
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, os.readlink(path), 0o777
        return info, None
    if stat.S_ISDIR(status.st_mode):
        info.type, info.mode = tarfile.DIRTYPE, 0o755 if mode is None else mode
        return info, None
    if not stat.S_ISREG(status.st_mode):
        raise ValueError(f"{path}: only regular files, directories and symlinks can be archived")
    info.size = status.st_size
    info.mode = _normalized_mode(status.st_mode) if mode is None else mode
    return info, open(path, "rb")


def _normalized_mode(st_mode: int) -> int:
    return 0o755 if st_mode & 0o111 else 0o644

