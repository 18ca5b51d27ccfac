"""Volume copies, the agent's side that needs no engine: the checks of names, ids, offsets and
labels (pure), the checks of a tar's members before it is extracted (pure, over an open
file), and the staging folder where a volume's tar waits to be read or is written piece by
piece (`Staging`: files `<id>.tar` in the `dragonball-transfers` volume, docs/agent.md).

Every refusal is an ApiError with its HTTP status."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import secrets
import shutil
import tarfile
import time

from agent_api import ApiError

VOLUME_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
TRANSFER_ID = re.compile(r"[0-9a-f]{32}")
SHA256 = re.compile(r"[0-9a-f]{64}")
LABEL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,127}")
APP_LABEL = "io.dragonball.app"
CHUNK_BYTES = 1 << 20          # read and hashed this much at a time: memory stays bounded
PUT_LIMIT_BYTES = 64 << 20     # one PUT's body at most; a copy sends many
MAX_AGE_S = 24 * 3600          # a staged file untouched this long is removed
#: Tar member types a volume may hold: files, hard links, symlinks, folders. Devices, FIFOs
#: and the rest are refused (a data volume has none, and a device node is a way out).
MEMBER_TYPES = {tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.LNKTYPE, tarfile.SYMTYPE,
                tarfile.DIRTYPE}


# --- checks (pure) --------------------------------------------------------------------------

def matching(pattern: re.Pattern, value, what: str) -> str:
    """`value` when it is a string matching `pattern` whole, else 400."""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ApiError(400, f"{what} must match {pattern.pattern}, got {value!r}"[:300])
    return value


def volume_name(value) -> str:
    return matching(VOLUME_NAME, value, "the volume name")


def transfer_id(value) -> str:
    return matching(TRANSFER_ID, value, "the transfer id")


def sha256_hex(value) -> str:
    return matching(SHA256, value, "sha256 (64 lowercase hex digits)")


def offset_of(value, default: int | None = None) -> int:
    """A byte offset: digits only (no sign, no space); `default` when absent."""
    if value is None and default is not None:
        return default
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() or \
            len(value) > 18:
        raise ApiError(400, f"offset must be a number of bytes >= 0, got {value!r}")
    return int(value)


def volume_labels(body) -> dict:
    """The labels of a volume to create: {"labels": {key: value}}, with io.dragonball.app
    (the agent lists and removes labelled volumes only). Every problem at once."""
    labels = (body or {}).get("labels")
    if not isinstance(labels, dict):
        raise ApiError(400, 'the body must be {"labels": {...}}')
    problems = [f"label key {k!r} must match {LABEL_KEY.pattern}" for k in labels
                if not LABEL_KEY.fullmatch(k)]
    problems += [f"label {k}: the value must be a string of at most 256 characters"
                 for k, v in labels.items() if not isinstance(v, str) or len(v) > 256]
    if not VOLUME_NAME.fullmatch(str(labels.get(APP_LABEL, ""))):
        problems.append(f"label {APP_LABEL} must name the application")
    if problems:
        raise ApiError(400, "invalid labels: " + "; ".join(problems), problems=problems)
    return labels


def member_problem(member: tarfile.TarInfo, links: set) -> str | None:
    """What is wrong with one member of a volume's tar (names are relative to the volume's
    root, `./x` as the engine writes them), or None. `links`: the symlinks seen so far, so
    no member is written through one (`./l -> /etc`, then `./l/passwd`)."""
    name = member.name
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts:
        return f"{name!r}: absolute, or climbs out with '..'"
    if member.type not in MEMBER_TYPES:
        return f"{name!r}: a device, FIFO or other special file"
    if any("/".join(parts[:i]) in links for i in range(1, len(parts))):
        return f"{name!r}: written through a symbolic link"
    if member.islnk():
        target = [p for p in member.linkname.split("/") if p not in ("", ".")]
        if member.linkname.startswith("/") or ".." in target:
            return f"{name!r}: a hard link out of the volume ({member.linkname!r})"
    if member.issym():
        links.add("/".join(parts))
    return None


def tar_problems(tar_file, limit: int = 20) -> list[str]:
    """Every problem (the first `limit`) of the tar in `tar_file` (open, binary), read as a
    stream: headers only, the contents skipped. A file that is no tar is one problem."""
    problems, links = [], set()
    try:
        with tarfile.open(fileobj=tar_file, mode="r|") as tar:
            for member in tar:
                problem = member_problem(member, links)
                if problem:
                    problems.append(problem)
                    if len(problems) >= limit:
                        break
    except tarfile.TarError as e:
        problems.append(f"not a tar archive: {e}")
    return problems


# --- the staging folder ---------------------------------------------------------------------

class Staging:
    """The staged tars under `folder`: `<id>.tar`. The folder is the agent's (a named volume
    mounted by the service), so a staged file is on the engine's disk, beside the volumes."""

    def __init__(self, folder: str, clock=time.time) -> None:
        self.folder, self.clock = folder, clock

    def path(self, tid: str) -> str:
        return os.path.join(self.folder, transfer_id(tid) + ".tar")

    def free_bytes(self) -> int | None:
        """Free bytes on the engine's disk (where the staging folder and the volumes are);
        None when the folder is missing."""
        try:
            return shutil.disk_usage(self.folder).free
        except OSError:
            return None

    def _ready(self) -> None:
        if not os.path.isdir(self.folder):
            raise ApiError(503, f"the staging folder {self.folder} is missing: the agent's "
                                "service must mount the volume dragonball-transfers there "
                                "(reinstall the agent: agent.service)")

    def create(self) -> str:
        """A new, empty staged file; its id."""
        self._ready()
        self.sweep()
        tid = secrets.token_hex(16)
        with open(self.path(tid), "xb"):
            pass
        return tid

    def size(self, tid: str) -> int:
        try:
            return os.stat(self.path(tid)).st_size
        except FileNotFoundError as e:
            raise ApiError(404, f"no staged transfer {tid} on this node (removed after "
                                "a day, or when its copy ended)") from e

    def busy(self, tid: str) -> bool:
        """Whether a write holds the file now: its size is not final until it ends."""
        self.size(tid)
        fd = os.open(self.path(tid), os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def delete(self, tid: str) -> bool:
        try:
            os.unlink(self.path(tid))
            return True
        except FileNotFoundError:
            return False

    def sweep(self) -> list[str]:
        """Remove the staged files untouched for MAX_AGE_S; their names."""
        old = []
        for entry in os.scandir(self.folder):
            if entry.name.endswith(".tar") and \
                    self.clock() - entry.stat().st_mtime > MAX_AGE_S:
                os.unlink(entry.path)
                old.append(entry.name)
        return old

    def sha256(self, tid: str) -> str:
        digest = hashlib.sha256()
        with open(self.path(tid), "rb") as f:
            while chunk := f.read(CHUNK_BYTES):
                digest.update(chunk)
        return digest.hexdigest()

    def writer(self, tid: str, offset: int, limit: int = PUT_LIMIT_BYTES) -> StagedWriter:
        return StagedWriter(self.path(tid), tid, offset, limit)

    def reader(self, tid: str, offset: int, length: int | None):
        """(an iterator of the bytes from `offset`, `length` of them or all, the count)."""
        size = self.size(tid)
        if offset > size:
            raise ApiError(416, f"offset {offset} is past the end ({size} bytes)", size=size)
        count = size - offset if length is None else min(length, size - offset)
        f = open(self.path(tid), "rb")
        f.seek(offset)
        return chunks_of(f, count), count


def chunks_of(f, count: int):
    """`count` bytes of the open file `f`, CHUNK_BYTES at a time; `f` closed at the end."""
    try:
        while count > 0:
            chunk = f.read(min(CHUNK_BYTES, count))
            if not chunk:
                return
            count -= len(chunk)
            yield chunk
    finally:
        f.close()


class StagedWriter:
    """Appends one PUT's body to a staged file, at `offset` only when that is its size now
    (409 with the size, so a client resumes from there). Locked while open: a second write
    to the same file is 409 (busy). What arrives is written at once: a body cut short
    leaves its bytes, and the next write starts after them."""

    def __init__(self, path: str, tid: str, offset: int, limit: int) -> None:
        self.tid, self.limit, self.written = tid, limit, 0
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        except FileNotFoundError as e:
            raise ApiError(404, f"no staged transfer {tid} on this node") from e
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            os.close(self.fd)
            raise ApiError(409, f"transfer {tid} is being written by another call",
                           busy=True) from e
        self.size = os.fstat(self.fd).st_size
        if offset != self.size:
            self.close()
            raise ApiError(409, f"offset {offset} is not the staged size {self.size}: "
                                "write from there", size=self.size)

    def write(self, chunk: bytes) -> None:
        if self.written + len(chunk) > self.limit:
            raise ApiError(413, f"one write takes at most {self.limit} bytes",
                           size=self.size + self.written)
        view = memoryview(chunk)
        try:
            while view:
                done = os.write(self.fd, view)
                view, self.written = view[done:], self.written + done
        except OSError as e:
            status = 507 if e.errno in (errno.ENOSPC, errno.EDQUOT) else 500
            raise ApiError(status, f"cannot write transfer {self.tid}: {e}",
                           size=self.size + self.written) from e

    def __enter__(self) -> StagedWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def finish(self) -> tuple:
        return 200, {"id": self.tid, "size": self.size + self.written}

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # and the lock with it
            self.fd = None
