"""The lab's faults (tests/lab/faults.py) proven on a bare 3-server lab, no DragonBall
installed: each takes effect, is seen to, and is undone, also when the body fails.

- a partition cuts s1 off from s2 and s3 both ways (TCP connects time out), leaves s2-s3
  alone, and never shows up in the host's own firewall; undone, all reach each other;
- a full disk: a write under the folder fails with ENOSPC while the data there stays
  readable; undone, the mount and the loop device are gone and the data is back in place;
- a killed service is restarted by systemd (a stand-in unit with Restart=always: the bare
  servers have no Docker, so `kill_dockerd` itself is refused there, as checked);
- a lost server goes down alone and comes back booted; a power loss of every server
  brings every one back booted, with its disk kept and its /tmp emptied (last).

Traffic stays between the lab's servers. The timings are printed (pytest -s) for
docs/lab.md, "Faults".
"""

from __future__ import annotations

import subprocess

import pytest

from tests.lab import disk_fault, faults
from tests.lab import fault_plan as fp


@pytest.fixture(scope="module")
def lab(make_lab):
    return make_lab(servers=3)


def booted(lab, server: str) -> str:
    return lab.exec(server, ["systemctl", "is-system-running"]).stdout.strip()


def host_rules() -> str:
    return subprocess.run(["iptables-save"], capture_output=True, text=True).stdout


def chain_on(lab, server: str) -> bool:
    return fp.CHAIN in lab.exec(server, ["iptables", "-w", "-S"], check=True).stdout


# --- partition --------------------------------------------------------------------------------

def test_a_partition_cuts_one_server_off_both_ways_and_the_undo_restores_it(lab):
    fault = faults.partition(lab, "s1")
    assert all(fault.reachability().values())
    with fault:
        seen = fault.reachability()
        assert seen == {("s1", "s2"): False, ("s1", "s3"): False,
                        ("s2", "s1"): False, ("s3", "s1"): False}, seen
        between = lab.exec("s2", fp.tcp_probe(lab.ip("s3")))
        assert fp.probe_reached(between.returncode, between.stderr), "s2-s3 must stay"
        assert all(chain_on(lab, s) for s in lab.servers)
        assert fp.CHAIN not in host_rules()          # inside the servers only
    assert all(fault.reachability().values())
    assert not any(chain_on(lab, s) for s in lab.servers)
    print(f"\npartition s1 | s2, s3: in effect (rules + probes) {fault.timings['effect_s']:.1f} s,"
          f" undone (rules + probes) {fault.timings['restore_s']:.1f} s")


def test_a_partition_is_undone_when_the_body_fails(lab):
    with pytest.raises(RuntimeError, match="the test failed"):
        with faults.partition(lab, "s2", ["s3"], probe_port=None):
            assert chain_on(lab, "s2") and chain_on(lab, "s3") and not chain_on(lab, "s1")
            raise RuntimeError("the test failed")
    assert not any(chain_on(lab, s) for s in lab.servers)


# --- full disk ----------------------------------------------------------------------------------

DATA = "/root/chaos-data"


def test_a_full_disk_refuses_writes_keeps_the_data_and_the_undo_removes_the_mount(lab):
    lab.exec("s2", ["sh", "-c", f"mkdir -p {DATA} && echo kept >{DATA}/before"], check=True)
    fault = disk_fault.fill_disk(lab, "s2", DATA, size_mib=32)
    try:
        fault.do()
    except faults.FaultUnavailable as e:
        pytest.skip(f"no full disk here: {e}")
    try:
        wrote = lab.exec("s2", ["dd", "if=/dev/zero", f"of={DATA}/more", "bs=4k", "count=4",
                                "conv=fsync"])
        assert not wrote.ok and "No space left on device" in wrote.stderr, wrote
        assert lab.exec("s2", ["cat", f"{DATA}/before"], check=True).stdout == "kept\n"
        mounted = lab.exec("s2", ["findmnt", "-n", "-o", "SOURCE", "--mountpoint", DATA]).stdout
        assert mounted.startswith(fault.device), mounted
        fault.free()                                  # room again: the fault has ended
        lab.exec("s2", ["sh", "-c", f"echo during >{DATA}/during"], check=True)
    finally:
        fault.undo()
    assert not lab.exec("s2", ["mountpoint", "-q", DATA]).ok
    listing = lab.exec("s2", ["ls", "-A", DATA], check=True).stdout.split()
    assert sorted(listing) == ["before", "during", "more"], listing   # kept, copied back
    assert not lab.exec("s2", ["test", "-e", fault.layout.folder]).ok
    attached = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    assert fault.layout.image not in attached
    print(f"\nfull disk (32 MiB ext4 on {fault.device}): in effect {fault.timings['effect_s']:.1f} s"
          f" (filling {fault.timings['fill_s']:.1f} s), undone {fault.timings['restore_s']:.1f} s;"
          f" a write then: {fault.timings['write_error']}")


def test_a_full_disk_is_undone_when_the_body_fails(lab):
    lab.exec("s3", ["mkdir", "-p", DATA], check=True)
    fault = disk_fault.fill_disk(lab, "s3", DATA, size_mib=16)
    try:
        with pytest.raises(RuntimeError, match="the test failed"):
            with fault:
                raise RuntimeError("the test failed")
    except faults.FaultUnavailable as e:
        pytest.skip(f"no full disk here: {e}")
    assert not lab.exec("s3", ["mountpoint", "-q", DATA]).ok
    assert lab.exec("s3", ["sh", "-c", f"echo x >{DATA}/after"]).ok


# --- a killed service -------------------------------------------------------------------------

STANDIN = "dragonball-chaos-standin"


def test_a_killed_service_is_restarted_by_systemd_and_the_time_is_reported(lab):
    lab.exec("s3", ["systemd-run", f"--unit={STANDIN}", "-p", "Restart=always",
                    "-p", "RestartSec=1", "sleep", "infinity"], check=True)
    try:
        with faults.kill_service(lab, "s3", STANDIN, ready=["true"]) as fault:
            killed = fault.pid
        after = fp.parse_show(lab.exec("s3", ["systemctl", "show", "-p", "MainPID", "-p",
                                              "ActiveState", f"{STANDIN}.service"]).stdout)
        assert after["ActiveState"] == "active" and int(after["MainPID"]) not in (0, killed)
        assert fault.timings["restarts_after"] == fault.timings["restarts_before"] + 1
        assert 0 < fault.timings["restarted_s"] < 30
        print(f"\nkill -9 of a Restart=always unit (RestartSec=1): systemd restarted it "
              f"{fault.timings['restarted_s']:.1f} s later")
    finally:
        lab.exec("s3", ["systemctl", "stop", f"{STANDIN}.service"])


def test_kill_dockerd_refuses_a_server_without_an_engine(lab):
    with pytest.raises(faults.FaultError, match="docker.service is not running on s1"):
        faults.kill_dockerd(lab, "s1").do()


# --- power ----------------------------------------------------------------------------------------

def test_a_lost_server_goes_down_alone_and_comes_back_booted(lab):
    fault = faults.lose_server(lab, "s3").do()
    try:
        states = {row["server"]: row["state"] for row in lab.status()}
        assert states == {"s1": "running", "s2": "running", "s3": "exited"}, states
    finally:
        fault.undo()
    assert booted(lab, "s3") in ("running", "degraded")
    print(f"\nserver s3 lost and back: booted {fault.timings['boot_s']['s3']:.1f} s after start")


def test_a_power_loss_of_every_server_brings_each_back_booted(lab):
    for server in lab.servers:
        lab.exec(server, ["sh", "-c", "echo disk >/root/kept; echo tmp >/tmp/gone"], check=True)
    with faults.power_loss(lab) as fault:
        assert {row["state"] for row in lab.status()} == {"exited"}
    for server in lab.servers:
        assert booted(lab, server) in ("running", "degraded")
        assert lab.exec(server, ["cat", "/root/kept"]).stdout == "disk\n"
        assert not lab.exec(server, ["test", "-e", "/tmp/gone"]).ok
    boots = ", ".join(f"{s} {t:.1f} s" for s, t in fault.timings["boot_s"].items())
    print(f"\npower loss of s1-s3: off in {fault.timings['effect_s']:.1f} s; booted again: {boots}")
