"""The agent's node metrics (base_images/agent/agent/module/agent_metrics.py): psutil reading
captured /proc files through PROCFS_PATH, and the agent's own parts (deltas and
percentages, whole disks, counts per TCP state of PID 1's tables, /proc/loadavg's threads).

tests/unit/data/agent/: /proc/stat and /proc/diskstats of the build VM taken 1 s apart,
its meminfo, loadavg and uptime; its /proc/net/tcp (addresses rewritten to loopback) and
a lab server's /proc/net/tcp and tcp6 (a portal with dockerd and Swarm running).
"""

from __future__ import annotations

import ast
import re
import shutil
import sys
import time
import types

import pytest

from dragonball.module import scan, validate
from support import ROOT

MODULE_DIR = ROOT / "base_images" / "agent" / "agent"
DATA = ROOT / "tests" / "unit" / "data" / "agent"
BTIME = 1795873086  # the captured stat's boot time
#: What the agent imports beyond the standard library, and the Debian package of each
DEBIAN = {"docker": "python3-docker", "psutil": "python3-psutil",
          "hypercorn": "python3-hypercorn", "starlette": "python3-starlette",
          "requests": "python3-requests"}

sys.path.insert(0, str(MODULE_DIR / "module"))
import agent_metrics  # noqa: E402

sys.path.pop(0)


def fake_proc(root, tcp: str = "lab_net_tcp", tcp6: str | None = "lab_net_tcp6"):
    """A /proc of captured files; PID 1's net/ is the lab portal's (the host's namespace)."""
    (root / "1" / "net").mkdir(parents=True)
    for name in ("stat", "diskstats", "meminfo", "loadavg", "uptime"):
        shutil.copy(DATA / name, root / name)
    (root / "vmstat").write_text("pswpin 0\npswpout 0\n")
    shutil.copy(DATA / tcp, root / "1/net/tcp")
    if tcp6:
        shutil.copy(DATA / tcp6, root / "1/net/tcp6")
    shutil.copy(DATA / "net_tcp", root / "net_tcp_of_the_reader")  # /proc/net: not read
    return root


@pytest.fixture
def proc(tmp_path):
    return fake_proc(tmp_path / "proc")


def collector(root, clock=None):
    """A Collector whose window's sleep moves /proc one second on."""
    clock = clock or [1000.0]

    def sleep(seconds):
        clock[0] += 1.0
        for name in ("stat", "diskstats"):
            shutil.copy(DATA / f"{name}.1s", root / name)
    return agent_metrics.Collector(str(root), hostname="s7", node_id="n7",
                                   clock=lambda: clock[0], sleep=sleep)


def test_the_agent_folder_follows_the_module_spec():
    _, problems = validate(scan(str(MODULE_DIR)))
    assert problems == []


def test_the_agent_imports_the_standard_library_and_debian_packages_it_installs():
    dockerfile = (MODULE_DIR.parent / "Dockerfile").read_text()
    installed = set(re.search(r"apt-install ([^\n\\]+)", dockerfile).group(1).split())
    siblings = {path.stem for path in (MODULE_DIR / "module").glob("*.py")}
    for path in (MODULE_DIR / "module").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in siblings or \
                        top == "__future__" or name == "dragonball.module":
                    continue
                assert DEBIAN.get(top) in installed, f"{path.name} imports {name}"


def test_the_metrics_of_captured_files(proc):
    metrics = collector(proc).metrics()
    assert metrics["schema"] == 1 and (metrics["hostname"], metrics["node_id"]) == ("s7", "n7")
    # deltas: user 28, system 24, idle 144, softirq 1 -> 197 ticks, 53 of them busy
    assert metrics["cpu"] == {"cores": 2, "busy_percent": 26.9, "user_percent": 14.2,
                              "system_percent": 12.7, "iowait_percent": 0.0,
                              "steal_percent": 0.0, "idle_percent": 73.1, "window_s": 1.0}
    memory = metrics["memory"]
    assert memory["total_bytes"] == 24684096 * 1024
    assert memory["available_bytes"] == 23271592 * 1024
    assert memory["used_bytes"] == (24684096 - 23271592) * 1024  # total - available
    assert memory["used_percent"] == 5.7 and memory["buffers_bytes"] == 110364 * 1024
    assert memory["cached_bytes"] == (6301924 + 407948) * 1024  # psutil: + SReclaimable
    assert memory["swap_total_bytes"] == memory["swap_used_bytes"] == 0
    io = metrics["io"]
    assert list(io["devices"]) == ["vda"]  # loop and zram devices are no disks
    assert io["read_bytes"] == 10840786 * 512 and io["written_bytes"] == 138451608 * 512
    assert (io["reads"], io["writes"]) == (426592, 906256)
    assert io["read_bytes_per_s"] == 360 * 512 and io["written_bytes_per_s"] == 184 * 512
    assert metrics["load"] == {"1m": 5.09, "5m": 5.24, "15m": 3.87, "running": 3,
                               "threads": 443}
    assert abs(metrics["uptime_s"] - (time.time() - BTIME)) < 5


def test_connections_are_pid_1s_namespace_of_a_lab_portal(proc):
    assert collector(proc).metrics()["connections"] == {
        "total": 20, "established": 6, "listen": 8,
        "states": {"established": 6, "listen": 8, "time_wait": 6}, "ipv4": 18, "ipv6": 2}


def test_connections_of_the_build_vm_and_a_host_without_ipv6(tmp_path):
    proc = fake_proc(tmp_path / "proc", tcp="net_tcp", tcp6=None)
    connections = collector(proc).metrics()["connections"]
    assert connections["states"] == {"close_wait": 3, "listen": 1}
    assert connections["ipv6"] == 0 and connections["established"] == 0
    assert agent_metrics.tcp_states("  sl  local_address rem_address   st\n"
                                    "   0: 00000000:0016 00000000:0000 0d 00000000\n") == \
        {"unknown_0d": 1}


def test_rates_are_since_the_last_call_when_it_is_recent_enough(proc):
    clock = [1000.0]
    metrics = collector(proc, clock)
    metrics.metrics()  # a window of its own (first call)
    clock[0] += 5.0
    later = metrics.metrics()
    assert later["cpu"]["window_s"] == 5.0  # since the previous call, no sleep
    assert later["cpu"]["busy_percent"] == 0.0 and later["io"]["read_bytes_per_s"] == 0.0


def test_an_unreadable_proc_is_a_metrics_error(tmp_path, proc):
    (proc / "meminfo").unlink()
    with pytest.raises(agent_metrics.MetricsError, match="meminfo"):
        collector(proc).metrics()
    with pytest.raises(agent_metrics.MetricsError):
        collector(tmp_path / "nothing").metrics()


def test_cpu_usage_with_no_time_between_is_zero_not_a_division_error():
    sample = types.SimpleNamespace(user=1.0, nice=0.0, system=1.0, idle=5.0, iowait=0.0,
                                   irq=0.0, softirq=0.0, steal=0.0)
    assert agent_metrics.cpu_usage(sample, sample)["busy_percent"] == 0.0


def test_partitions_and_stacked_devices_are_not_counted_twice():
    names = ["sda", "sda1", "sda2", "nvme0n1", "nvme0n1p1", "nvme0n1p12", "mmcblk0",
             "mmcblk0p1", "dm-0", "md0", "loop0", "sr0", "zram0", "ram1", "nbd0", "vdb", "xvda",
             "xvda1"]
    assert agent_metrics.whole_disks(names) == ["mmcblk0", "nvme0n1", "sda", "vdb", "xvda"]
    disk = types.SimpleNamespace(read_bytes=80 * 512, write_bytes=0, read_count=10,
                                 write_count=0)
    io = agent_metrics.io_summary({"sda": disk, "sda1": disk})
    assert io["read_bytes"] == 80 * 512 and list(io["devices"]) == ["sda"]
    assert io["read_bytes_per_s"] == 0.0  # no earlier sample


def test_load_and_its_malformed_forms():
    assert agent_metrics.load("0.5 0.25 0.1 2/300 4242\n")["threads"] == 300
    for bad in ("", "1 2 3\n", "a b c 1/2 3\n", "1 2 3 4\n"):
        with pytest.raises(agent_metrics.MetricsError):
            agent_metrics.load(bad)
