"""The runtime carries its own C library and loader (builder/loader.py): what a tree takes
from the server, the RUNPATHs, and `carry_libc` on a real program of this machine
(/usr/bin/true in a onedir of its own), which then runs through the loader it carries."""

from __future__ import annotations

import pathlib
import shutil
import subprocess

import pytest

from builder import loader
from dragonball.errors import BuildError


def test_what_a_tree_takes_from_the_server():
    needed = {"a/dragonball": ["libz.so.1", "libc.so.6"], "a/_internal/libz.so.1": ["libc.so.6"]}
    assert loader.host_libraries(needed, {"dragonball", "libz.so.1"}) == {"libc.so.6"}
    assert loader.host_libraries(needed, {"dragonball", "libz.so.1", "libc.so.6"}) == set()
    assert loader.host_libraries({}, set()) == set()


def test_runpaths_lead_to_internal_from_where_each_file_is():
    internal = pathlib.Path("/r/dragonball/_internal")
    assert loader.runpath(pathlib.Path("/r/dragonball/dragonball"), internal) == \
        "$ORIGIN/_internal"
    assert loader.runpath(internal / "libpython3.11.so.1.0", internal) == "$ORIGIN"
    assert loader.runpath(internal / "lib-dynload" / "_ssl.so", internal) == "$ORIGIN/.."


@pytest.fixture
def onedir(tmp_path) -> pathlib.Path:
    """A onedir like PyInstaller's: onedir/<name> and onedir/_internal/ (empty)."""
    tree = tmp_path / "t"
    (tree / "_internal").mkdir(parents=True)
    shutil.copy("/usr/bin/true", tree / "t")
    return tree


def test_a_program_needs_nothing_of_the_server_after_and_runs_through_its_loader(onedir):
    assert loader.tree_needs_host(onedir)  # before: libc.so.6 and the system's loader
    copied = loader.carry_libc(onedir)
    assert {"libc.so.6", loader.LOADER} <= set(copied)
    assert loader.tree_needs_host(onedir) == set()
    for file in loader.elf_files(onedir):
        if file.name != loader.LOADER:
            assert "$ORIGIN" in subprocess.run(["patchelf", "--print-rpath", str(file)],
                                               capture_output=True, text=True).stdout
    interpreter = subprocess.run(["patchelf", "--print-interpreter", str(onedir / "t")],
                                 capture_output=True, text=True, check=True).stdout.strip()
    assert interpreter == loader.INSTALLED_LOADER
    run = subprocess.run([str(onedir / "_internal" / loader.LOADER), str(onedir / "t")],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    listed = subprocess.run([str(onedir / "_internal" / loader.LOADER), "--list",
                             str(onedir / "t")], capture_output=True, text=True, timeout=30)
    assert f"{onedir}/_internal/libc.so.6" in listed.stdout, listed.stdout  # ours, not the host's
    assert loader.carry_libc(onedir) == []  # a second pass copies nothing


def test_a_library_this_machine_lacks_is_a_build_error_naming_it(onedir):
    with pytest.raises(BuildError, match=r"needs libc\.so\.6, and this machine has none"):
        loader.carry_libc(onedir, library_dirs=[str(onedir / "nowhere")])
