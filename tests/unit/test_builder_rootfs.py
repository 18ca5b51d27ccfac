"""The rootfs cache: command lines, cache paths, scrubbing, and reuse without debootstrap."""

from __future__ import annotations

import pathlib

import pytest

from builder import rootfs
from builder.recipe import Recipe

RECIPE = Recipe(suite="bookworm", variant="minbase", arch="amd64",
                include=("python3", "tini", "procps"))


def test_debootstrap_command():
    argv = rootfs.debootstrap_command(RECIPE, pathlib.Path("/c/rootfs"), "http://m/debian")
    assert argv == ["debootstrap", "--variant=minbase", "--arch=amd64",
                    "--include=procps,python3,tini", "bookworm", "/c/rootfs", "http://m/debian"]


def test_debootstrap_command_without_extra_packages():
    argv = rootfs.debootstrap_command(Recipe("bookworm", "minbase", "amd64", ()),
                                      pathlib.Path("/t"), "http://m/debian")
    assert not any(a.startswith("--include") for a in argv)


def test_cache_location():
    assert rootfs.cache_dir({}) == pathlib.Path("/var/cache/dragonball")
    assert rootfs.cache_dir({"DRAGONBALL_CACHE": "/tmp/c"}) == pathlib.Path("/tmp/c")
    assert rootfs.tar_path(pathlib.Path("/tmp/c"), "ab12") == pathlib.Path("/tmp/c/rootfs/ab12.tar")


def test_scrub_removes_what_names_the_mirror_or_the_host(tmp_path):
    files = {
        "var/log/bootstrap.log": "mirror", "var/log/dpkg.log": "keep",
        "var/cache/apt/archives/apt_2.6.1_amd64.deb": "deb", "var/cache/apt/pkgcache.bin": "bin",
        "var/lib/apt/lists/m_dists_bookworm_InRelease": "list",
        "var/lib/apt/lists/partial/x": "part", "var/lib/apt/extended_states": "keep",
        "etc/apt/sources.list": "deb http://m/debian bookworm main\n",
        "etc/hostname": "buildhost\n", "etc/resolv.conf": "nameserver 10.0.0.1\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    rootfs.scrub(tmp_path)
    assert not (tmp_path / "var/log/bootstrap.log").exists()
    assert not list((tmp_path / "var/cache/apt/archives").glob("*.deb"))
    assert not (tmp_path / "var/cache/apt/pkgcache.bin").exists()
    assert list((tmp_path / "var/lib/apt/lists").iterdir()) == []
    for name in ("etc/apt/sources.list", "etc/hostname", "etc/resolv.conf"):
        assert (tmp_path / name).read_text() == ""
    assert (tmp_path / "var/log/dpkg.log").read_text() == "keep"
    assert (tmp_path / "var/lib/apt/extended_states").read_text() == "keep"


def test_a_cached_tar_is_reused_without_debootstrap_or_root(tmp_path, monkeypatch):
    tar = rootfs.tar_path(tmp_path, "k" * 64)
    tar.parent.mkdir(parents=True)
    tar.write_bytes(b"tar")

    def no_process(*args, **kwargs):
        raise AssertionError("debootstrap must not run when the tar is cached")
    monkeypatch.setattr(rootfs.process, "run_streaming", no_process)
    monkeypatch.setattr(rootfs.os, "geteuid", lambda: 1000)
    assert rootfs.ensure_tar(RECIPE, "k" * 64, "http://m/debian", tmp_path, print) == tar


def test_building_needs_root(tmp_path, monkeypatch):
    monkeypatch.setattr(rootfs.os, "geteuid", lambda: 1000)
    with pytest.raises(rootfs.BuildError, match="needs root"):
        rootfs.ensure_tar(RECIPE, "k" * 64, "http://m/debian", tmp_path, print)
