"""The engine's private tree copied out of the .bin, each file checked (engine.files' work).

The .bin's engine section is a tar (builder/engine_tree.py): ``engine.json`` lists each
file of the tree (path, mode, size, SHA-256 of its content) and the file itself is the
member ``files/<path>.gz``. Each is read in place (by offset, no extraction of the tar),
decompressed into a temporary name beside its place, checked, then renamed; a file already
there with the right size and SHA-256 is kept. Files are done by a few threads at once
(zlib and hashlib release the GIL: ~190 MB in well under a second on two cores), each on
its own handle of the section. The step that calls this is `unpack` in `engine/apply.py`.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import posixpath
import tarfile
import threading
import zlib

from dragonball.errors import InstallerError

LISTING = "engine.json"
FORMAT = 1
CHUNK = 1 << 20
WORKERS = 4
_AGAIN = "copy the .bin again and compare it with SHA256SUMS"


def tar_index(stream) -> dict:
    """name -> (offset of its data, size) of each member of the tar in `stream`."""
    try:
        with tarfile.open(fileobj=stream, mode="r:") as tar:
            return {m.name: (m.offset_data, m.size) for m in tar if m.isfile()}
    except tarfile.TarError as e:
        raise InstallerError(f"the engine section is not a tar: {e}", _AGAIN) from e


def read_member(stream, index: dict, name: str, limit: int = 1 << 20) -> bytes:
    offset, size = index[name]
    if size > limit:
        raise InstallerError(f"{name} in the engine section is {size} bytes: too big", _AGAIN)
    stream.seek(offset)
    return stream.read(size)


def read_listing(stream) -> tuple[dict, dict]:
    """(the section's tar index, its engine.json checked: format, safe relative paths)."""
    index = tar_index(stream)
    if LISTING not in index:
        raise InstallerError("the engine section has no engine.json",
                             "the .bin is incomplete or from an older release: build it again")
    try:
        listing = json.loads(read_member(stream, index, LISTING))
    except ValueError as e:
        raise InstallerError(f"engine.json in the .bin is not JSON: {e}", _AGAIN) from e
    if listing.get("format") != FORMAT:
        raise InstallerError(f"the engine section's format is {listing.get('format')!r}, this "
                             f"runtime reads {FORMAT}", "use the .bin's own runtime")
    for entry in listing.get("files", []):
        path = entry.get("path", "")
        if (not path or path.startswith("/") or ".." in path.split("/")
                or posixpath.normpath(path) != path or entry.get("member") not in index):
            raise InstallerError(f"engine.json names a bad file {path!r}", _AGAIN)
    return index, listing


def unpack_tree(open_section, folder: str, progress=lambda text: None) -> int:
    """Copy each file of the engine tree into `folder`, checked; return how many were written.

    `open_section()` gives a context manager of a seekable view of the section (called once
    per worker). A file already in place with the right size, mode and SHA-256 is kept.
    """
    with open_section() as stream:
        index, listing = read_listing(stream)
    files = listing["files"]
    total, lock, done = sum(f["size"] for f in files), threading.Lock(), [0]

    def place(stream, entry: dict) -> int:
        target = os.path.join(folder, entry["path"])
        fresh = not _intact(target, entry)
        if fresh:
            _copy_checked(stream, index[entry["member"]], target, entry)
        with lock:
            done[0] += entry["size"]
            progress(f"unpacking the engine: {done[0] / 1e6:.0f} of {total / 1e6:.0f} MB")
        return int(fresh)

    def work(group: list) -> int:
        with open_section() as stream:
            return sum(place(stream, entry) for entry in group)

    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        return sum(pool.map(work, shares(files, WORKERS)))


def shares(files: list, workers: int) -> list[list]:
    """`files` in up to `workers` groups of about the same total size (biggest first, each
    to the lightest group so far), pure."""
    groups = [[] for _ in range(min(workers, len(files)))]
    loads = [0] * len(groups)
    for entry in sorted(files, key=lambda f: -f["size"]):
        lightest = loads.index(min(loads))
        groups[lightest].append(entry)
        loads[lightest] += entry["size"]
    return groups


def _intact(target: str, entry: dict) -> bool:
    return (os.path.isfile(target) and not os.path.islink(target)
            and os.path.getsize(target) == entry["size"]
            and file_sha256(target) == entry["sha256"]
            and (os.stat(target).st_mode & 0o7777) == entry["mode"])


def _copy_checked(stream, where: tuple, target: str, entry: dict) -> None:
    offset, size = where
    digest, inflate = hashlib.sha256(), zlib.decompressobj(16 + zlib.MAX_WBITS)
    os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
    tmp, written = f"{target}.part", 0
    stream.seek(offset)
    try:
        if os.path.lexists(tmp):       # a killed run's half-written file (or anything else)
            os.unlink(tmp)
        # never through a link planted at that name: a new file, or an error
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            left = size
            while left:
                chunk = stream.read(min(CHUNK, left))
                if not chunk:
                    raise InstallerError(f"the engine section ends inside {entry['path']}",
                                         _AGAIN)
                left -= len(chunk)
                data = inflate.decompress(chunk, entry["size"] - written + 1)
                written += len(data)
                if written > entry["size"] or inflate.unconsumed_tail:
                    raise InstallerError(f"{entry['path']} in the .bin is bigger than "
                                         "engine.json says", _AGAIN)
                digest.update(data)
                out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, entry["mode"])
    except zlib.error as e:
        os.unlink(tmp)
        raise InstallerError(f"{entry['path']} in the .bin is not valid gzip: {e}", _AGAIN) \
            from e
    except OSError as e:
        raise InstallerError(f"cannot write {tmp}: {e.strerror}",
                             "free some space on /opt's file system") from e
    if digest.hexdigest() != entry["sha256"] or written != entry["size"]:
        os.unlink(tmp)
        raise InstallerError(f"{entry['path']} in the .bin has SHA-256 "
                             f"{digest.hexdigest()[:16]}…, engine.json says "
                             f"{entry['sha256'][:16]}…", _AGAIN)
    os.replace(tmp, target)


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
