"""The engine section's .debs copied out, checked (engine.unpack's work, on a stream).

The .bin's engine section is a tar: packages.json lists each .deb with its size and
SHA-256. Each is read in place (by offset, no extraction of the whole tar), written to a
temporary name, checked, then renamed; one already there with the right SHA-256 is kept.
The step that calls this is `unpack` in `engine/apply.py`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile

from dragonball.errors import InstallerError

PACKAGES_JSON = "packages.json"
CHUNK = 1 << 20


def tar_index(stream) -> dict:
    """name -> (offset of its data, size) of each member of the tar in `stream`."""
    try:
        with tarfile.open(fileobj=stream, mode="r:") as tar:
            return {m.name: (m.offset_data, m.size) for m in tar if m.isfile()}
    except tarfile.TarError as e:
        raise InstallerError(f"the engine section is not a tar: {e}",
                             "copy the .bin again and compare it with SHA256SUMS") from e


def read_member(stream, index: dict, name: str, limit: int = 1 << 20) -> bytes:
    offset, size = index[name]
    if size > limit:
        raise InstallerError(f"{name} in the engine section is {size} bytes: too big")
    stream.seek(offset)
    return stream.read(size)


def unpack_debs(stream, folder: str, progress=lambda text: None) -> int:
    """Copy each .deb packages.json lists out of the tar `stream` into `folder`, checked.

    A .deb already there with the right SHA-256 is kept; any other is written to a
    temporary name, checked, then renamed. Returns how many were written.
    """
    index = tar_index(stream)
    if PACKAGES_JSON not in index:
        raise InstallerError("the engine section has no packages.json",
                             "the .bin is incomplete: build it again")
    listing = read_member(stream, index, PACKAGES_JSON)
    packages = json.loads(listing)["packages"]
    total = sum(p["size"] for p in packages)
    done = written = 0
    for package in packages:
        name = package["filename"]
        target = os.path.join(folder, name)
        if not (os.path.isfile(target) and os.path.getsize(target) == package["size"]
                and file_sha256(target) == package["sha256"]):
            if name not in index:
                raise InstallerError(f"the engine section lacks {name}",
                                     "the .bin is incomplete: build it again")
            copy_checked(stream, index[name], target, package["sha256"])
            written += 1
        done += package["size"]
        progress(f"unpacking the engine's packages: {done / 1e6:.0f} of {total / 1e6:.0f} MB")
    tmp = os.path.join(folder, "." + PACKAGES_JSON)
    with open(tmp, "wb") as f:
        f.write(listing)
    os.replace(tmp, os.path.join(folder, PACKAGES_JSON))
    return written


def copy_checked(stream, where: tuple, target: str, sha256: str) -> None:
    offset, size = where
    digest = hashlib.sha256()
    tmp = target + ".part"
    stream.seek(offset)
    try:
        with open(tmp, "wb") as out:
            left = size
            while left:
                chunk = stream.read(min(CHUNK, left))
                if not chunk:
                    raise InstallerError(f"the engine section ends inside {os.path.basename(target)}",
                                         "copy the .bin again and compare it with SHA256SUMS")
                digest.update(chunk)
                out.write(chunk)
                left -= len(chunk)
            out.flush()
            os.fsync(out.fileno())
    except OSError as e:
        raise InstallerError(f"cannot write {tmp}: {e.strerror}",
                             "free some space on the data directory's file system") from e
    if digest.hexdigest() != sha256:
        os.unlink(tmp)
        raise InstallerError(f"{os.path.basename(target)} in the .bin has SHA-256 "
                             f"{digest.hexdigest()[:16]}…, packages.json says {sha256[:16]}…",
                             "copy the .bin again and compare it with SHA256SUMS")
    os.replace(tmp, target)


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
