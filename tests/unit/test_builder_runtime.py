"""The frozen runtime: what its inputs hash covers, its PyInstaller command, its cache."""

from __future__ import annotations

import io
import json
import pathlib
import tarfile

import pytest
from rich.console import Console

from builder import runtime
from builder.progress import Reporter

DIGESTS = {"payload/dragonball/cli.py": "a" * 64, "pyproject.toml": "b" * 64}


def a_project(root: pathlib.Path) -> pathlib.Path:
    files = {"payload/dragonball/__init__.py": "", "payload/dragonball/__main__.py": "main",
             "payload/dragonball/portal/templates/index.html": "<html>",
             "payload/dragonball/__pycache__/cli.cpython-311.pyc": "x",
             "payload/dragonball.egg-info/PKG-INFO": "x", "pyproject.toml": "[project]",
             "builder/other.py": "not an input"}
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def quiet() -> Reporter:
    return Reporter(Console(file=io.StringIO(), force_terminal=False))


def test_inputs_are_payload_sources_and_pyproject(tmp_path):
    assert runtime.input_files(a_project(tmp_path)) == [
        "payload/dragonball/__init__.py", "payload/dragonball/__main__.py",
        "payload/dragonball/portal/templates/index.html", "pyproject.toml"]


def test_inputs_hash_is_pinned():
    # A literal: the hash names cached runtimes; a change must be a decision (RUNTIME_FORMAT).
    assert runtime.inputs_hash(DIGESTS, "3.11.7", "6.22.3") == \
        "96625fd1e6cad9657caef31d13c5d54043fb1ed3b29e3552f7ae1be53678e013"


@pytest.mark.parametrize("change", [
    {"digests": {**DIGESTS, "payload/dragonball/cli.py": "c" * 64}},      # content
    {"digests": {"payload/dragonball/cli2.py": "a" * 64,                  # path
                 "pyproject.toml": "b" * 64}},
    {"digests": {**DIGESTS, "payload/dragonball/new.py": "d" * 64}},      # a new file
    {"python": "3.11.8"}, {"pyinstaller": "6.23.0"},
    {"packages": {"fastapi": "0.115.0", "opentelemetry-api": "1.45.3"}}])  # a transitive one
def test_every_input_moves_the_hash(change):
    args = {"digests": DIGESTS, "python": "3.11.7", "pyinstaller": "6.22.3",
            "packages": {"fastapi": "0.115.0", "opentelemetry-api": "1.45.2"}}
    before = runtime.inputs_hash(*args.values())
    assert runtime.inputs_hash(*{**args, **change}.values()) != before


def test_a_changed_file_changes_the_hash(tmp_path):
    root = a_project(tmp_path)
    key = lambda: runtime.inputs_hash(  # noqa: E731
        runtime.file_digests(root, runtime.input_files(root)), "3.11.7", "6.22.3")
    before = key()
    assert key() == before
    (root / "payload/dragonball/__main__.py").write_text("main2")
    assert key() != before


def test_package_data_goes_in_with_add_data():
    files = ["payload/dragonball/cli.py", "payload/dragonball/portal/templates/index.html",
             "payload/dragonball/portal/static/htmx.min.js", "payload/dragonball/VERSION",
             "pyproject.toml"]
    assert runtime.data_files(files) == [
        ("payload/dragonball/VERSION", "dragonball"),
        ("payload/dragonball/portal/static/htmx.min.js", "dragonball/portal/static"),
        ("payload/dragonball/portal/templates/index.html", "dragonball/portal/templates")]


def test_pyinstaller_command():
    argv = runtime.pyinstaller_command("/venv/bin/python", pathlib.Path("/r"), pathlib.Path("/w"),
                                       [("payload/dragonball/VERSION", "dragonball")], 17)
    assert argv[:3] == ["env", "PYTHONHASHSEED=0", "SOURCE_DATE_EPOCH=17"]
    assert argv[3:6] == ["/venv/bin/python", "-m", "PyInstaller"]
    for flag in ("--onedir", "--strip", "--noconfirm"):
        assert flag in argv
    assert argv[argv.index("--name") + 1] == "dragonball"
    assert argv[argv.index("--distpath") + 1] == "/w/dist"
    assert argv[argv.index("--add-data") + 1] == "/r/payload/dragonball/VERSION:dragonball"
    assert argv[-1] == "/r/payload/dragonball/__main__.py"


def test_installed_packages_name_this_venv():
    found = runtime.installed_packages()
    assert found["pyinstaller"] == runtime.pyinstaller_version()
    assert "fastapi" in found and all(name == name.lower() for name in found)


def test_glibc_floor_is_a_version():
    assert runtime.glibc_floor().replace(".", "").isdigit()


def test_a_tree_with_its_own_loader_has_no_floor(tmp_path):
    (tmp_path / "_internal").mkdir()
    (tmp_path / "_internal" / "ld-linux-x86-64.so.2").write_bytes(b"\x7fELF")
    assert runtime.glibc_floor(tmp_path) == "none"


def a_cached_tree(tmp_path, monkeypatch) -> tuple[pathlib.Path, pathlib.Path, str]:
    """A project and a cache holding its frozen onedir (a stand-in: one file)."""
    root = a_project(tmp_path / "src")
    monkeypatch.setattr(runtime, "pyinstaller_version", lambda: "6.22.3")
    monkeypatch.setattr(runtime, "installed_packages", lambda: {"fastapi": "0.115.0"})
    key = runtime.inputs_hash(runtime.file_digests(root, runtime.input_files(root)),
                              runtime.platform.python_version(), "6.22.3", {"fastapi": "0.115.0"})
    folder = tmp_path / "cache" / "runtime"
    (folder / key / "dragonball").mkdir(parents=True)
    (folder / key / "dragonball" / "dragonball").write_bytes(b"frozen")
    (folder / f"{key}.json").write_text(json.dumps(
        {"python_version": "3.11.7", "pyinstaller_version": "6.22.3", "glibc_floor": "2.36"}))

    def no_pyinstaller(*args, **kwargs):
        raise AssertionError("PyInstaller must not run when the onedir is cached")
    monkeypatch.setattr(runtime.process, "run_streaming", no_pyinstaller)
    return root, folder, key


def test_a_new_epoch_packs_the_cached_onedir_again(tmp_path, monkeypatch):
    root, folder, key = a_cached_tree(tmp_path, monkeypatch)
    first = runtime.build_runtime(tmp_path / "cache", quiet(), root, environ={})
    assert first.path == folder / f"{key}-0.tar.gz" and first.glibc_floor == "2.36"
    assert runtime.build_runtime(tmp_path / "cache", quiet(), root, environ={}) == first
    later = runtime.build_runtime(tmp_path / "cache", quiet(), root,
                                  environ={"SOURCE_DATE_EPOCH": "1700000000"})
    assert later.path == folder / f"{key}-1700000000.tar.gz" and later.sha256 != first.sha256
    with tarfile.open(later.path) as tar:
        assert tar.getnames() == ["dragonball", "dragonball/dragonball"]
        assert {m.mtime for m in tar.getmembers()} == {1700000000}


def test_entries_unused_for_a_day_are_pruned(tmp_path, monkeypatch):
    root, folder, key = a_cached_tree(tmp_path, monkeypatch)
    old = folder / ("0" * 64 + "-0.tar.gz")
    old.write_bytes(b"old")
    runtime.os.utime(old, (1, 1))
    runtime.build_runtime(tmp_path / "cache", quiet(), root, environ={})
    assert not old.exists()
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == \
        sorted([key, f"{key}.json", f"{key}-0.tar.gz"])


def test_an_incomplete_onedir_is_not_reused(tmp_path):
    folder = tmp_path / "runtime"
    (folder / "k" / "dragonball").mkdir(parents=True)
    (folder / "k.json").write_text(json.dumps(
        {"python_version": "3", "pyinstaller_version": "6", "glibc_floor": "2.36"}))
    assert runtime._cached_tree(folder, "k") is None  # no dragonball/dragonball in it


def test_install_local_package_metadata_is_not_packed(tmp_path):
    """REQUESTED/RECORD say how a venv was installed, not what runs: leaving them in made
    two venvs with the same pins give different runtimes under one cache key."""
    from builder import detar
    info = tmp_path / "dragonball" / "_internal" / "cryptography-50.0.2.dist-info"
    info.mkdir(parents=True)
    for name in ("METADATA", "REQUESTED", "RECORD", "INSTALLER", "direct_url.json"):
        (info / name).write_text(name)
    names = {arc.split("/")[-1] for arc, _, _ in
             detar.tree_entries(tmp_path / "dragonball", "dragonball",
                                skip_names=runtime.PACKED_SKIP)}
    assert "METADATA" in names
    assert not names & {"REQUESTED", "RECORD", "INSTALLER", "direct_url.json"}
