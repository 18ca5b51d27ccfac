"""Preflight on the distributions customers run (their os-release files, as shipped, in
tests/unit/data/os-release/): the family found from ID and ID_LIKE, the distribution check's
verdict, and the glibc check of that release's glibc against a release's measured floor
(2.35 from a Debian 12 build, bench/glibc_floor.py)."""

from __future__ import annotations

import copy
import json
import pathlib

import pytest

from dragonball.installer.preflight import parse, rules
from dragonball.installer.preflight.facts import _distro
from dragonball.installer.preflight.requirements import Requirements
from dragonball.installer.preflight.system import RecordedSystem
from dragonball.installer.preflight import run

DATA = pathlib.Path(__file__).parent / "data"
OS_RELEASE = DATA / "os-release"
HOSTS = DATA / "hosts"
FLOOR = "2.35"

#: file -> (family, distro check, that release's glibc, glibc check against FLOOR)
CASES = {
    "rhel-8.9": ("rhel", "warn", "2.28", "fail"),
    "rhel-9.3": ("rhel", "warn", "2.34", "fail"),
    "rocky-9.3": ("rhel", "warn", "2.34", "fail"),
    "almalinux-8.9": ("rhel", "warn", "2.28", "fail"),
    "centos-stream-9": ("rhel", "warn", "2.34", "fail"),
    "openeuler-22.03": ("rhel", "warn", "2.34", "fail"),
    "kylin-v10": ("rhel", "warn", "2.28", "fail"),
    "ubuntu-20.04": ("debian", "warn", "2.31", "fail"),
    "ubuntu-22.04": ("debian", "warn", "2.35", "pass"),
    "ubuntu-24.04": ("debian", "warn", "2.39", "pass"),
    "sles-15.5": ("suse", "warn", "2.31", "fail"),
    "opensuse-leap-15.5": ("suse", "warn", "2.31", "fail"),
    "debian-11": ("debian", "warn", "2.31", "fail"),
    "debian-12": ("debian", "pass", "2.36", "pass"),
    "debian-13": ("debian", "warn", "2.41", "pass"),
}


@pytest.fixture(scope="module")
def vm_facts():
    case = json.loads((HOSTS / "debian12-vm" / "case.json").read_text())
    return run(RecordedSystem(case["system"]), None, "portal", case["paths"],
               root=str(HOSTS / "debian12-vm" / "root")).facts


def test_every_file_has_a_case():
    assert sorted(p.name for p in OS_RELEASE.iterdir() if p.name != "README.md") == \
        sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_family_verdict_and_glibc(name, tmp_path, vm_facts):
    kin, verdict, glibc, glibc_verdict = CASES[name]
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "os-release").write_text((OS_RELEASE / name).read_text())
    found = _distro(str(tmp_path))
    assert parse.family(found["id"], found["like"]) == kin, found
    facts = copy.deepcopy(vm_facts)
    facts.distro, facts.glibc = found, glibc
    [distro] = rules.distro(facts, Requirements("portal"))
    assert distro.status == verdict, distro
    if verdict == "warn":
        assert f"({parse.FAMILY_NAMES[kin]}): not tested" in distro.detail
    [check] = rules.glibc(facts, Requirements("portal", glibc=FLOOR))
    assert check.status == glibc_verdict, check
    if glibc_verdict == "fail":
        assert check.detail == f"{glibc}: the runtime needs {FLOOR} or newer"


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_runtime_carrying_its_c_library_passes_on_every_release(name, vm_facts):
    """Floor "none" (builder/loader.py): the server's glibc does not matter."""
    facts = copy.deepcopy(vm_facts)
    facts.glibc = CASES[name][2]
    [check] = rules.glibc(facts, Requirements("portal", glibc="none"))
    assert check.status == "pass" and "carries its own C library" in check.detail, check


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_bundled_engine_tree_passes_on_every_release_with_no_engine(name, vm_facts):
    """Issue 14: the engine's tree needs no glibc of the server (manifest engine.glibc_floor
    "none"); a release of .debs (2.34) still fails the older ones, naming both versions."""
    facts = copy.deepcopy(vm_facts)
    facts.glibc = CASES[name][2]
    facts.docker = {"client": None, "server": None, "dockerd": None, "swarm": None,
                    "error": None}
    [tree] = rules.docker(facts, Requirements("portal", engine_version="20.10.24",
                                              engine_glibc="none"))
    assert tree.status == "pass" and "install puts in the bundled engine" in tree.detail, tree
    [debs] = rules.docker(facts, Requirements("portal", engine_version="20.10.24",
                                              engine_glibc="2.34"))
    older = tuple(int(p) for p in CASES[name][2].split(".")) < (2, 34)
    assert debs.status == ("fail" if older else "pass"), debs


def test_an_unknown_family_is_said_so():
    assert parse.family("slackware", None) is None
    assert parse.family("weird", "debian") == "debian"      # by ID_LIKE
    assert parse.family("", "rhel centos fedora") == "rhel"
