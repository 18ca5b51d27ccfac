"""Preflight rules one at a time, on facts edited from a captured host (pure, no files)."""

from __future__ import annotations

import copy
import json
import pathlib

import pytest

from dragonball.installer.preflight import requirements as req_mod
from dragonball.installer.preflight import rules, rules_cluster, rules_resources
from dragonball.installer.preflight.check import Check
from dragonball.installer.preflight.system import RecordedSystem
from dragonball.shared.childenv import child_environment
from dragonball.installer.preflight import run

HOSTS = pathlib.Path(__file__).parent / "data" / "hosts"
MANIFEST = json.loads((HOSTS / "manifest.json").read_text())
REQ = req_mod.requirements_for(MANIFEST, "portal")


@pytest.fixture(scope="module")
def vm_facts():
    case = json.loads((HOSTS / "debian12-vm" / "case.json").read_text())
    return run(RecordedSystem(case["system"]), MANIFEST, "portal", case["paths"],
               root=str(HOSTS / "debian12-vm" / "root")).facts


def edited(facts, **changes):
    found = copy.deepcopy(facts)
    for key, value in changes.items():
        setattr(found, key, value)
    return found


def only(found: list) -> Check:
    assert len(found) == 1, found
    return found[0]


def test_requirements_from_the_manifest():
    assert (REQ.arch, REQ.glibc, REQ.kernel) == ("x86_64", "2.36", "4.19")
    assert REQ.images_bytes == MANIFEST["sections"]["images"]["size"]
    assert REQ.engine_version.startswith("20.10.24")
    assert REQ.release == "notes 0.1.0"
    bare = req_mod.requirements_for(None, "device")
    assert bare.images_bytes is None and bare.glibc is None and bare.ports


def test_images_size_counts_shared_layers_once():
    per_image = sum(i["size"] for i in MANIFEST["images"])
    assert req_mod.images_bytes(MANIFEST) < per_image / 2  # three images, one base layer


def test_disk_needs_split_when_the_engine_has_its_own_file_system():
    images, margin = REQ.images_bytes, req_mod.DISK_MARGIN
    assert req_mod.disk_needs(REQ, True) == {"data": (4, images * 4 + margin)}
    assert req_mod.disk_needs(REQ, False) == {"data": (1, images + margin),
                                              "docker": (3, images * 3 + margin)}
    device = req_mod.requirements_for(MANIFEST, "device")
    assert req_mod.disk_needs(device, False)["docker"] == (4, images * 4 + margin)


def test_without_a_manifest_release_checks_skip(vm_facts):
    bare = req_mod.requirements_for(None, "portal")
    found = {c.name: c.status for c in rules.checks(vm_facts, bare)}
    assert found["arch"] == found["glibc"] == found["kernel"] == found["disk"] == "skip"


@pytest.mark.parametrize("server, dockerd, swarm, status, words", [
    (None, None, None, "pass", "install puts in the bundled engine 20.10.24"),
    ("20.10.24+dfsg1", "20.10.24+dfsg1", "inactive", "pass", "running: DragonBall uses it"),
    ("26.1.3", None, "inactive", "pass", "Docker 26.1.3 running"),
    (None, "24.0.5", None, "pass", "installed, not running: install starts it"),
    ("19.03.15", "19.03.15", "inactive", "fail", "needs 20.10 or newer"),
    (None, "18.09.1", None, "fail", "Docker 18.09.1 installed, not running"),
    ("20.10.24", "20.10.24", "active", "warn", "already in a Swarm"),
    ("28.5.2", "28.5.2", "inactive", "pass", "Docker 28.5.2 running: DragonBall uses it"),
    ("29.0.4", "29.0.4", "inactive", "fail", "refuses the Engine API 1.41"),
    (None, "29.1.0", None, "fail", "Docker 29.1.0 installed, not running: it refuses"),
])
def test_docker(vm_facts, server, dockerd, swarm, status, words):
    docker = {"binary": "/usr/bin/docker", "client": server, "server": server,
              "dockerd": dockerd, "swarm": swarm, "error": None}
    check = only(rules.docker(edited(vm_facts, docker=docker), REQ))
    assert check.status == status and words in check.detail


@pytest.mark.parametrize("glibc, docker, status", [
    ("2.31", None, "fail"), ("2.28", None, "fail"), ("2.34", None, "pass"), ("2.36", None, "pass"),
    ("2.31", "24.0.5", "pass"),   # an engine of its own (old glibc and all): adopted
])
def test_the_bundled_engine_needs_its_glibc_when_there_is_no_engine(vm_facts, glibc, docker,
                                                                      status):
    """The runtime carries its C library; the bundled engine (Debian's .debs, dpkg) does not
    yet: a server older than its files' floor is told before anything changes."""
    engine = {"binary": None, "client": None, "server": docker, "dockerd": docker,
              "swarm": "inactive" if docker else None, "error": None}
    req = req_mod.Requirements("portal", engine_version="20.10.24", engine_glibc="2.34")
    check = only(rules.docker(edited(vm_facts, glibc=glibc, docker=engine), req))
    assert check.status == status, check
    if status == "fail":
        assert f"needs glibc 2.34: this server has {glibc}" in check.detail
        assert "DragonBall adopts it" in check.hint


@pytest.mark.parametrize("skew, status", [(0.3, "pass"), (-4.9, "pass"), (5.0, "warn"),
                                          (-299, "warn"), (300, "fail"), (-3600, "fail")])
def test_clock_skew(vm_facts, skew, status):
    facts = edited(vm_facts, time=1000.0 + skew, cluster={"portal_time": 1000.0})
    assert only(rules_cluster.clock(facts, REQ)).status == status


def test_skew_limit_is_the_portal_ca_backdating():
    from dragonball import pki
    assert req_mod.SKEW_FAIL_S == pki.CLOCK_SKEW.total_seconds()


def test_hostname(vm_facts):
    assert only(rules_cluster.hostname(vm_facts, REQ)).status == "skip"
    taken = edited(vm_facts, cluster={"hostnames": ["portal", "VM"]})
    assert only(rules_cluster.hostname(taken, REQ)).status == "fail"
    free = edited(vm_facts, cluster={"hostnames": ["portal"]})
    assert only(rules_cluster.hostname(free, REQ)).status == "pass"
    assert only(rules_cluster.hostname(edited(vm_facts, hostname="localhost"), REQ)).status \
        == "warn"


def test_portal_check_only_when_a_portal_was_given(vm_facts):
    assert rules_cluster.portal(vm_facts, REQ) == []
    up = {"address": "10.0.0.5", "ports": {"8443/tcp": "open", "2377/tcp": "open"}}
    assert only(rules_cluster.portal(edited(vm_facts, portal=up), REQ)).status == "pass"


@pytest.mark.parametrize("cpus, memory_gib, cpu_status, memory_status", [
    (1, 1.5, "fail", "fail"), (2, 2, "warn", "warn"), (4, 4, "pass", "pass")])
def test_cpu_and_memory(vm_facts, cpus, memory_gib, cpu_status, memory_status):
    facts = edited(vm_facts, cpus=cpus, memory=int(memory_gib * req_mod.GiB))
    assert only(rules.cpu(facts, REQ)).status == cpu_status
    assert only(rules.memory(facts, REQ)).status == memory_status


def test_noexec_on_the_engine_root_fails_on_temp_warns(vm_facts):
    noexec = {"target": "/var", "fstype": "xfs", "options": ["rw", "noexec"]}
    facts = edited(vm_facts, mounts={**vm_facts.mounts, "docker": noexec, "temp": noexec})
    found = {c.name: c.status for c in rules_resources.noexec(facts, REQ)}
    assert found == {"noexec.temp": "warn", "noexec.data": "pass", "noexec.docker": "fail"}


def test_noexec_opt_fails_naming_the_mount_and_the_fix(vm_facts):
    """Issue 14's bad input: a noexec /opt, where the runtime is copied and run from."""
    noexec = {"target": "/opt", "fstype": "ext4", "options": ["rw", "nosuid", "noexec"]}
    facts = edited(vm_facts, paths={**vm_facts.paths, "runtime": "/opt/dragonball"},
                   mounts={**vm_facts.mounts, "runtime": noexec})
    check = next(c for c in rules_resources.noexec(facts, REQ) if c.name == "noexec.runtime")
    assert check.status == "fail"
    assert "/opt/dragonball is on a noexec mount (ext4 on /opt)" in check.detail
    assert "remount" in check.hint and "/etc/fstab" in check.hint


def test_ports_in_use_or_untested(vm_facts):
    ports = {**vm_facts.ports, "5000/tcp": "in use", "8443/tcp": "cannot bind: Permission denied"}
    found = {c.name: c.status for c in rules_resources.ports(edited(vm_facts, ports=ports), REQ)}
    assert found["port.5000/tcp"] == "fail" and found["port.8443/tcp"] == "warn"
    assert found["port.2377/tcp"] == "pass"


def test_cgroups(vm_facts):
    none = edited(vm_facts, cgroups={"v1": [], "unified": None, "v2_controllers": []})
    assert only(rules.cgroups(none, REQ)).status == "fail"
    v2_no_memory = edited(vm_facts, cgroups={"v1": [], "unified": "/sys/fs/cgroup",
                                             "v2_controllers": ["cpu", "pids"]})
    assert only(rules.cgroups(v2_no_memory, REQ)).status == "warn"


def test_arch_and_not_root(vm_facts):
    assert only(rules.arch(edited(vm_facts, arch="aarch64"), REQ)).status == "fail"
    assert only(rules.root(edited(vm_facts, euid=1000), REQ)).status == "fail"


def test_a_check_refuses_an_unknown_status():
    with pytest.raises(ValueError):
        Check("x", "info", "detail")


@pytest.mark.parametrize("environ, expected", [
    ({"LD_LIBRARY_PATH": "/tmp/_MEI", "LD_LIBRARY_PATH_ORIG": "/opt/lib", "A": "1"},
     {"LD_LIBRARY_PATH": "/opt/lib", "A": "1"}),
    ({"LD_LIBRARY_PATH": "/tmp/_MEI", "A": "1"}, {"A": "1"}),
    ({"A": "1"}, {"A": "1"}),
])
def test_children_do_not_inherit_the_frozen_runtimes_libraries(environ, expected):
    assert child_environment(environ) == expected


def test_a_read_only_usr_or_data_dir_is_refused_with_the_remount(vm_facts):
    """An immutable or hardened image: the engine's install would stop half way."""
    ro = {"target": "/usr", "fstype": "ext4", "options": ["ro", "relatime"]}
    facts = edited(vm_facts, system_mounts={**vm_facts.system_mounts, "/usr": ro})
    [check] = [c for c in rules_resources.readonly(facts, req_mod.Requirements("portal"))]
    assert (check.name, check.status) == ("readonly./usr", "fail")
    assert "read-only mount (ext4 on /usr)" in check.detail
    assert "mount -o remount,rw /usr" in check.hint
    data = {**vm_facts.mounts["data"], "options": ["ro"], "target": "/srv"}
    facts = edited(vm_facts, mounts={**vm_facts.mounts, "data": data})
    names = [c.name for c in rules_resources.readonly(facts, req_mod.Requirements("portal"))]
    assert names == [f"readonly.{vm_facts.paths['data']}"]
    assert [c.status for c in rules_resources.readonly(vm_facts, req_mod.Requirements(
        "portal"))] == ["pass"]


def test_podman_s_docker_command_is_refused_by_name(vm_facts, tmp_path):
    from dragonball.installer.preflight import system
    shim = tmp_path / "docker"
    shim.write_text('#!/bin/sh\n[ -e /etc/containers/nodocker ] || echo "Emulate Docker CLI '
                    'using podman."\nexec /usr/bin/podman "$@"\n')
    real = tmp_path / "docker-real"
    real.write_bytes(b"\x7fELF" + b"\0" * 64)
    assert system.is_podman(str(shim)) and not system.is_podman(str(real))
    assert not system.is_podman(str(tmp_path / "missing"))
    facts = edited(vm_facts, docker={"binary": "/usr/bin/docker", "podman": True,
                                     "client": None, "server": None, "dockerd": None})
    [check] = rules.docker(facts, req_mod.Requirements("portal", engine_version="20.10.24"))
    assert check.status == "fail" and "podman-docker" in check.detail
    assert "remove podman-docker" in check.hint and "20.10.24" in check.hint
