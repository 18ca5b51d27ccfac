"""The bundled engine as a private tree: no package manager, no glibc floor (issue 14).

The bits are Debian's (docker.io, containerd, runc, tini and their closure, fetched as
.debs by `builder/packages.py`: a well-maintained source with security updates). Installing
them with dpkg needed dpkg on the server and glibc 2.34, and took ~6 s per server (26–31 s
each when nine install at once on two cores). Instead the build unpacks the .debs
(dpkg-deb -x) and makes a tree that runs on any x86_64 Linux:

    bin/        dockerd, docker, docker-proxy, docker-init (tini-static), containerd,
                containerd-shim-runc-v2, runc
    fallback/   xtables-nft-multi and iptables, ip6tables, -save, -restore (scripts naming
                it and its extensions): last in PATH, for a server without iptables
    lib/        every shared library they need (from the .debs, else from the build
                machine: the glibc family and minbase's libsystemd, libseccomp, …), the
                loader, and xtables/ (iptables' extensions, dlopen'ed)

patchelf (Debian's package, the standard tool) sets each executable's interpreter to the
installed tree's loader (`paths.ENGINE_LOADER`) and every file's RUNPATH to the installed
tree's ``lib/`` (an absolute path, `paths.ENGINE_DIR`/lib), so the kernel starts our loader
with our libraries, also when a program re-executes itself (dockerd's chrootarchive through
/proc/self/exe; runc init from a memfd copy of itself): the paths are in the file, not in
the environment. Not ``$ORIGIN``: a program run from a memfd has no directory, the loader
then skips such a RUNPATH and takes the server's libc, a different glibc than our loader's
(runc init died with "can't copy bootstrap data to pipe" on Debian 11 and 13, measured). The
same loader-in-the-file design as the runtime's (`builder/loader.py`), which never runs
from a memfd and keeps ``$ORIGIN`` (it is also run from the stub's private folder).

The section (engine.tar) holds ``engine.json`` (format, versions, and each file: path, mode,
size, SHA-256 of its content) and each file gzip'd as ``files/<path>.gz``: the installer
(installer/engine/unpack.py) decompresses them in parallel and checks each. Made once per
package set and format, cached beside the .debs.

    build_tree(package_set, folder)          # -> EngineTree (the section and its listing)
    tree_problems(tree)                      # what a finished tree would take from the host
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import logging
import os
import pathlib
import shutil
import tarfile
import tempfile
from collections.abc import Iterable

from dragonball.errors import BuildError
from dragonball.shared import paths

from builder import detar, elf, process
from builder.loader import LIBRARY_DIRS, elf_files, find_library, host_libraries, needed, \
    patchelf

log = logging.getLogger(__name__)

TREE_FORMAT = 1   # the section's layout (installer/engine/unpack.py reads this one)
#: What the tree holds: raised when it changes, so that a cached section is made again.
CONTENT = 4
LISTING = "engine.json"
#: name in bin/ -> where Debian's packages put it
BINARIES = {
    "dockerd": "usr/sbin/dockerd",
    "docker": "usr/bin/docker",
    "docker-proxy": "usr/sbin/docker-proxy",
    "docker-init": "usr/bin/tini-static",
    "containerd": "usr/bin/containerd",
    "containerd-shim-runc-v2": "usr/bin/containerd-shim-runc-v2",
    "runc": "usr/sbin/runc",
}
#: iptables for a server that has none (dockerd and the DRAGONBALL chain call it): the nft
#: variant (RHEL 8+, Debian 10+ default), in fallback/, which comes LAST in every PATH, so
#: a server's own iptables (legacy or nft, whatever its rules are in) is always preferred.
IPTABLES = "usr/sbin/xtables-nft-multi"
XTABLES = "usr/lib/x86_64-linux-gnu/xtables"
IPTABLES_COMMANDS = ("iptables", "iptables-save", "iptables-restore", "ip6tables",
                     "ip6tables-save", "ip6tables-restore")
LOADER = os.path.basename(paths.ENGINE_LOADER)
RUNPATH = f"{paths.ENGINE_DIR}/lib"
GZIP_LEVEL = 6
_HINT = "install patchelf and dpkg-deb (sudo bash scripts/setup.sh), then build again"


@dataclasses.dataclass(frozen=True)
class EngineTree:
    """engine.tar (the section) and what it holds."""

    path: pathlib.Path
    sha256: str
    size: int
    listing: dict


def build_from_packages(package_set, folder: pathlib.Path, epoch: int = 0) -> EngineTree:
    """The engine section for `package_set` (builder/packages.py: engine.tar of .debs and its
    listing), made in `folder` or taken from there when already made."""
    version = next((p["version"] for p in package_set.packages if p["name"] == "docker.io"),
                   "unknown")

    def debs(temp: pathlib.Path) -> list[pathlib.Path]:
        with tarfile.open(package_set.path) as tar:
            members = [m for m in tar if m.isfile() and m.name.endswith(".deb")
                       and "/" not in m.name]
            for member in members:
                with tar.extractfile(member) as data, open(temp / member.name, "wb") as out:
                    shutil.copyfileobj(data, out)
        return [temp / m.name for m in members]
    return build_tree(debs, version, package_set.sha256, folder, epoch)


def build_tree(debs, version: str, key: str, folder: pathlib.Path,
               epoch: int = 0) -> EngineTree:
    """The engine section for the .debs `debs(temp)` puts in the folder `temp` (`key`: what
    identifies them, e.g. engine.tar's sha256), made in `folder` or taken from there."""
    section = folder / f"tree-{key[:16]}-f{TREE_FORMAT}c{CONTENT}-{epoch}.tar"
    if not section.is_file():
        if shutil.which("patchelf") is None or shutil.which("dpkg-deb") is None:
            raise BuildError("the engine tree needs patchelf and dpkg-deb on this machine",
                             _HINT)
        with tempfile.TemporaryDirectory(prefix="dragonball-engine-") as temp:
            temp = pathlib.Path(temp)
            staging, tree = temp / "debs", temp / "tree"
            for deb in debs(temp):
                process.run_capture(["dpkg-deb", "-x", str(deb), str(staging)], hint=_HINT)
            make_tree(staging, tree)
            problems = tree_problems(tree)
            if problems:
                raise BuildError("the engine tree would need from the server: "
                                 + ", ".join(sorted(problems)),
                                 "report it: every library should be in the tree")
            write_section(tree, version, section, epoch)
    return EngineTree(section, _sha256_file(section), section.stat().st_size,
                      read_listing(section))


def make_tree(staging: pathlib.Path, tree: pathlib.Path,
              library_dirs: Iterable[str] = LIBRARY_DIRS) -> list[str]:
    """bin/ and lib/ of the tree from the unpacked .debs in `staging`, patched; returns the
    libraries copied. A library is taken from the .debs first, else from this machine."""
    bin_dir, lib_dir, fallback = tree / "bin", tree / "lib", tree / "fallback"
    for folder in (bin_dir, lib_dir, fallback):
        folder.mkdir(parents=True)
    for name, source in BINARIES.items():
        shutil.copy(_packaged(staging, source), bin_dir / name)
    shutil.copy(_packaged(staging, IPTABLES), fallback / os.path.basename(IPTABLES))
    shutil.copytree(_packaged(staging, XTABLES), lib_dir / "xtables")
    for command in IPTABLES_COMMANDS:
        script = fallback / command
        script.write_text(iptables_script(command))
        script.chmod(0o755)
    dirs = [str(staging / d.lstrip("/")) for d in LIBRARY_DIRS] + list(library_dirs)
    copied = []
    while True:
        files = [f for f in elf_files(tree) if _dynamic(f)]
        missing = host_libraries({f: needed(f) for f in files},
                                 {p.name for p in lib_dir.iterdir()})
        if not missing:
            break
        for name in sorted(missing):
            found = find_library(name, dirs)
            if found is None:
                raise BuildError(f"the engine needs {name}, found neither in its packages "
                                 "nor on this machine", "install the package that has it")
            shutil.copy(found, lib_dir / name)
            copied.append(name)
    loader = find_library(LOADER, ["/lib64", *library_dirs])
    if loader is None:
        raise BuildError(f"this machine has no {LOADER}", "build on Debian 12, x86_64")
    shutil.copy(loader, lib_dir / LOADER)
    for file in elf_files(tree):
        if file.name == LOADER or not _dynamic(file):
            continue
        patchelf("--set-rpath", RUNPATH, file)
        if file.parent in (bin_dir, fallback):
            patchelf("--set-interpreter", paths.ENGINE_LOADER, file)
    return sorted(copied)


def iptables_script(command: str, engine_dir: str = paths.ENGINE_DIR) -> str:
    """fallback/<command>: the tree's xtables-nft-multi as `command`, with its extensions
    (pure)."""
    return ("#!/bin/sh\n# DragonBall's engine: iptables (nft) for a server that has none\n"
            f"XTABLES_LIBDIR={engine_dir}/lib/xtables exec "
            f"{engine_dir}/fallback/xtables-nft-multi {command} \"$@\"\n")


def _packaged(staging: pathlib.Path, source: str) -> pathlib.Path:
    found = staging / source
    if not found.exists():
        raise BuildError(f"the engine's packages have no {source}",
                         "check release.yaml's engine.packages (docker.io, containerd, runc, "
                         "tini, iptables)")
    return found


def tree_problems(tree: pathlib.Path) -> set[str]:
    """What the tree would take from the server (empty: nothing): sonames it lacks, and an
    executable whose interpreter is not the tree's installed loader."""
    files = [f for f in elf_files(tree) if f.name != LOADER and _dynamic(f)]
    problems = host_libraries({f: needed(f) for f in files},
                              {p.name for p in (tree / "lib").iterdir()})
    for file in files:
        found = process.run_capture(["patchelf", "--print-rpath", str(file)], hint=_HINT).strip()
        if found != RUNPATH:
            problems.add(f"{file.name}'s RUNPATH {found or '(none)'}")
        if file.parent.name in ("bin", "fallback"):
            interpreter = _interpreter(file)
            if interpreter != paths.ENGINE_LOADER:
                problems.add(f"{file.name}'s interpreter {interpreter}")
    if not (tree / "lib" / LOADER).is_file():
        problems.add(LOADER)
    return problems


def write_section(tree: pathlib.Path, version: str, section: pathlib.Path, epoch: int) -> None:
    """engine.tar: the listing and each file of `tree` gzip'd (deterministic)."""
    files, entries = [], []
    with tempfile.TemporaryDirectory(prefix="dragonball-engine-gz-") as temp:
        for file in sorted(p for p in tree.rglob("*") if p.is_file()):
            relative = file.relative_to(tree).as_posix()
            data = file.read_bytes()
            packed = pathlib.Path(temp) / (relative.replace("/", "__") + ".gz")
            packed.write_bytes(gzip.compress(data, GZIP_LEVEL, mtime=0))
            # programs, and the loader: the kernel opens an interpreter only if executable
            executable = relative.startswith(("bin/", "fallback/")) or file.name == LOADER
            files.append({"path": relative, "mode": 0o755 if executable else 0o644,
                          "size": len(data),
                          "sha256": hashlib.sha256(data).hexdigest(),
                          "member": f"files/{relative}.gz"})
            entries.append((f"files/{relative}.gz", packed, 0o644))
        listing = {"format": TREE_FORMAT, "version": version, "files": files}
        entries.append((LISTING, json.dumps(listing, indent=1, sort_keys=True).encode(), 0o644))
        detar.write_tar(section, entries, epoch)


def read_listing(section: pathlib.Path) -> dict:
    with tarfile.open(section) as tar:
        return json.load(tar.extractfile(LISTING))


def _dynamic(file: pathlib.Path) -> bool:
    """Whether the ELF file links shared libraries (the static tini does not)."""
    return elf.is_dynamic(file)


def _interpreter(file: pathlib.Path) -> str:
    try:
        return process.run_capture(["patchelf", "--print-interpreter", str(file)],
                                   hint=_HINT).strip()
    except BuildError:
        return "(none: static)"


def _sha256_file(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
