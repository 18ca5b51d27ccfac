"""Preflight's pure parsers and kernel feature states: text in, data out."""

from __future__ import annotations

import pytest

from dragonball.shared import ports
from dragonball.installer.preflight import kernel, parse


@pytest.mark.parametrize("text, parts", [
    ("6.18.44-fc-v595", (6, 18, 44)), ("3.10.0-1160.el7.x86_64", (3, 10, 0)),
    ("20.10.24+dfsg1", (20, 10, 24)), ("19.03.15", (19, 3, 15)), ("2.36", (2, 36)),
    ("", ()), (None, ()), ("unknown", ()),
])
def test_version_tuple(text, parts):
    assert parse.version_tuple(text) == parts


def test_mounts_decode_escapes_and_the_deepest_latest_mount_holds_a_path():
    table = parse.mounts("/dev/sda1 / ext4 rw,relatime 0 0\n"
                         "tmpfs /tmp tmpfs rw,nosuid,noexec 0 0\n"
                         "/dev/sdb1 /srv/my\\040data xfs rw 0 0\n"
                         "tmpfs /tmp tmpfs rw 0 0\n")
    assert table[2].target == "/srv/my data"
    assert parse.mount_of("/tmp/x", table).options == ("rw",)  # mounted over: the latest wins
    assert parse.mount_of("/srv/my data/dragonball", table).fstype == "xfs"
    assert parse.mount_of("/tmpfoo", table).target == "/"  # a prefix is not a parent
    assert parse.mount_of("/", table).target == "/"
    assert parse.mount_of("/x", []) is None


def test_meminfo_cpuinfo_swaps_filesystems():
    assert parse.meminfo("MemTotal:  1024 kB\nHugePages_Total:  0\n") == {
        "MemTotal": 1 << 20, "HugePages_Total": 0}
    assert parse.cpu_count("processor\t: 0\nflags\t: x\n\nprocessor\t: 1\n") == 2
    assert parse.swaps("Filename Type Size Used Priority\n/swap.img file 1024 0 -2\n") == [
        {"name": "/swap.img", "type": "file", "size": 1 << 20}]
    assert parse.swaps("Filename Type Size Used Priority\n") == []
    assert parse.filesystems("nodev\tproc\n\text4\nnodev\toverlay\n") == ["proc", "ext4", "overlay"]


def test_module_names_from_every_list_format():
    assert parse.module_names(
        "kernel/net/bridge/br_netfilter.ko.xz: kernel/net/bridge/bridge.ko.xz\n"
        "kernel/drivers/net/vxlan/vxlan.ko.zst:\nkernel/fs/overlayfs/overlay.ko\n"
    ) == {"br_netfilter", "vxlan", "overlay"}
    assert parse.module_names("nf_tables 303104 53 nft_compat, Live 0x0\nip-tables 1 0 - Live\n") \
        == {"nf_tables", "ip_tables"}


def test_kernel_config_and_key_values():
    assert parse.kernel_config("# CONFIG_X is not set\nCONFIG_VXLAN=m\nCONFIG_LOCALVERSION=\"\"\n") \
        == {"CONFIG_VXLAN": "m", "CONFIG_LOCALVERSION": ""}
    assert parse.key_values("# c\nSELINUX=enforcing\nENABLED='yes'\n") == {
        "SELINUX": "enforcing", "ENABLED": "yes"}


def test_cgroups_v1_hybrid_and_v2():
    hybrid = parse.mounts("cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n"
                          "cgroup /sys/fs/cgroup/systemd cgroup rw,name=systemd 0 0\n"
                          "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n")
    assert parse.cgroups(hybrid, "") == {"v1": ["memory"], "unified": "/sys/fs/cgroup/unified",
                                         "v2_controllers": []}
    v2 = parse.mounts("cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n")
    assert parse.cgroups(v2, "cpu memory pids\n")["v2_controllers"] == ["cpu", "memory", "pids"]


def test_docker_version_of_new_and_old_engines_and_of_a_client_alone():
    new = ('{"Client":{"Version":"28.2.2"},"Server":{"Version":"x","Components":'
           '[{"Name":"containerd","Version":"1.6"},{"Name":"Engine","Version":"20.10.24+dfsg1"}]}}')
    assert parse.docker_version(new) == {"client": "28.2.2", "server": "20.10.24+dfsg1"}
    old = '{"Client":{"Version":"19.03.15"},"Server":{"Version":"19.03.15"}}'
    assert parse.docker_version(old)["server"] == "19.03.15"
    alone = '{"Client":{"Version":"20.10.24"},"Server":null}'
    assert parse.docker_version(alone) == {"client": "20.10.24", "server": None}
    assert parse.docker_version("") == {"client": None, "server": None}
    assert parse.dockerd_version("Docker version 20.10.24+dfsg1, build 5d6db84") == "20.10.24+dfsg1"
    assert parse.glibc_version("glibc 2.36") == "2.36" and parse.glibc_version(None) is None


@pytest.mark.parametrize("text, parsed", [
    ("10.0.0.5", ("10.0.0.5", 8443)), ("10.0.0.5:9000", ("10.0.0.5", 9000)),
    ("portal.lan", ("portal.lan", 8443)), ("[fd00::1]:8443", ("fd00::1", 8443)),
    ("fd00::1", ("fd00::1", 8443)), ("[fd00::1]", ("fd00::1", 8443)),
])
def test_addresses(text, parsed):
    assert parse.address(text, ports.PORTAL) == parsed


@pytest.mark.parametrize("text", ["", ":8443", "10.0.0.5:0", "10.0.0.5:http", "a b",
                                  "https://10.0.0.5", "[fd00::1]x"])
def test_bad_addresses_say_what_to_give(text):
    with pytest.raises(ValueError, match="HOST|port"):
        parse.address(text, ports.PORTAL)


FEATURE = next(f for f in kernel.FEATURES if f.name == "vxlan")


@pytest.mark.parametrize("evidence, state", [
    (kernel.Evidence(loaded=frozenset({"vxlan"})), kernel.ACTIVE),
    (kernel.Evidence(sys_module=frozenset({"vxlan"})), kernel.ACTIVE),
    (kernel.Evidence(builtin=frozenset({"vxlan"}), available=frozenset()), kernel.BUILTIN),
    (kernel.Evidence(builtin=frozenset(), available=frozenset({"vxlan"})), kernel.MODULE),
    (kernel.Evidence(config={"CONFIG_VXLAN": "y"}, config_source="/proc/config.gz"),
     kernel.BUILTIN),
    (kernel.Evidence(config={"CONFIG_VXLAN": "m"}, config_source="/boot/config-x"), kernel.MODULE),
    (kernel.Evidence(builtin=frozenset(), available=frozenset()), kernel.MISSING),
    (kernel.Evidence(config={"CONFIG_VXLAN": "n"}, config_source="/proc/config.gz"),
     kernel.MISSING),
    (kernel.Evidence(), kernel.UNKNOWN),
])
def test_feature_states(evidence, state):
    assert kernel.feature_state(FEATURE, evidence)[0] == state


def test_missing_names_where_it_looked():
    evidence = kernel.Evidence(builtin=frozenset(), available=frozenset(),
                               config={}, config_source="/boot/config-6.1.0")
    assert kernel.feature_state(FEATURE, evidence) == (
        kernel.MISSING, "not in modules.builtin, modules.dep, /boot/config-6.1.0")


def test_ports_by_role_come_from_one_module():
    assert [str(p) for p in ports.ports_for("device")] == [
        "2377/tcp", "2379/tcp", "2380/tcp", "4789/udp", "7946/tcp", "7946/udp", "8443/tcp",
        "9443/tcp"]  # a device may become a manager, and every manager serves the portal
    portal = {str(p) for p in ports.ports_for("portal")}
    assert {"5000/tcp", "8443/tcp"} <= portal and len(portal) == 9
    with pytest.raises(ValueError):
        ports.ports_for("manager")
