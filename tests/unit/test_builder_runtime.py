"""The frozen runtime: what its inputs hash covers, its PyInstaller command, its cache."""

from __future__ import annotations

import io
import json
import pathlib

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
    assert runtime.inputs_hash(DIGESTS, "3.11.7", "6.22.3", 0) == \
        "ea997816982b11da020d8c2d9a248eac80a3591322c92f9c01a865f299a1a797"


@pytest.mark.parametrize("change", [
    {"digests": {**DIGESTS, "payload/dragonball/cli.py": "c" * 64}},      # content
    {"digests": {"payload/dragonball/cli2.py": "a" * 64,                  # path
                 "pyproject.toml": "b" * 64}},
    {"digests": {**DIGESTS, "payload/dragonball/new.py": "d" * 64}},      # a new file
    {"python": "3.11.8"}, {"pyinstaller": "6.23.0"}, {"epoch": 1700000000}])
def test_every_input_moves_the_hash(change):
    args = {"digests": DIGESTS, "python": "3.11.7", "pyinstaller": "6.22.3", "epoch": 0}
    before = runtime.inputs_hash(*args.values())
    assert runtime.inputs_hash(*{**args, **change}.values()) != before


def test_a_changed_file_changes_the_hash(tmp_path):
    root = a_project(tmp_path)
    key = lambda: runtime.inputs_hash(  # noqa: E731
        runtime.file_digests(root, runtime.input_files(root)), "3.11.7", "6.22.3", 0)
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


def test_glibc_floor_is_a_version():
    assert runtime.glibc_floor().replace(".", "").isdigit()


def test_a_cached_runtime_is_returned_without_pyinstaller(tmp_path, monkeypatch):
    root = a_project(tmp_path / "src")
    monkeypatch.setattr(runtime, "pyinstaller_version", lambda: "6.22.3")
    key = runtime.inputs_hash(runtime.file_digests(root, runtime.input_files(root)),
                              runtime.platform.python_version(), "6.22.3", 0)
    folder = tmp_path / "cache" / "runtime"
    folder.mkdir(parents=True)
    runtime.tar_path(folder, key).write_bytes(b"frozen")
    description = {"sha256": runtime.hashlib.sha256(b"frozen").hexdigest(), "size": "6",
                   "python_version": "3.11.7", "pyinstaller_version": "6.22.3",
                   "glibc_floor": "2.36"}
    (folder / f"{key}.json").write_text(json.dumps(description))

    def no_pyinstaller(*args, **kwargs):
        raise AssertionError("PyInstaller must not run when the runtime is cached")
    monkeypatch.setattr(runtime.process, "run_streaming", no_pyinstaller)
    found = runtime.build_runtime(tmp_path / "cache", quiet(), root, environ={})
    assert (found.path, found.size, found.glibc_floor) == (runtime.tar_path(folder, key), 6, "2.36")


def test_a_corrupt_cached_runtime_is_not_reused(tmp_path):
    folder = tmp_path / "runtime"
    folder.mkdir()
    runtime.tar_path(folder, "k").write_bytes(b"changed")
    (folder / "k.json").write_text(json.dumps({"sha256": "0" * 64}))
    assert runtime._read_cached(folder, "k") is None
