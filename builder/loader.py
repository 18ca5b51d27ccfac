"""The frozen runtime carries its own C library and dynamic loader: no glibc floor (issue 14).

PyInstaller leaves glibc out of the onedir (libc, libm, libpthread, libdl, librt and the
loader): the runtime then needs the server's glibc to be at least as new as the build
machine's (2.35 measured on Debian 12: libpython, libgcc_s). staticx over a onefile was
measured not to lift that (the extracted libpython took the server's libm). So, after
PyInstaller, `carry_libc` puts into ``_internal/``:

- every shared library a file of the tree needs that the tree does not hold, and what those
  need in turn, copied from the build machine (the glibc family; libnss_compat too, which
  glibc loads itself when nsswitch.conf says ``compat``, SUSE's default);
- the build machine's dynamic loader as ``_internal/ld-linux-x86-64.so.2``;

and sets, with patchelf (Debian's package, the standard tool for it), every ELF file's
RUNPATH to ``$ORIGIN/<the way to _internal>`` and the executable's interpreter to where the
installed runtime keeps the loader (`INSTALLED_LOADER`). So:

- the installed copy (/opt/dragonball/runtime, the portal's service and the `dragonball`
  command) runs as any program: the kernel starts our loader, which loads our libraries;
- a copy anywhere else (the stub's private folder) is started through the loader:
  ``_internal/ld-linux-x86-64.so.2 ./dragonball ARGS`` (scripts/stub.sh). PyInstaller's
  bootloader restarts itself through /proc/self/exe, which is then the loader, with the
  same arguments: measured to work. Children never see our libraries
  (dragonball/shared/childenv.py undoes the LD_LIBRARY_PATH the bootloader sets).

What remains of the server: the Linux kernel (glibc 2.36 needs 3.2 or newer) and x86_64.
Checked after the fact: `host_libraries` of the finished tree is empty, or the build fails.

    carry_libc(onedir)                   # in place, after PyInstaller
    host_libraries(needed, present)      # pure: what a tree would still take from the server
"""

from __future__ import annotations

import os
import pathlib
import shutil
from collections.abc import Iterable, Mapping

from dragonball.errors import BuildError

from builder import process

LOADER = "ld-linux-x86-64.so.2"
INTERNAL = "_internal"
#: Where the installed runtime's loader is: RUNTIME_DIR (installer/portal/layout.py) holds
#: the onedir's content, so the executable is /opt/dragonball/runtime/dragonball.
INSTALLED_LOADER = f"/opt/dragonball/runtime/{INTERNAL}/{LOADER}"
#: Loaded by glibc itself (dlopen), so no file names them: bundled when the build has them.
EXTRA = ("libnss_compat.so.2",)
#: Where the build machine's libraries are looked for, in this order.
LIBRARY_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64",
                "/lib", "/usr/lib")
_HINT = "install patchelf (sudo bash scripts/setup.sh), then build again"


def host_libraries(needed: Mapping[str, Iterable[str]], present: Iterable[str]) -> set[str]:
    """The sonames some file needs (`needed`: file -> its DT_NEEDED) that no file of the
    tree is named (`present`): what it would take from the server (pure)."""
    have = set(present)
    return {name for names in needed.values() for name in names if name not in have}


def runpath(file: pathlib.Path, internal: pathlib.Path) -> str:
    """``$ORIGIN`` or ``$ORIGIN/<relative way to internal>`` for `file` (pure)."""
    way = os.path.relpath(internal, file.parent)
    return "$ORIGIN" if way == "." else f"$ORIGIN/{way}"


def carry_libc(onedir: pathlib.Path, library_dirs: Iterable[str] = LIBRARY_DIRS) -> list[str]:
    """Make `onedir` (PyInstaller's, executable `onedir/<name>`) need nothing from the
    server's libraries; return the names copied into it. A `BuildError` when a library
    cannot be found on this machine or the tree still needs one afterwards."""
    internal = onedir / INTERNAL
    executable = onedir / onedir.name
    copied = []
    while True:
        files = elf_files(onedir)
        missing = host_libraries({f: needed(f) for f in files}, _names(onedir)) | {
            extra for extra in EXTRA if find_library(extra, library_dirs) and
            not (internal / extra).exists()}
        if not missing:
            break
        for name in sorted(missing):
            found = find_library(name, library_dirs)
            if found is None:
                raise BuildError(f"the runtime needs {name}, and this machine has none in "
                                 f"{', '.join(library_dirs)}", "install the package that has it")
            shutil.copy(found, internal / name)   # follows the link: the file itself
            copied.append(name)
    loader = internal / LOADER
    if not loader.exists():
        shutil.copy(_interpreter(executable), loader)
        copied.append(LOADER)
    for file in elf_files(onedir):
        if file != loader:
            patchelf("--set-rpath", runpath(file, internal), file)
    patchelf("--set-interpreter", INSTALLED_LOADER, executable)
    return sorted(copied)


def elf_files(tree: pathlib.Path) -> list[pathlib.Path]:
    """Every regular ELF file under `tree`, sorted."""
    found = []
    for path in sorted(tree.rglob("*")):
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as data:
                if data.read(4) == b"\x7fELF":
                    found.append(path)
    return found


def needed(file: pathlib.Path) -> list[str]:
    """The file's DT_NEEDED sonames (patchelf --print-needed)."""
    return process.run_capture(["patchelf", "--print-needed", str(file)], hint=_HINT).split()


def tree_needs_host(onedir: pathlib.Path) -> set[str]:
    """What the finished tree would still take from the server: sonames it lacks, and the
    executable's interpreter when it is not the tree's own loader (empty: nothing)."""
    files = elf_files(onedir)
    missing = host_libraries({f: needed(f) for f in files}, _names(onedir))
    interpreter = process.run_capture(["patchelf", "--print-interpreter",
                                       str(onedir / onedir.name)], hint=_HINT).strip()
    if interpreter != INSTALLED_LOADER or not (onedir / INTERNAL / LOADER).is_file():
        missing.add(interpreter)
    return missing


def _names(tree: pathlib.Path) -> set[str]:
    return {p.name for p in tree.rglob("*")}


def find_library(name: str, library_dirs: Iterable[str]) -> pathlib.Path | None:
    for folder in library_dirs:
        candidate = pathlib.Path(folder) / name
        if candidate.is_file():
            return candidate.resolve()
    return None


def _interpreter(executable: pathlib.Path) -> pathlib.Path:
    found = process.run_capture(["patchelf", "--print-interpreter", str(executable)],
                                hint=_HINT).strip()
    path = pathlib.Path(found)
    if not path.is_file():
        raise BuildError(f"{executable} names the loader {found}, which this machine lacks",
                         "build on the Debian release the runtime is frozen on")
    return path.resolve()


def patchelf(option: str, value: str, file: pathlib.Path) -> None:
    process.run_capture(["patchelf", option, value, str(file)], hint=_HINT)
