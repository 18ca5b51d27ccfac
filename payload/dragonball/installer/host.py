"""The server the installer changes: its files under a root, and the programs it runs.

Every change install and reset make goes through a `Host`, so the appliers are
tested on a temporary root with a scripted runner (tests/unit/test_install_apply.py)
and run for real with root "/". Programs are found under the root in root's usual
folders (/usr/bin first) and get an argv list, never a shell string; their
environment is the one the frozen runtime was started with (its LD_LIBRARY_PATH
undone, `child_environment`) with a fixed PATH, since dpkg's maintainer scripts
need the sbin folders.

A call whose arguments are secret (the Swarm join's token) does not go through a program's
argv, which every user of the server can read: it goes to the engine's HTTP API,
`host.engine` (installer/engine/api.py; a fake in tests).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence

from dragonball.errors import InstallerError
from dragonball.installer.engine.api import DOCKER_SOCKET, EngineApi
from dragonball.installer.preflight.facts import relative
from dragonball.shared.childenv import SEARCH_PATH, child_environment

log = logging.getLogger(__name__)

#: PATH of every program the installer runs (and of what they run in turn).
CHILD_PATH = ("/opt/dragonball/engine/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/sbin:"
              "/usr/local/bin:/opt/dragonball/engine/fallback")
DEFAULT_TIMEOUT_S = 120


@dataclasses.dataclass(frozen=True)
class Completed:
    """What a program did: exit status and its output as text."""

    argv: tuple
    code: int
    out: str
    err: str

    @property
    def ok(self) -> bool:
        return self.code == 0

    def describe(self) -> str:
        tail = (self.err.strip() or self.out.strip()).splitlines()[-3:]
        return f"{' '.join(self.argv)} exited {self.code}" + (
            ": " + " / ".join(tail) if tail else "")


#: runner(argv, env, timeout, stdin bytes or None) -> Completed
Runner = Callable[[Sequence[str], Mapping[str, str], float, bytes | None], Completed]


def subprocess_runner(argv, env, timeout, stdin) -> Completed:
    try:
        done = subprocess.run(list(argv), env=dict(env), capture_output=True, timeout=timeout,
                              input=stdin, stdin=None if stdin is not None else
                              subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise InstallerError(f"{' '.join(argv)} did not finish within {timeout:.0f} s",
                             "see /var/log/dragonball/install.log; run the command again") from e
    except OSError as e:
        raise InstallerError(f"cannot run {argv[0]}: {e.strerror or e}") from e
    return Completed(tuple(argv), done.returncode, done.stdout.decode(errors="replace"),
                     done.stderr.decode(errors="replace"))


class Host:
    """The server under `root` ("/" for this one)."""

    def __init__(self, root: str = "/", runner: Runner | None = None,
                 environ: Mapping[str, str] | None = None, engine=None) -> None:
        """`engine`: an `EngineApi`-shaped object (tests), else the one on the root's
        /var/run/docker.sock."""
        self.root = root
        self.runner = runner or subprocess_runner
        self.engine = engine or EngineApi(self.path(DOCKER_SOCKET))
        env = child_environment(dict(os.environ if environ is None else environ))
        env["PATH"] = CHILD_PATH
        self.env = env

    # --- files -------------------------------------------------------------------------

    def path(self, path: str) -> str:
        """Where the server's absolute `path` is on this machine."""
        return os.path.join(self.root, relative(path))

    def exists(self, path: str) -> bool:
        return os.path.lexists(self.path(path))

    def read_bytes(self, path: str) -> bytes | None:
        try:
            with open(self.path(path), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise InstallerError(f"cannot read {path}: {e.strerror}") from e

    def read_text(self, path: str) -> str | None:
        """The file's text (undecodable bytes kept as surrogates), None when absent."""
        data = self.read_bytes(path)
        return None if data is None else data.decode("utf-8", errors="surrogateescape")

    def mode(self, path: str) -> int | None:
        try:
            return os.stat(self.path(path)).st_mode & 0o7777
        except FileNotFoundError:
            return None

    def write_text(self, path: str, text: str, mode: int = 0o644) -> list[str]:
        """Replace `path` atomically with `text`; return the folders it had to create."""
        created = self.make_dirs(os.path.dirname(path))
        target = self.path(path)
        try:
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".dragonball-")
            with os.fdopen(fd, "wb") as f:
                f.write(text.encode("utf-8", errors="surrogateescape"))
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, target)
        except OSError as e:
            raise InstallerError(f"cannot write {path}: {e.strerror}",
                                 "check the file system is writable and not full") from e
        log.debug("wrote %s (%d bytes, mode %o)", path, len(text), mode)
        return created

    def make_dirs(self, folder: str, mode: int = 0o755) -> list[str]:
        """Create `folder` and missing parents; return those created, outermost first."""
        missing = []
        current = os.path.normpath(folder)
        while current not in ("/", "") and not self.exists(current):
            missing.append(current)
            current = os.path.dirname(current)
        for item in reversed(missing):
            try:
                os.mkdir(self.path(item), mode)
            except FileExistsError:
                pass
            except OSError as e:
                raise InstallerError(f"cannot create {item}: {e.strerror}") from e
        return list(reversed(missing))

    def remove(self, path: str) -> bool:
        """Remove a file; True if it was there."""
        try:
            os.unlink(self.path(path))
        except FileNotFoundError:
            return False
        except OSError as e:
            raise InstallerError(f"cannot remove {path}: {e.strerror}") from e
        log.debug("removed %s", path)
        return True

    def remove_empty_dirs(self, folders: Sequence[str]) -> None:
        """Remove each folder (innermost first) that is empty now; keep the others."""
        for folder in sorted(folders, key=len, reverse=True):
            try:
                os.rmdir(self.path(folder))
            except OSError:
                log.debug("kept %s (not empty or gone)", folder)

    # --- programs ----------------------------------------------------------------------

    def which(self, name: str) -> str | None:
        """The server's absolute path of program `name`, looked for in /usr/bin first."""
        for folder in SEARCH_PATH:
            candidate = os.path.join(folder, name)
            real = self.path(candidate)
            if os.path.isfile(real) and os.access(real, os.X_OK):
                return candidate
        return None

    def run(self, argv: Sequence[str], check: bool = True, timeout: float = DEFAULT_TIMEOUT_S,
            env: Mapping[str, str] | None = None, stdin: bytes | None = None,
            hint: str = "") -> Completed:
        """Run `argv` (its program found with `which`); `check` raises on a non-zero exit."""
        program = argv[0] if os.path.isabs(argv[0]) else self.which(argv[0])
        if program is None:
            raise InstallerError(f"{argv[0]} is not installed on this server",
                                 hint or f"install {argv[0]}, then run the command again")
        full = [program, *argv[1:]]
        done = self.runner(full, {**self.env, **(env or {})}, timeout, stdin)
        log.debug("ran %s: exit %d", " ".join(full), done.code)
        for stream, text in (("stdout", done.out), ("stderr", done.err)):
            if text.strip():
                log.debug("%s %s:\n%s", argv[0], stream, text.rstrip())
        if check and not done.ok:
            raise InstallerError(done.describe(),
                                 hint or "see /var/log/dragonball/install.log for its output")
        return done
