"""The frozen runtime: ``payload/dragonball`` as a PyInstaller onedir, packed as a tar.gz.

The target servers have no Python, so the `dragonball` command travels frozen:
``dragonball/dragonball`` plus ``dragonball/_internal/`` (the interpreter, the
libraries, the package). The result is a deterministic tar.gz (`builder.detar`)
cached as ``<cache>/runtime/<inputs hash>.tar.gz`` with a ``.json`` beside it that
describes it; unchanged inputs return the cached file without running PyInstaller.

The inputs hash covers every file under ``payload/`` (path and content; no
``__pycache__`` or egg-info), pyproject.toml (the pinned dependencies), the
Python and PyInstaller versions, ``SOURCE_DATE_EPOCH`` (it is in every tar
header) and `RUNTIME_FORMAT`.
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
import sys
import tempfile
from collections.abc import Iterable, Mapping

from dragonball.errors import BuildError

from builder import REPO_ROOT, cache, detar, process
from builder.progress import Reporter, Step
from builder.recipe import canonical_json

log = logging.getLogger(__name__)

#: Bump when how the runtime is frozen or packed changes, so old cache entries are not reused.
RUNTIME_FORMAT = 1
NAME = "dragonball"
ENTRY = "payload/dragonball/__main__.py"
GZIP_LEVEL = 9
_SKIPPED_DIRS = ("__pycache__",)
_SETUP_HINT = "install the build tools into the venv: sudo bash scripts/setup.sh"


@dataclasses.dataclass(frozen=True)
class RuntimeArtifact:
    """A frozen runtime tar.gz (top folder ``dragonball/``) and what it was made with."""

    path: pathlib.Path
    sha256: str
    size: int
    python_version: str
    pyinstaller_version: str
    glibc_floor: str  # the oldest glibc it runs on: the build machine's


def build_runtime(cache_dir: pathlib.Path, reporter: Reporter, root: pathlib.Path = REPO_ROOT,
                  environ: Mapping[str, str] = os.environ) -> RuntimeArtifact:
    """Return the frozen runtime for the sources under `root`, building it only when missing."""
    epoch = detar.source_date_epoch(environ)
    key = inputs_hash(file_digests(root, input_files(root)), platform.python_version(),
                      pyinstaller_version(), epoch)
    folder = cache_dir / "runtime"
    cached = _read_cached(folder, key)
    if cached:
        reporter.note(f"runtime {key[:12]} is cached: PyInstaller skipped ({cached.path})")
        return cached
    with cache.locked(folder):
        cached = _read_cached(folder, key)  # another build may have made it while we waited
        if cached:
            return cached
        with reporter.step(f"freeze the runtime with PyInstaller {pyinstaller_version()}") as step:
            artifact = _build(root, folder, key, epoch, step)
    reporter.note(f"runtime {artifact.size / 1e6:.1f} MB, sha256 {artifact.sha256[:12]}…")
    return artifact


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
                epoch: int) -> str:
    """sha256 (hex) naming the runtime built from these inputs (pure)."""
    key = {"files": dict(sorted(digests.items())), "python": python_version,
           "pyinstaller": pyinstaller, "source_date_epoch": epoch, "format": RUNTIME_FORMAT}
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


def glibc_floor() -> str:
    """The build machine's glibc version ("2.36"): the frozen runtime needs at least that."""
    found = os.confstr("CS_GNU_LIBC_VERSION") or ""  # "glibc 2.36"
    return found.split()[-1] if found.startswith("glibc ") else "unknown"


def tar_path(folder: pathlib.Path, key: str) -> pathlib.Path:
    """Where the runtime with inputs hash `key` is cached."""
    return folder / f"{key}.tar.gz"


def _build(root: pathlib.Path, folder: pathlib.Path, key: str, epoch: int,
           step: Step) -> RuntimeArtifact:
    files = input_files(root)
    with tempfile.TemporaryDirectory(prefix="dragonball-runtime-") as temp:
        work = pathlib.Path(temp)
        argv = pyinstaller_command(sys.executable, root, work, data_files(files), epoch)
        process.run_streaming(argv, _pyinstaller_sink(step), hint=_SETUP_HINT)
        onedir = work / "dist" / NAME
        if not (onedir / NAME).is_file():
            raise BuildError(f"PyInstaller finished but {onedir / NAME} is missing",
                             "rerun with --debug to see PyInstaller's whole output")
        summary = detar.write_tar(tar_path(folder, key), detar.tree_entries(onedir, NAME),
                                  epoch, gzip_level=GZIP_LEVEL)
    artifact = RuntimeArtifact(tar_path(folder, key), summary.sha256, summary.size,
                               platform.python_version(), pyinstaller_version(), glibc_floor())
    _write_description(folder, key, artifact)
    return artifact


def _pyinstaller_sink(step: Step) -> process.LineSink:
    return lambda line: step.line(line, keep=" WARNING: " in line or " ERROR: " in line)


def _write_description(folder: pathlib.Path, key: str, artifact: RuntimeArtifact) -> None:
    data = {field.name: str(getattr(artifact, field.name))
            for field in dataclasses.fields(artifact) if field.name != "path"}
    partial = folder / f".{key}.json.partial"
    partial.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, folder / f"{key}.json")


def _read_cached(folder: pathlib.Path, key: str) -> RuntimeArtifact | None:
    """The cached runtime for `key`, or None when missing, unreadable or corrupt."""
    path = tar_path(folder, key)
    try:
        data = json.loads((folder / f"{key}.json").read_text(encoding="utf-8"))
        digest = _sha256_file(path)
    except (OSError, ValueError):
        return None
    if digest != data.get("sha256"):
        log.warning("cached runtime %s does not match its description; rebuilding it", path)
        return None
    return RuntimeArtifact(path, digest, path.stat().st_size, data["python_version"],
                           data["pyinstaller_version"], data["glibc_floor"])


def _sha256_file(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        for chunk in iter(lambda: data.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()

