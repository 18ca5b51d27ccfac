"""The pure parts of the lab's faults (tests/lab/fault_plan.py): the firewall rules of a
partition and their undo, the probe's reading, the full disk's layout and scripts, the
undo stack. The faults themselves run on a lab in tests/e2e/test_lab_faults.py."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from tests.lab import fault_plan as fp


# --- partition ------------------------------------------------------------------------------

def test_a_partition_drops_each_peer_both_ways_in_a_chain_of_its_own():
    argv = fp.partition_do(["10.213.1.13", "10.213.1.12"])
    assert argv == [
        ["iptables", "-w", "-N", "DRAGONBALL-CHAOS"],
        ["iptables", "-w", "-A", "DRAGONBALL-CHAOS", "-s", "10.213.1.12/32", "-j", "DROP"],
        ["iptables", "-w", "-A", "DRAGONBALL-CHAOS", "-d", "10.213.1.12/32", "-j", "DROP"],
        ["iptables", "-w", "-A", "DRAGONBALL-CHAOS", "-s", "10.213.1.13/32", "-j", "DROP"],
        ["iptables", "-w", "-A", "DRAGONBALL-CHAOS", "-d", "10.213.1.13/32", "-j", "DROP"],
        ["iptables", "-w", "-I", "INPUT", "1", "-j", "DRAGONBALL-CHAOS"],
        ["iptables", "-w", "-I", "OUTPUT", "1", "-j", "DRAGONBALL-CHAOS"],
    ]


def test_a_partition_touches_only_input_and_output_never_forward_or_nat():
    """FORWARD and nat belong to the engine inside the server (and the host's are never
    reached from inside one): the rules stay in the server's own INPUT/OUTPUT."""
    for argv in fp.partition_do(["10.0.0.2"]):
        assert "-t" not in argv and "FORWARD" not in argv and "DOCKER-USER" not in argv


def test_a_partition_refuses_no_peer_and_what_is_not_an_ipv4_address():
    with pytest.raises(ValueError, match="at least one peer"):
        fp.partition_do([])
    for bad in ("s2", "10.0.0.0/24", "10.0.0.1; reboot", "::1"):
        with pytest.raises(ValueError, match="not an IPv4"):
            fp.partition_do([bad])


def test_a_peer_named_twice_gets_its_rules_once():
    assert fp.partition_do(["10.0.0.2", "10.0.0.2"]) == fp.partition_do(["10.0.0.2"])


def test_the_check_and_the_undo_name_the_same_chain_and_hooks():
    assert fp.partition_check() == [["iptables", "-w", "-C", "INPUT", "-j", fp.CHAIN],
                                    ["iptables", "-w", "-C", "OUTPUT", "-j", fp.CHAIN]]
    script = fp.partition_undo()
    assert "while iptables -w -D INPUT -j DRAGONBALL-CHAOS" in script   # every jump, even twice
    assert "while iptables -w -D OUTPUT -j DRAGONBALL-CHAOS" in script
    assert script.index("-D INPUT") < script.index("-F DRAGONBALL-CHAOS") < script.index(
        "-X DRAGONBALL-CHAOS")
    assert script.rstrip().endswith("! iptables -w -n -L DRAGONBALL-CHAOS >/dev/null 2>&1")


def test_the_undo_script_is_valid_sh_and_succeeds_where_nothing_was_added(tmp_path):
    """Run with a stand-in `iptables` that knows no chain: the undo must exit 0."""
    (tmp_path / "iptables").write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "iptables").chmod(0o755)
    done = subprocess.run(["sh", "-c", fp.partition_undo()], capture_output=True, text=True,
                          env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr


def test_the_undo_script_fails_when_the_chain_stays(tmp_path):
    (tmp_path / "iptables").write_text('#!/bin/sh\ncase "$*" in *" -L "*) exit 0;; esac\nexit 1\n')
    (tmp_path / "iptables").chmod(0o755)
    done = subprocess.run(["sh", "-c", fp.partition_undo()], capture_output=True,
                          env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert done.returncode != 0


def test_a_probe_is_a_bash_tcp_connect_under_a_timeout():
    assert fp.tcp_probe("10.0.0.2", 22, 2) == ["timeout", "2", "bash", "-c",
                                                "echo >/dev/tcp/10.0.0.2/22"]
    with pytest.raises(ValueError):
        fp.tcp_probe("s2; rm -rf /")


@pytest.mark.parametrize("returncode, stderr, reached", [
    (0, "", True),                                                    # connected
    (1, "bash: connect: Connection refused\n", True),                 # RST: packets flow
    (124, "", False),                                                 # timed out: cut
    (1, "bash: connect: No route to host\n", False),
    (1, "bash: connect: Network is unreachable\n", False),
    (124, "Connection refused", False),                               # timeout wins
])
def test_a_probe_counts_a_refused_connection_as_reached_and_a_timeout_as_cut(
        returncode, stderr, reached):
    assert fp.probe_reached(returncode, stderr) is reached


# --- killed service ---------------------------------------------------------------------------

def test_unit_names():
    assert fp.unit_name("docker") == "docker.service"
    assert fp.unit_name("docker.service") == "docker.service"
    assert fp.unit_name("getty@tty1.service") == "getty@tty1.service"
    for bad in ("docker; reboot", "", "a b"):
        with pytest.raises(ValueError):
            fp.unit_name(bad)


def test_systemctl_show_is_read_as_a_dict():
    assert fp.parse_show("MainPID=812\nActiveState=active\nNRestarts=0\n\n") == {
        "MainPID": "812", "ActiveState": "active", "NRestarts": "0"}
    assert fp.parse_show("ExecStart={ path=/usr/bin/dockerd ; argv[]=a=b }") == {
        "ExecStart": "{ path=/usr/bin/dockerd ; argv[]=a=b }"}


# --- full disk ------------------------------------------------------------------------------

def test_a_disk_layout_keeps_its_parts_in_one_folder_of_its_own():
    layout = fp.DiskLayout("/var/lib/docker/volumes/notes_store/_data/", "disk-1a2b", 64)
    assert layout.folder == "/var/lib/dragonball-chaos/disk-1a2b"
    assert {layout.image, layout.mnt, layout.orig} == {
        f"{layout.folder}/disk.img", f"{layout.folder}/mnt", f"{layout.folder}/orig"}
    assert layout.filler == "/var/lib/docker/volumes/notes_store/_data/.dragonball-chaos-filler"


@pytest.mark.parametrize("path", ["", "/", "relative/dir", "/a/../etc", "//"])
def test_a_disk_layout_refuses_the_root_and_relative_paths(path):
    with pytest.raises(ValueError):
        fp.DiskLayout(path, "disk-1")


@pytest.mark.parametrize("size", [0, 7, fp.MAX_DISK_MIB + 1])
def test_a_full_disk_stays_small(size):
    with pytest.raises(ValueError, match="size_mib"):
        fp.DiskLayout("/data", "disk-1", size)


def test_the_disk_scripts_quote_paths_and_are_valid_sh():
    layout = fp.DiskLayout("/srv/my data/it's", "disk-1", 16)
    for script in (fp.disk_mount_script(layout, "/dev/loop3"), fp.disk_fill_script(layout),
                   fp.disk_free_script(layout), fp.disk_unmount_script(layout),
                   fp.disk_unmount_script(layout, copy_back=False), fp.loop_nodes_script(),
                   fp.partition_undo()):
        assert subprocess.run(["sh", "-n", "-c", script]).returncode == 0, script
    assert shlex.quote("/srv/my data/it's") in fp.disk_mount_script(layout, "/dev/loop3")


def test_the_mount_copies_the_data_in_and_keeps_the_original_reachable_in_that_order():
    script = fp.disk_mount_script(fp.DiskLayout("/data", "disk-1", 64), "/dev/loop3")
    lines = script.splitlines()
    order = [next(i for i, line in enumerate(lines) if line.startswith(prefix))
             for prefix in ("mkfs.ext4 -q -F -m 0", "losetup /dev/loop3",
                            "mount /dev/loop3", "mount --bind /data /var/lib/dragonball-chaos/disk-1/orig",
                            "mount --make-private /var/lib/dragonball-chaos/disk-1/orig",
                            "cp -a /data/.", "mount --bind /var/lib/dragonball-chaos/disk-1/mnt /data")]
    assert order == sorted(order), script
    assert "-m 0" in script   # no blocks kept for root: root's writes fail too


def test_the_unmount_copies_back_before_unmounting_and_frees_the_loop_device():
    script = fp.disk_unmount_script(fp.DiskLayout("/data", "disk-1", 64))
    assert script.index("cp -a /var/lib/dragonball-chaos/disk-1/mnt/.") < script.index(
        "umount /data")
    assert "losetup -d" in script and "rm -rf /var/lib/dragonball-chaos/disk-1" in script
    assert "cp -a" not in fp.disk_unmount_script(fp.DiskLayout("/data", "disk-1"), False)


def test_the_fill_script_proves_the_disk_full_with_a_write_of_its_own():
    script = fp.disk_fill_script(fp.DiskLayout("/data", "disk-1"))
    assert "for bs in 1M 4k 1k" in script and "exit 3" in script


def test_the_loop_nodes_script_makes_only_loop_devices():
    script = fp.loop_nodes_script()
    assert "mknod -m 660 /dev/loop-control c 10 237" in script
    assert 'b 7 "${dev#/dev/loop}"' in script


# --- undo stack -------------------------------------------------------------------------------

def test_undo_runs_every_step_in_reverse_even_after_a_failure_and_only_once():
    stack, ran = fp.UndoStack(), []
    stack.push("first", lambda: ran.append(1))
    stack.push("second fails", lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    stack.push("third", lambda: ran.append(3))
    assert stack.plan == ["third", "second fails", "first"]
    failures = stack.run()
    assert ran == [3, 1]
    assert [(d, str(e)) for d, e in failures] == [("second fails", "boom")]
    assert stack.run() == [] and ran == [3, 1] and len(stack) == 0
