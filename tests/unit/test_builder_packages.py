"""Engine packages: the minbase set, apt's plan, packages.json, engine.tar and its cache.

Golden data in data/packages/: the dpkg status of dragonball-bare (minbase + systemd,
openssh-server, iptables...) and the package list `debootstrap --print-debs
--variant=minbase bookworm` printed, both captured on the build VM.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import pathlib
import tarfile

import pytest
from rich.console import Console

from dragonball.errors import BuildError

from builder import packages
from builder.packages import PlannedPackage
from builder.progress import Reporter

DATA = pathlib.Path(__file__).parent / "data" / "packages"

# `apt-get install -s` in a bare container, trimmed; the last line is an upgrade.
PLAN = """\
Reading package lists...
The following NEW packages will be installed:
  containerd docker.io runc tini
Inst runc (1.1.5+ds1-1+deb12u1 Debian:12.15/oldstable [amd64])
Inst dmsetup (2:1.02.185-2 Debian:12.15/oldstable [amd64])
Inst docker.io (20.10.24+dfsg1-1+deb12u1+b6 Debian:12.15/oldstable [amd64])
Inst netbase (6.4 Debian:12.15/oldstable [all])
Conf runc (1.1.5+ds1-1+deb12u1 Debian:12.15/oldstable [amd64])
Inst libc6 [2.36-9+deb12u1] (2.36-9+deb12u14 Debian:12.15/oldstable [amd64])
"""


def bare_status() -> list[dict[str, str]]:
    return packages.parse_status(gzip.decompress((DATA / "bare-status.gz").read_bytes()).decode())


def quiet() -> Reporter:
    return Reporter(Console(file=io.StringIO(), force_terminal=False))


def test_minbase_set_is_what_debootstrap_minbase_installs():
    expected = set((DATA / "minbase-debootstrap.txt").read_text().split())
    found = packages.minbase_packages(bare_status())
    # sensible-utils says "Priority: required" in its own control file; the archive's
    # override (which debootstrap reads) says optional. A tool nothing of the engine needs.
    assert found - expected == {"sensible-utils"}
    assert expected - found == set()
    assert {"systemd", "openssh-server", "iptables", "curl", "dbus"}.isdisjoint(found)


def test_alternatives_and_provides_pick_what_is_installed():
    status = [{"Package": "a", "Status": "install ok installed", "Priority": "required",
               "Depends": "missing | b (>= 1), awk:any"},
              {"Package": "b", "Status": "install ok installed", "Priority": "optional"},
              {"Package": "mawk", "Status": "install ok installed", "Priority": "optional",
               "Provides": "awk"},
              {"Package": "c", "Status": "install ok installed", "Priority": "optional"},
              {"Package": "d", "Status": "deinstall ok config-files", "Priority": "required"}]
    assert packages.minbase_packages(status) == {"a", "b", "mawk"}


def test_status_round_trip_keeps_multi_line_fields():
    text = ("Package: a\nStatus: install ok installed\nConffiles:\n /etc/a 0123\n"
            "Description: short\n long line\n .\n more\n\nPackage: b\nStatus: x\n")
    paragraphs = packages.parse_status(text)
    assert packages.render_status(paragraphs, {"a", "b"}) == text
    assert packages.render_status(paragraphs, {"b"}) == "Package: b\nStatus: x\n"


def test_plan_lists_what_apt_installs_sorted():
    assert packages.parse_plan(PLAN) == [
        PlannedPackage("dmsetup", "2:1.02.185-2", "amd64"),
        PlannedPackage("docker.io", "20.10.24+dfsg1-1+deb12u1+b6", "amd64"),
        PlannedPackage("libc6", "2.36-9+deb12u14", "amd64"),
        PlannedPackage("netbase", "6.4", "all"),
        PlannedPackage("runc", "1.1.5+ds1-1+deb12u1", "amd64")]


def test_deb_file_names_escape_the_epoch():
    assert PlannedPackage("dmsetup", "2:1.02.185-2", "amd64").filename == \
        "dmsetup_2%3a1.02.185-2_amd64.deb"
    assert PlannedPackage("netbase", "6.4", "all").filename == "netbase_6.4_all.deb"


def records(tmp_path) -> list[dict]:
    archives = tmp_path / "archives"
    archives.mkdir(exist_ok=True)
    found = []
    for planned in packages.parse_plan(PLAN):
        (archives / planned.filename).write_bytes(f"deb of {planned.name}".encode())
        found.append(packages.package_record(planned, archives / planned.filename))
    return found


def test_packages_json_is_sorted_and_stable(tmp_path):
    found = records(tmp_path)
    text = packages.render_packages_json(list(reversed(found)), ["tini", "docker.io"], "bookworm")
    assert text == packages.render_packages_json(found, ["docker.io", "tini"], "bookworm")
    data = json.loads(text)
    assert data["schema"] == 1 and data["suite"] == "bookworm"
    assert data["requested"] == ["docker.io", "tini"]
    assert [p["name"] for p in data["packages"]] == ["dmsetup", "docker.io", "libc6", "netbase",
                                                     "runc"]
    assert data["packages"][0] == {
        "name": "dmsetup", "version": "2:1.02.185-2",
        "filename": "dmsetup_2%3a1.02.185-2_amd64.deb", "size": len(b"deb of dmsetup"),
        "sha256": hashlib.sha256(b"deb of dmsetup").hexdigest()}


def test_engine_tar_holds_the_debs_and_packages_json(tmp_path):
    found = records(tmp_path)
    out = io.BytesIO()
    packages.detar.write_tar(out, packages.tar_entries(tmp_path / "archives", found,
                                                       ["docker.io"], "bookworm"), 0)
    tar = tarfile.open(fileobj=io.BytesIO(out.getvalue()))
    assert tar.getnames() == sorted([p["filename"] for p in found] + ["packages.json"])
    assert json.load(tar.extractfile("packages.json"))["requested"] == ["docker.io"]


def test_cache_key_ignores_order_and_moves_with_each_input():
    key = packages.cache_key(["tini", "docker.io"], "bookworm", "dragonball-rootfs:abc")
    assert key == packages.cache_key(["docker.io", "tini", "tini"], "bookworm",
                                     "dragonball-rootfs:abc")
    assert key != packages.cache_key(["docker.io"], "bookworm", "dragonball-rootfs:abc")
    assert key != packages.cache_key(["tini", "docker.io"], "trixie", "dragonball-rootfs:abc")
    assert key != packages.cache_key(["tini", "docker.io"], "bookworm", "dragonball-rootfs:abd")


def test_docker_run_command_mounts_the_archives_and_passes_the_mirror():
    argv = packages.docker_run_command("dragonball-rootfs:abc", ["docker.io", "tini"], "bookworm",
                                       "http://m/debian", pathlib.Path("/c/engine/archives"),
                                       pathlib.Path("/w"))
    assert argv[:3] == ["/usr/bin/docker", "run", "--rm"]
    assert "DEBIAN_MIRROR=http://m/debian" in argv and "PACKAGES=docker.io tini" in argv
    assert "/c/engine/archives:/var/cache/apt/archives" in argv and "/w:/dragonball" in argv
    assert argv[-4:-1] == ["dragonball-rootfs:abc", "sh", "-c"]
    assert "--download-only" in argv[-1] and "Dir::State::status=/dragonball/status" in argv[-1]


def cached_setup(tmp_path) -> tuple[pathlib.Path, list[dict]]:
    engine = tmp_path / "engine"
    engine.mkdir()
    (engine / "archives").mkdir()
    found = records(engine)
    key = packages.cache_key(["docker.io"], "bookworm", "dragonball-rootfs:abc")
    (engine / f"{key}.json").write_text(json.dumps({"packages": found}))
    return engine, found


def test_a_cached_list_runs_no_container_and_writes_a_stable_tar(tmp_path, monkeypatch):
    engine, found = cached_setup(tmp_path)

    def no_container(*args, **kwargs):
        raise AssertionError("no container may run when the package list is cached")
    monkeypatch.setattr(packages.process, "run_streaming", no_container)
    monkeypatch.setattr(packages.process, "run_capture", no_container)
    fetch = lambda: packages.fetch_engine_packages(  # noqa: E731
        ["docker.io"], "abc", tmp_path, "http://m/debian", quiet(), environ={})
    first = fetch()
    assert first.packages == found and first.path.name.endswith("-0.tar")
    first.path.unlink()
    assert fetch().sha256 == first.sha256  # written again, the same bytes


def test_a_changed_deb_means_downloading_again(tmp_path, monkeypatch):
    engine, found = cached_setup(tmp_path)
    (engine / "archives" / found[0]["filename"]).write_bytes(b"tampered")
    ran = []
    monkeypatch.setattr(packages, "_download", lambda *args: ran.append(args) or found)
    monkeypatch.setattr(packages.detar, "write_tar", lambda path, *a: path.write_bytes(b"t"))
    packages.fetch_engine_packages(["docker.io"], "abc", tmp_path, "http://m/debian", quiet(),
                                   environ={})
    assert len(ran) == 1


@pytest.mark.parametrize("names", [[], ["docker.io", "rm -rf /"], ["Docker"]])
def test_bad_package_names_are_refused_before_any_work(names, tmp_path):
    with pytest.raises(BuildError, match="Debian package names"):
        packages.fetch_engine_packages(names, "abc", tmp_path, "http://m/debian", quiet())


def test_tars_for_other_epochs_go_once_they_are_old(tmp_path, monkeypatch):
    engine, found = cached_setup(tmp_path)
    key = packages.cache_key(["docker.io"], "bookworm", "dragonball-rootfs:abc")
    old, recent = engine / f"{key}-100.tar", engine / f"{key}-200.tar"
    for path in (old, recent):
        path.write_bytes(b"tar")
    packages.os.utime(old, (1, 1))
    packages.fetch_engine_packages(["docker.io"], "abc", tmp_path, "http://m/debian", quiet(),
                                   environ={"SOURCE_DATE_EPOCH": "300"})
    assert sorted(p.name for p in engine.glob("*.tar")) == [f"{key}-200.tar", f"{key}-300.tar"]


def test_an_unknown_package_is_named_with_the_fix():
    from builder.packages import unknown_packages_error
    from dragonball.errors import BuildError
    apt = BuildError("command failed:\n  | E: Unable to locate package no-such-pkg\n", "network?")
    error = unknown_packages_error(apt, "bookworm")
    assert "has no package no-such-pkg" in error.message and "release manifest" in error.hint
    assert unknown_packages_error(BuildError("E: Temporary failure resolving"), "bookworm") is None
