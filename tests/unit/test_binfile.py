"""The .bin stub and layout: a tiny .bin whose runtime is a shell script, run by sh."""

from __future__ import annotations

import hashlib
import io
import json
import pathlib
import subprocess
import tarfile

import pytest

from builder import binfile
from dragonball.errors import BuildError

ROOT = pathlib.Path(__file__).resolve().parents[2]
FAKE_RUNTIME = b"""#!/bin/sh
echo "runtime args: $*"
echo "bin: $DRAGONBALL_BIN"
echo "verified: $DRAGONBALL_BIN_VERIFIED"
echo "sections: $DRAGONBALL_BIN_SECTIONS"
exit 7
"""


def _tar(members: dict, gz: bool) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tar:
        for name, (data, mode) in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_tiny_bin(tmp_path, glibc_floor="2.17", runtime: bytes | None = None):
    """A .bin of fakes; `runtime` (a tar.gz) replaces the fake runtime's archive."""
    contents = {
        "manifest": json.dumps({"version": "9.9.9"}).encode(),
        "runtime": runtime or _tar({"dragonball/dragonball": (FAKE_RUNTIME, 0o755)}, gz=True),
        "engine": _tar({"packages.json": (b"[]", 0o644)}, gz=False),
        "images": b"IMAGES" * 1000,
    }
    files = {}
    for name, data in contents.items():
        files[name] = tmp_path / name
        files[name].write_bytes(data)
    sections = binfile.layout({n: len(d) for n, d in contents.items()},
                              {n: hashlib.sha256(d).hexdigest() for n, d in contents.items()})
    stub = binfile.render_stub((ROOT / "scripts" / "stub.sh").read_text(), "9.9.9", sections,
                               ["image notes/web:9.9.9 1234 bytes"], glibc_floor)
    out = tmp_path / "dist" / "DragonBall-9.9.9.bin"
    binfile.assemble(out, stub, files)
    return out, sections


@pytest.fixture
def tiny_bin(tmp_path):
    return make_tiny_bin(tmp_path)


def run(path, *args, cwd=None, env=None):
    return subprocess.run(["sh", str(path), *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=60)


def test_layout_places_sections_back_to_back_after_the_stub():
    sections = binfile.layout({"manifest": 10, "runtime": 20, "engine": 5, "images": 7},
                              dict.fromkeys(binfile.SECTION_ORDER, "x"))
    assert [(s.name, s.offset) for s in sections] == [
        ("manifest", 16384), ("runtime", 16394), ("engine", 16414), ("images", 16419)]


def test_the_stub_is_exactly_stub_size_and_refuses_unsafe_list_lines():
    sections = binfile.layout(dict.fromkeys(binfile.SECTION_ORDER, 1),
                              dict.fromkeys(binfile.SECTION_ORDER, "0" * 64))
    template = (ROOT / "scripts" / "stub.sh").read_text()
    assert len(binfile.render_stub(template, "1.0", sections, [], "2.36")) == binfile.STUB_SIZE
    with pytest.raises(BuildError):
        binfile.render_stub(template, "1.0", sections, ["$(rm -rf /)"], "2.36")
    with pytest.raises(BuildError):
        binfile.render_stub(template, "1.0", sections, [], "2.36; rm -rf /")


def test_the_runtime_gets_the_arguments_and_the_section_table(tiny_bin, tmp_path):
    path, sections = tiny_bin
    result = run(path, "install", "--answers", "a b.yaml", env={"PATH": "/usr/bin:/bin",
                                                                "TMPDIR": str(tmp_path)})
    assert result.returncode == 7, result.stderr
    assert "runtime args: install --answers a b.yaml" in result.stdout
    assert f"bin: {path}" in result.stdout and "verified: 1" in result.stdout
    assert " ".join(s.entry() for s in sections) in result.stdout
    assert not list(tmp_path.glob("dragonball.*")), "the runtime folder must be removed"


def test_options_work_with_sh_and_directly(tiny_bin, tmp_path):
    path, _ = tiny_bin
    assert run(path, "--version").stdout == "DragonBall 9.9.9\n"
    assert json.loads(run(path, "--info").stdout) == {"version": "9.9.9"}
    listing = run(path, "--list").stdout
    assert "section images" in listing and "image notes/web:9.9.9" in listing
    direct = subprocess.run([str(path), "--verify"], capture_output=True, text=True)
    assert direct.returncode == 0 and "is intact" in direct.stderr
    out = tmp_path / "x"
    assert run(path, "--extract", str(out)).returncode == 0
    assert sorted(p.name for p in out.iterdir()) == ["dragonball", "engine", "images.tar",
                                                     "manifest.json"]
    assert (out / "images.tar").read_bytes() == b"IMAGES" * 1000


def test_bad_options_are_usage_errors(tiny_bin, tmp_path):
    path, _ = tiny_bin
    result = run(path, "--target", str(tmp_path / "missing"), "install")
    assert result.returncode == 80 and "is not a folder" in result.stderr  # the stub's E_USAGE
    assert run(path, "--bogus").returncode == 80


def _damaged(path: pathlib.Path, how: str, sections) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncate":
        data = data[:-100]
    elif how == "append":
        data += b"garbage"
    elif how == "concatenate":
        data += bytes(data)
    else:
        section = next(s for s in sections if s.name == how)
        data[section.offset + section.size // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["truncate", "append", "concatenate", *binfile.SECTION_ORDER])
def test_a_damaged_file_is_refused_and_nothing_is_written(tiny_bin, tmp_path, how):
    path, sections = tiny_bin
    _damaged(path, how, sections)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    for args in (["install"], ["--extract", str(scratch / "out")], ["--verify"]):
        result = run(path, *args, env={"PATH": "/usr/bin:/bin", "TMPDIR": str(scratch)})
        assert result.returncode == 81, (args, result.stdout, result.stderr)  # E_CORRUPT
        assert "runtime args" not in result.stdout
        assert "Copy" in result.stderr and "SHA256SUMS" in result.stderr
    assert list(scratch.iterdir()) == [], "a damaged .bin must write nothing"


def test_a_server_with_an_older_glibc_is_told_before_anything_runs(tmp_path):
    path, _ = make_tiny_bin(tmp_path, glibc_floor="99.1")
    result = run(path, "install", env={"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)})
    assert result.returncode == 84 and "needs 99.1 or newer" in result.stderr  # E_PLATFORM
    assert "runtime args" not in result.stdout
    assert run(path, "--verify").returncode == 0  # the file itself can still be checked


def test_a_runtime_with_its_own_c_library_runs_on_any_glibc_through_its_loader(tmp_path):
    """Floor "none" (builder/loader.py): no glibc check, and the runtime is started through
    the loader it carries (here a shell script standing for it, which says so)."""
    fake_loader = b'#!/bin/sh\necho "loader: $1"\nprogram=$1\nshift\nexec "$program" "$@"\n'
    runtime = _tar({"dragonball/dragonball": (FAKE_RUNTIME, 0o755),
                    "dragonball/_internal/ld-linux-x86-64.so.2": (fake_loader, 0o755)}, gz=True)
    path, _ = make_tiny_bin(tmp_path, glibc_floor="none", runtime=runtime)
    result = run(path, "--target", str(tmp_path), "install", "x y",
                 env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 7, result.stderr   # the runtime's own status
    loader_line, args_line = result.stdout.splitlines()[:2]
    assert loader_line.startswith(f"loader: {tmp_path}/dragonball.") and \
        loader_line.endswith("/dragonball/dragonball")
    assert args_line == "runtime args: install x y"


def test_the_floor_is_none_or_a_version():
    sections = binfile.layout({"manifest": 1, "runtime": 1, "engine": 1, "images": 1},
                              dict.fromkeys(binfile.SECTION_ORDER, "x"))
    template = (ROOT / "scripts" / "stub.sh").read_text()
    assert b'DB_GLIBC_FLOOR="none"' in binfile.render_stub(template, "1", sections, [], "none")
    with pytest.raises(BuildError, match="neither 'none' nor a version"):
        binfile.render_stub(template, "1", sections, [], "2.36; rm -rf /")
