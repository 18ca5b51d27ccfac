"""The lab the installer is tested on: bare servers with systemd, cut off from the world.

Three servers on an internal network serve most tests; the tests that change a
lab's shape (take it down, install an engine, try to get out) make their own.
Nothing here sends a packet to an address outside this machine: the escape that
the leak counter must count is aimed at a server of another lab.
"""

from __future__ import annotations

import hashlib
import io

import pytest
from rich.console import Console

from builder import cache, packages
from builder.apt_sources import debian_mirror
from builder.progress import Reporter
from support import LABELS
from tests.lab import LabError, plan

SSH_BANNER = "SSH-2.0-"


@pytest.fixture(scope="module")
def lab(make_lab):
    return make_lab(servers=3, internal=True)


def run(lab, server, script: str, **kwargs):
    return lab.exec(server, ["bash", "-c", script], **kwargs)


def ssh_banner(lab, server, ip: str) -> str:
    """The first bytes sshd at `ip` sends, read from `server` with bash's /dev/tcp."""
    outcome = run(lab, server, f"exec 3<>/dev/tcp/{ip}/22 && head -c 8 <&3", timeout=10)
    return outcome.stdout


# --- the servers -------------------------------------------------------------------------

def test_every_server_boots_systemd_to_running(lab):
    assert lab.degraded == {}
    for number, server in enumerate(lab.servers, 1):
        outcome = run(lab, server, "cat /proc/1/comm; hostname; systemctl is-system-running")
        assert outcome.stdout.split() == ["systemd", f"s{number}", "running"], outcome


def test_servers_are_bare_debian_without_python_or_docker(lab):
    for server in lab.servers:
        outcome = run(lab, server, ". /etc/os-release; echo $ID $VERSION_ID; "
                                   "for c in python3 python docker dockerd containerd; do "
                                   "command -v $c; done; ls /usr/bin/python3* 2>/dev/null; "
                                   "command -v sshd")
        assert outcome.stdout.split() == ["debian", "12", "/usr/sbin/sshd"], outcome


def test_each_server_is_a_machine_of_its_own(lab):
    ids = {run(lab, s, "cat /etc/machine-id").stdout.strip() for s in lab.servers}
    assert len(ids) == len(lab.servers)


def test_var_lib_docker_is_a_volume_not_the_overlay_root(lab):
    for server in lab.servers:
        types = run(lab, server, "stat -f -c %T / /var/lib/docker").stdout.split()
        assert types[0] == "overlayfs" and types[1] not in ("overlayfs", "tmpfs"), types


def test_memory_is_read_from_each_servers_cgroup(lab):
    memory = lab.memory_mib()
    assert sorted(memory) == sorted(lab.servers)
    assert all(1 < mib < 500 for mib in memory.values()), memory


# --- the network -------------------------------------------------------------------------

def test_servers_reach_each_other_and_not_one_packet_tries_to_leave(lab, docker_cli):
    assert docker_cli.inspect("network", lab.spec.network)["Internal"] is True
    for source in lab.servers:
        for target in lab.servers:
            if source != target:
                assert ssh_banner(lab, source, lab.ip(target)) == SSH_BANNER, (source, target)
        # Docker's DNS on the lab network knows the servers by their host names.
        others = [s for s in lab.servers if s != source]
        hosts = run(lab, source, "getent hosts " + " ".join(others)).stdout.split()
        assert hosts[::2] == [lab.ip(s) for s in others]
    assert lab.leak_packets() == 0


def test_the_leak_counter_counts_an_escape_and_the_network_drops_it(make_lab):
    """A server of an internal lab tries to reach a server of another lab (both ours)."""
    inside, elsewhere = make_lab(servers=1, internal=True), make_lab(servers=1)
    assert ssh_banner(elsewhere, "s1", elsewhere.ip("s1")) == SSH_BANNER
    before = inside.leak_packets()
    outcome = run(inside, "s1", f"timeout 3 bash -c 'exec 3<>/dev/tcp/{elsewhere.ip('s1')}/22'")
    assert outcome.returncode != 0
    assert inside.leak_packets() > before
    with pytest.raises(LabError, match="no leak counter"):
        elsewhere.leak_packets()


# --- driving servers ---------------------------------------------------------------------

def test_restart_is_a_reboot_that_keeps_root_and_the_docker_volume(lab, tmp_path, docker_cli):
    local = tmp_path / "payload.bin"
    local.write_bytes(b"\x00dragonball\xff" * 1000)
    assert lab.copy_in("s2", local) == "/root/payload.bin"
    run(lab, "s2", "echo kept >/root/note; echo kept >/var/lib/docker/note; echo gone >/tmp/note",
        check=True)
    machine_id = run(lab, "s2", "cat /etc/machine-id").stdout
    started = docker_cli.inspect("container", lab.container("s2"))["State"]["StartedAt"]

    lab.restart("s2")

    assert docker_cli.inspect("container", lab.container("s2"))["State"]["StartedAt"] != started
    assert run(lab, "s2", "systemctl is-system-running").stdout.strip() == "running"
    assert run(lab, "s2", "cat /root/note /var/lib/docker/note").stdout.split() == ["kept", "kept"]
    assert run(lab, "s2", "test -e /tmp/note").returncode == 1
    assert run(lab, "s2", "cat /etc/machine-id").stdout == machine_id
    digest = run(lab, "s2", "sha256sum /root/payload.bin").stdout.split()[0]
    assert digest == hashlib.sha256(local.read_bytes()).hexdigest()


def test_kill_cuts_the_power_and_start_boots_again(lab):
    run(lab, "s3", "echo kept >/root/note", check=True)
    lab.kill("s3")
    assert {row["server"]: row["state"] for row in lab.status()}["s3"] == "exited"
    assert not lab.exec("s3", ["true"]).ok
    lab.start("s3")
    assert run(lab, "s3", "systemctl is-system-running; cat /root/note").stdout.split() == \
        ["running", "kept"]
    assert ssh_banner(lab, "s1", lab.ip("s3")) == SSH_BANNER


def test_exec_feeds_stdin_and_check_names_the_server(lab):
    assert lab.exec("s1", ["sha256sum"], stdin=b"abc").stdout.split()[0] == \
        hashlib.sha256(b"abc").hexdigest()
    with pytest.raises(LabError, match="failed on s1"):
        lab.exec("s1", ["sh", "-c", "echo broken >&2; exit 3"], check=True)


def test_copy_in_refuses_a_tmpfs_where_the_file_would_vanish(lab, tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(LabError, match="tmpfs"):
        lab.copy_in("s1", tmp_path / "f", "/tmp")


# --- whole labs --------------------------------------------------------------------------

def test_down_removes_containers_volumes_network_and_firewall_rule(make_lab, docker_cli):
    lab = make_lab(servers=1, internal=True)
    assert lab.leak_packets() == 0
    label = f"{plan.LAB_LABEL}={lab.name}"
    assert docker_cli.names("volume", label) == [lab.spec.volume("s1")]

    lab.down()

    for kind in ("container", "network", "volume"):
        assert docker_cli.names(kind, label) == [], kind
    assert docker_cli.inspect("network", lab.spec.network) is None
    with pytest.raises(LabError, match="no leak counter"):
        lab.leak_packets()
    lab.down()  # a second time finds nothing to do


def test_up_refuses_a_lab_that_exists(lab):
    from tests.lab import Lab
    with pytest.raises(LabError, match="already exists"):
        Lab(lab.name, 1, labels=LABELS).up()
    assert lab.exec("s1", ["true"]).ok  # and did not take the existing one down


def test_the_bundled_engine_installs_offline_and_runs_a_container_on_overlay2(make_lab,
                                                                            bare_image):
    """The lab runs an engine from Debian's own packages (dpkg, by hand: what a customer's
    Debian with docker.io has; the installer itself installs the engine's private tree)."""
    engine = packages.fetch_engine_packages(
        packages.ENGINE_PACKAGES, bare_image, cache.cache_dir(), debian_mirror("bookworm"),
        Reporter(Console(file=io.StringIO())))
    lab = make_lab(servers=1, internal=True)
    lab.copy_in("s1", engine.path)
    run(lab, "s1", f"mkdir /root/engine && tar -C /root/engine -xf /root/{engine.path.name} && "
                   "DEBIAN_FRONTEND=noninteractive dpkg -i /root/engine/*.deb >/root/dpkg.log && "
                   "systemctl enable --now docker", check=True, timeout=300)
    info = run(lab, "s1", "docker info --format '{{.Driver}} {{.CgroupDriver}}'", check=True)
    assert info.stdout.split()[0] == "overlay2"
    # A one-binary image made from the server's own files: nothing to pull.
    run(lab, "s1", "tar -C / -ch usr/bin/dash usr/lib/x86_64-linux-gnu/libc.so.6 "
                   "lib64/ld-linux-x86-64.so.2 | docker import - tiny", check=True, timeout=60)
    hello = run(lab, "s1", "docker run --rm tiny /usr/bin/dash -c 'echo hello from a container'",
                check=True, timeout=60)
    assert hello.stdout.strip() == "hello from a container"
    assert lab.leak_packets() == 0


# --- pure parts (no Docker) ---------------------------------------------------------------

def test_pick_subnet_skips_docker_networks_and_host_routes():
    routes = plan.parse_routes("default via 192.0.2.1 dev eth0\n"
                               "10.213.0.0/23 dev br-x proto kernel scope link\n"
                               "local 10.213.2.1 dev lo table local\n")
    assert str(plan.pick_subnet(routes)) == "10.213.3.0/24"


def test_validate_lists_every_problem():
    with pytest.raises(LabError) as raised:
        plan.validate(plan.LabSpec("Bad_Name", 0))
    assert "name 'Bad_Name'" in str(raised.value) and "servers=0" in str(raised.value)


def test_parse_leak_rules_reads_counts_and_strips_them_for_deletion():
    listing = ('-N DOCKER-USER\n'
               '-A DOCKER-USER -i br-1 ! -o br-1 -m comment --comment "dragonball-lab:a" -c 7 420\n'
               '-A DOCKER-USER -i br-2 ! -o br-2 -m comment --comment "dragonball-lab:ab" -c 1 60\n'
               '-A DOCKER-USER -c 99 9999 -j RETURN\n')
    assert plan.parse_leak_rules(listing, "a") == [(plan.leak_rule("br-1", "a"), 7)]


def test_a_loopback_nameserver_would_send_dns_out_of_the_host():
    assert plan.forwards_from_host(plan.nameservers("nameserver 127.0.0.1\n"))
    assert plan.forwards_from_host(["::1"])
    assert not plan.forwards_from_host(plan.nameservers("# x\nnameserver 10.255.255.53\n"))


def test_run_argv_falls_back_to_the_capability_set_of_machine_md():
    spec = plan.LabSpec("x", 2)
    argv = plan.run_argv(spec, "s2", "10.0.0.12", plan.CAPABILITIES, "0" * 32)
    assert "--privileged" not in argv
    assert argv[argv.index("--cap-drop") + 1] == "SYS_RESOURCE"
    assert "x-s2-docker:/var/lib/docker" in argv and argv[-3:-1] == ["sh", "-c"]
    assert "--privileged" in plan.run_argv(spec, "s2", "10.0.0.12", plan.PRIVILEGED, "0" * 32)
    assert "--dns" not in argv
    own = plan.run_argv(spec, "s2", "10.0.0.12", plan.CAPABILITIES, "0" * 32, own_dns=True)
    assert own[own.index("--dns") + 1] == "10.0.0.12"
