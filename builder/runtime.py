"""The frozen runtime: ``payload/dragonball`` as a PyInstaller onedir, packed as a tar.gz.

The target servers have no Python, so the `dragonball` command travels frozen:
``dragonball/dragonball`` plus ``dragonball/_internal/`` (the interpreter, the
libraries, the package), packed as a deterministic tar.gz (`builder.detar`).

Two cache levels under ``<cache>/runtime/``, both keyed by the *inputs hash*:
every file under ``payload/`` (path and content; no ``__pycache__`` or
egg-info), pyproject.toml, the Python and PyInstaller versions, the name and
version of every distribution installed in the build venv (pyproject pins only
direct dependencies: a venv set up later can hold a newer transitive one, and a
runtime cached before must not stand for it) and `RUNTIME_FORMAT`:

- ``<hash>/dragonball/``: PyInstaller's onedir, with ``<hash>.json`` describing it.
  PyInstaller's output does not depend on ``SOURCE_DATE_EPOCH`` (checked: the same
  tree for two epochs), so a new commit with an unchanged payload freezes nothing.
- ``<hash>-<SOURCE_DATE_EPOCH>.tar.gz``: the packed runtime; the epoch is in every
  tar header, so it names the file too.

Entries unused for `KEEP_UNUSED_S` are removed after a build (a payload change
leaves a 20 MB onedir and a 10 MB tar.gz behind).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import logging
import os
import pathlib
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping

from dragonball.errors import BuildError

from builder import REPO_ROOT, cache, detar, elf, loader, process
from builder.progress import Reporter, Step
from builder.recipe import canonical_json

log = logging.getLogger(__name__)

#: Bump when how the runtime is frozen changes, so old cache entries are not reused.
# Left out of the packed runtime: caches, and what pip writes about *how* a package was
# installed (REQUESTED exists only when it was asked for by name; RECORD lists it). PyInstaller
# copies some packages' dist-info; with these the runtime's bytes depended on the build
# venv's install history, not on the pinned versions (two venvs, same key, other bytes).
PACKED_SKIP = frozenset({"__pycache__", "REQUESTED", "INSTALLER", "RECORD", "direct_url.json"})
RUNTIME_FORMAT = 4  # 2: install-local package metadata left out; 3: venv packages in the key;
#                      4: its own C library and loader (builder/loader.py)
NAME = "dragonball"
ENTRY = "payload/dragonball/__main__.py"
GZIP_LEVEL = 9
KEEP_UNUSED_S = 24 * 3600
#: SOURCE_DATE_EPOCH for PyInstaller: one fixed value, since one onedir serves every epoch.
FREEZE_EPOCH = 0
_SKIPPED_DIRS = ("__pycache__",)
_SETUP_HINT = "install the build tools into the venv: sudo bash scripts/setup.sh"
#: The manifest's floor.glibc of a runtime that needs no glibc of the server.
NO_GLIBC_FLOOR = "none"


@dataclasses.dataclass(frozen=True)
class RuntimeArtifact:
    """A frozen runtime tar.gz (top folder ``dragonball/``) and what it was made with."""

    path: pathlib.Path
    sha256: str
    size: int
    python_version: str
    pyinstaller_version: str
    glibc_floor: str  # "none" (it carries its own: loader.py), else the oldest glibc it runs on


@dataclasses.dataclass(frozen=True)
class FrozenTree:
    """A cached PyInstaller onedir and the versions it was made with."""

    onedir: pathlib.Path
    python_version: str
    pyinstaller_version: str
    glibc_floor: str


def build_runtime(cache_dir: pathlib.Path, reporter: Reporter, root: pathlib.Path = REPO_ROOT,
                  environ: Mapping[str, str] = os.environ) -> RuntimeArtifact:
    """Return the frozen runtime for the sources under `root`, building only what is missing."""
    epoch = detar.source_date_epoch(environ)
    key = inputs_hash(file_digests(root, input_files(root)), platform.python_version(),
                      pyinstaller_version(), installed_packages())
    folder = cache_dir / "runtime"
    found = _cached_artifact(folder, key, epoch)
    if found:
        reporter.note(f"runtime {key[:12]} is cached: PyInstaller skipped ({found.path})")
        return found
    with cache.locked(folder):
        tree = _cached_tree(folder, key) or _freeze(root, folder, key, reporter)
        with reporter.step(f"pack the runtime (tar, gzip -{GZIP_LEVEL})"):
            detar.write_tar(tar_path(folder, key, epoch),
                            detar.tree_entries(tree.onedir, NAME, skip_names=PACKED_SKIP),
                            epoch, gzip_level=GZIP_LEVEL)
        _prune(folder, time.time())
    found = _cached_artifact(folder, key, epoch)
    reporter.note(f"runtime {found.size / 1e6:.1f} MB, sha256 {found.sha256[:12]}…")
    return found


def input_files(root: pathlib.Path) -> list[str]:
    """The files the runtime is made from, relative to `root`, sorted (posix form)."""
    payload = root / "payload"
    found = [p for p in payload.rglob("*") if p.is_file() and _is_source(p.relative_to(payload))]
    return sorted([p.relative_to(root).as_posix() for p in found] + ["pyproject.toml"])


def _is_source(relative: pathlib.PurePath) -> bool:
    parts = relative.parts
    if any(p in _SKIPPED_DIRS or p.endswith(".egg-info") for p in parts):
        return False
    return relative.suffix not in (".pyc", ".pyo")


def file_digests(root: pathlib.Path, files: Iterable[str]) -> dict[str, str]:
    """sha256 (hex) of each file, by its path relative to `root`."""
    return {name: hashlib.sha256((root / name).read_bytes()).hexdigest() for name in files}


def inputs_hash(digests: Mapping[str, str], python_version: str, pyinstaller: str,
                packages: Mapping[str, str] | None = None) -> str:
    """sha256 (hex) naming the runtime built from these inputs (pure)."""
    key = {"files": dict(sorted(digests.items())), "python": python_version,
           "pyinstaller": pyinstaller, "packages": dict(sorted((packages or {}).items())),
           "format": RUNTIME_FORMAT}
    return hashlib.sha256(canonical_json(key).encode("utf-8")).hexdigest()


def data_files(files: Iterable[str]) -> list[tuple[str, str]]:
    """``(source, destination folder)`` for every non-Python file of the package (pure).

    PyInstaller collects modules by following imports; templates, static files
    and the like must be named with ``--add-data``, or the frozen program lacks them.
    """
    prefix = "payload/dragonball/"
    pairs = []
    for name in files:
        if name.startswith(prefix) and not name.endswith(".py"):
            folder = pathlib.PurePosixPath(name[len("payload/"):]).parent
            pairs.append((name, folder.as_posix()))
    return sorted(pairs)


def pyinstaller_command(python: str, root: pathlib.Path, work: pathlib.Path,
                        add_data: Iterable[tuple[str, str]], epoch: int) -> list[str]:
    """The PyInstaller command line (pure); `env` pins the hash seed and the build time."""
    argv = ["env", "PYTHONHASHSEED=0", f"SOURCE_DATE_EPOCH={epoch}",
            python, "-m", "PyInstaller", "--onedir", "--strip", "--noconfirm",
            "--name", NAME, "--distpath", str(work / "dist"), "--workpath", str(work / "build"),
            "--specpath", str(work), "--paths", str(root / "payload"),
            "--collect-submodules", "dragonball"]
    for source, folder in add_data:
        argv += ["--add-data", f"{root / source}:{folder}"]
    return argv + [str(root / ENTRY)]


def pyinstaller_version() -> str:
    """The installed PyInstaller's version; a `BuildError` when it is missing."""
    try:
        return importlib.metadata.version("pyinstaller")
    except importlib.metadata.PackageNotFoundError as e:
        raise BuildError(f"PyInstaller is not installed in {sys.prefix}", _SETUP_HINT) from e


def installed_packages() -> dict[str, str]:
    """Every distribution installed where this Python looks ({normalised name: version})."""
    found = {}
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name:
            found[name] = dist.version
    return found


def glibc_floor(onedir: pathlib.Path | None = None) -> str:
    """What glibc the frozen runtime needs of the server: "none" when it carries its own
    (builder/loader.py, checked when it was frozen), else the highest `GLIBC_x.y` its ELF
    files need (builder/elf.py), else the build machine's own version ("2.36"), an upper
    bound."""
    if onedir is not None:
        if (onedir / loader.INTERNAL / loader.LOADER).is_file():
            return NO_GLIBC_FLOOR
        found, _ = elf.tree_floor(onedir)
        if found:
            return found
    found = os.confstr("CS_GNU_LIBC_VERSION") or ""  # "glibc 2.36"
    return found.split()[-1] if found.startswith("glibc ") else "unknown"


def tar_path(folder: pathlib.Path, key: str, epoch: int) -> pathlib.Path:
    """Where the runtime with inputs hash `key`, packed with mtime `epoch`, is cached."""
    return folder / f"{key}-{epoch}.tar.gz"


def _freeze(root: pathlib.Path, folder: pathlib.Path, key: str, reporter: Reporter) -> FrozenTree:
    files = input_files(root)
    # The work folder sits in the cache, so the finished onedir is renamed into place.
    with tempfile.TemporaryDirectory(prefix=".work-", dir=folder) as temp:
        work = pathlib.Path(temp)
        argv = pyinstaller_command(sys.executable, root, work, data_files(files), FREEZE_EPOCH)
        with reporter.step(f"freeze the runtime with PyInstaller {pyinstaller_version()}") as step:
            process.run_streaming(argv, _pyinstaller_sink(step), hint=_SETUP_HINT)
        if not (work / "dist" / NAME / NAME).is_file():
            raise BuildError(f"PyInstaller finished but {work / 'dist' / NAME / NAME} is missing",
                             "rerun with --debug to see PyInstaller's whole output")
        _carry_libc(work / "dist" / NAME, reporter)
        shutil.rmtree(folder / key, ignore_errors=True)  # a leftover without its .json
        os.replace(work / "dist", folder / key)
    description = {"python_version": platform.python_version(),
                   "pyinstaller_version": pyinstaller_version(),
                   "glibc_floor": glibc_floor(folder / key / NAME)}
    partial = folder / f".{key}.json.partial"
    partial.write_text(json.dumps(description, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, folder / f"{key}.json")
    return FrozenTree(folder / key / NAME, **description)


def _carry_libc(onedir: pathlib.Path, reporter: Reporter) -> None:
    with reporter.step("put the C library and its loader into the runtime (patchelf)") as step:
        copied = loader.carry_libc(onedir)
        step.line(f"copied {', '.join(copied)}", keep=True)
        left = loader.tree_needs_host(onedir)
    if left:
        raise BuildError("the frozen runtime still needs from the server: "
                         f"{', '.join(sorted(left))}", "a builder bug: see builder/loader.py")


def _pyinstaller_sink(step: Step) -> process.LineSink:
    return lambda line: step.line(line, keep=" WARNING: " in line or " ERROR: " in line)


def _cached_tree(folder: pathlib.Path, key: str) -> FrozenTree | None:
    """The cached onedir for `key`, or None when it is missing or incomplete."""
    try:
        data = json.loads((folder / f"{key}.json").read_text(encoding="utf-8"))
        tree = FrozenTree(folder / key / NAME, data["python_version"],
                          data["pyinstaller_version"], data["glibc_floor"])
    except (OSError, ValueError, KeyError):
        return None
    if not (tree.onedir / NAME).is_file():
        return None
    scanned = glibc_floor(tree.onedir)   # a tree cached before the scan: its real floor
    return dataclasses.replace(tree, glibc_floor=scanned) if scanned != tree.glibc_floor \
        else tree


def _cached_artifact(folder: pathlib.Path, key: str, epoch: int) -> RuntimeArtifact | None:
    """The packed runtime for `key` and `epoch`, or None; marks what it uses as used."""
    tree, path = _cached_tree(folder, key), tar_path(folder, key, epoch)
    if tree is None or not path.is_file():
        return None
    for used in (path, folder / f"{key}.json", folder / key):
        os.utime(used)
    return RuntimeArtifact(path, _sha256_file(path), path.stat().st_size, tree.python_version,
                           tree.pyinstaller_version, tree.glibc_floor)


def _prune(folder: pathlib.Path, now: float) -> None:
    for entry in folder.iterdir():
        if entry.name.startswith(".") or now - entry.stat().st_mtime < KEEP_UNUSED_S:
            continue
        log.debug("removing %s: unused for a day", entry)
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _sha256_file(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        for chunk in iter(lambda: data.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
