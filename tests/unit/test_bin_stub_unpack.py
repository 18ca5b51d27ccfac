"""The stub unpacks only where nobody else can swap what it checked, and only what the build
makes: a --target (or $TMPDIR) writable by others or another user's is refused, so is an
--extract folder with anything planted in it, and an archive entry that is absolute, climbs
out with '..', or is a link or a device (a tampered .bin), before anything is written."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from test_binfile import make_tiny_bin, run

ENV = {"PATH": "/usr/bin:/bin"}

#: Prints the mode of the folder it runs from: the stub's private work folder.
WHERE_RUNTIME = b"""#!/bin/sh
echo "work mode: $(stat -c %a "$(dirname "$(dirname "$0")")")"
"""


def _evil_runtime(*entries) -> bytes:
    """A runtime tar.gz with the fake runtime and `entries` ((name, type, linkname))."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, kind, link in entries:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link or ""
            data = b"planted\n" if kind == tarfile.REGTYPE else b""
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("dragonball/dragonball")
        info.size, info.mode = len(WHERE_RUNTIME), 0o755
        tar.addfile(info, io.BytesIO(WHERE_RUNTIME))
    return buf.getvalue()


@pytest.fixture
def tiny_bin(tmp_path):
    return make_tiny_bin(tmp_path, runtime=_evil_runtime())[0]


def test_the_runtime_runs_from_a_private_folder(tiny_bin, tmp_path):
    result = run(tiny_bin, "install", env=ENV | {"TMPDIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "work mode: 700" in result.stdout


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702])
def test_a_target_writable_by_others_is_refused(tiny_bin, tmp_path, mode):
    target = tmp_path / "shared"
    target.mkdir()
    target.chmod(mode)
    for args in (["--target", str(target), "install"], ["install"]):
        result = run(tiny_bin, *args, env=ENV | {"TMPDIR": str(target)})
        assert result.returncode == 80, result.stderr  # E_USAGE
        assert "writable by others" in result.stderr and "--target /root" in result.stderr
        assert "work mode" not in result.stdout
    assert list(target.iterdir()) == []


def test_a_folder_above_the_target_writable_by_others_is_refused(tiny_bin, tmp_path):
    (tmp_path / "open" / "inner").mkdir(parents=True)
    (tmp_path / "open").chmod(0o777)
    result = run(tiny_bin, "--target", str(tmp_path / "open" / "inner"), "install", env=ENV)
    assert result.returncode == 80 and f"{tmp_path}/open is writable by others" in result.stderr


def test_a_sticky_shared_folder_is_fine(tiny_bin, tmp_path):
    target = tmp_path / "tmp"
    target.mkdir()
    target.chmod(0o1777)  # like /tmp: only an entry's owner may rename it
    result = run(tiny_bin, "--target", str(target), "install", env=ENV)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_a_target_of_another_user_is_refused(tiny_bin, tmp_path):
    target = tmp_path / "theirs"
    target.mkdir(mode=0o755)
    os.chown(target, 4321, 4321)
    result = run(tiny_bin, "--target", str(target), "install", env=ENV)
    assert result.returncode == 80 and "belongs to another user (uid 4321)" in result.stderr


def test_extract_refuses_a_folder_with_a_planted_symlink(tiny_bin, tmp_path):
    out, victim = tmp_path / "out", tmp_path / "victim"
    out.mkdir()
    victim.write_text("keep me\n")
    (out / "manifest.json").symlink_to(victim)
    result = run(tiny_bin, "--extract", str(out), env=ENV)
    assert result.returncode == 80 and "is not empty" in result.stderr
    assert victim.read_text() == "keep me\n"


def test_extract_refuses_a_symlink_as_its_folder(tiny_bin, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "out").symlink_to(elsewhere)
    result = run(tiny_bin, "--extract", str(tmp_path / "out"), env=ENV)
    assert result.returncode == 80 and "is not a folder" in result.stderr
    assert list(elsewhere.iterdir()) == []


def test_extract_into_a_new_folder_makes_it_private(tiny_bin, tmp_path):
    out = tmp_path / "new" / "out"
    result = run(tiny_bin, "--extract", str(out), env=ENV)
    assert result.returncode == 0, result.stderr
    assert oct(out.stat().st_mode & 0o777) == oct(0o700)
    assert sorted(p.name for p in out.iterdir()) == ["dragonball", "engine", "images.tar",
                                                     "manifest.json"]


EVIL = {
    "absolute": [("/tmp/db-planted-abs", tarfile.REGTYPE, None)],
    "dotdot": [("dragonball/../../planted", tarfile.REGTYPE, None)],
    "symlink": [("dragonball/lib", tarfile.SYMTYPE, "/etc"),
                ("dragonball/lib/planted", tarfile.REGTYPE, None)],
    "hardlink": [("dragonball/passwd", tarfile.LNKTYPE, "/etc/passwd")],
    "device": [("dragonball/null", tarfile.CHRTYPE, None)],
    "fifo": [("dragonball/pipe", tarfile.FIFOTYPE, None)],
}


@pytest.mark.parametrize("how", sorted(EVIL))
def test_a_tampered_archive_entry_is_refused_before_anything_is_unpacked(tmp_path, how):
    path, _ = make_tiny_bin(tmp_path, runtime=_evil_runtime(*EVIL[how]))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    for args in (["install"], ["--extract", str(scratch / "out")]):
        result = run(path, *args, env=ENV | {"TMPDIR": str(scratch)})
        assert result.returncode == 81, (args, result.stderr)  # E_CORRUPT
        assert "archive entry it must not" in result.stderr
        assert "work mode" not in result.stdout
    assert not (tmp_path / "planted").exists() and not os.path.exists("/tmp/db-planted-abs")
    leftovers = [p for p in scratch.rglob("*") if p.is_file()]
    assert not [p for p in leftovers if p.name != "manifest.json"], leftovers
