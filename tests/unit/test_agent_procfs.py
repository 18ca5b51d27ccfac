"""The agent's /proc parsers (base_images/agent/agent/module/procfs.py) on captured files.

tests/unit/data/agent/: /proc/stat and /proc/diskstats of the build VM taken 1 s apart,
its meminfo, loadavg and uptime; its /proc/net/tcp (addresses rewritten to loopback) and
a lab server's /proc/net/tcp and tcp6 (a portal with dockerd and Swarm running).
"""

from __future__ import annotations

import importlib.util
import sys

import pytest

from dragonball.module import scan, validate
from support import ROOT

MODULE_DIR = ROOT / "base_images" / "agent" / "agent"
DATA = ROOT / "tests" / "unit" / "data" / "agent"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def procfs():
    spec = importlib.util.spec_from_file_location("agent_procfs",
                                                  MODULE_DIR / "module" / "procfs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def text(name: str) -> str:
    return (DATA / name).read_text()


def test_the_agent_folder_follows_the_module_spec():
    _, problems = validate(scan(str(MODULE_DIR)))
    assert problems == []


def test_the_agent_module_imports_only_the_standard_library():
    import ast
    siblings = {path.stem for path in (MODULE_DIR / "module").glob("*.py")}
    for path in (MODULE_DIR / "module").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top in siblings or top == "__future__" or \
                    name == "dragonball.module", f"{path.name} imports {name}"


def test_cpu_usage_between_two_captures_one_second_apart(procfs):
    before, after = procfs.parse_stat(text("stat")), procfs.parse_stat(text("stat.1s"))
    assert after["cores"] == 2 and after["procs_running"] == 3 and after["procs_blocked"] == 0
    assert before["cpu"]["user"] == 310783 and before["cpu"]["steal"] == 506
    usage = procfs.cpu_usage(before, after)
    # deltas: user 28, system 24, idle 144, softirq 1 -> 197 ticks, 53 of them busy
    assert usage == {"cores": 2, "busy_percent": 26.9, "user_percent": 14.2,
                     "system_percent": 12.7, "iowait_percent": 0.0, "steal_percent": 0.0,
                     "idle_percent": 73.1}


def test_cpu_usage_with_no_ticks_between_is_zero_not_a_division_error(procfs):
    sample = procfs.parse_stat(text("stat"))
    assert procfs.cpu_usage(sample, sample)["busy_percent"] == 0.0


def test_an_old_kernels_short_cpu_line_and_a_missing_one(procfs):
    old = procfs.parse_stat("cpu 10 0 5 100\ncpu0 10 0 5 100\n")
    assert old["cpu"]["steal"] == 0 and old["cores"] == 1
    with pytest.raises(procfs.ProcError):
        procfs.parse_stat("intr 1 2 3\n")


def test_memory_from_meminfo(procfs):
    info = procfs.parse_meminfo(text("meminfo"))
    assert info["MemTotal"] == 24684096 * 1024
    assert info["HugePages_Total"] == 0  # a count: no unit, not multiplied
    memory = procfs.memory(info)
    assert memory["total_bytes"] == 24684096 * 1024
    assert memory["available_bytes"] == 23271592 * 1024
    assert memory["used_bytes"] == (24684096 - 23271592) * 1024
    assert memory["used_percent"] == 5.7
    assert (memory["buffers_bytes"], memory["cached_bytes"]) == (110364 * 1024, 6301924 * 1024)
    assert memory["swap_total_bytes"] == memory["swap_used_bytes"] == 0


def test_memory_without_memavailable_uses_free_buffers_and_cached(procfs):
    info = procfs.parse_meminfo("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\n"
                                "Cached: 250 kB\nSwapTotal: 200 kB\nSwapFree: 50 kB\n")
    memory = procfs.memory(info)
    assert memory["available_bytes"] == 400 * 1024 and memory["used_percent"] == 60.0
    assert memory["swap_used_bytes"] == 150 * 1024
    with pytest.raises(procfs.ProcError):
        procfs.parse_meminfo("MemFree: 1 kB\n")


def test_io_of_the_whole_disk_and_its_rate(procfs):
    before, after = procfs.parse_diskstats(text("diskstats")), procfs.parse_diskstats(
        text("diskstats.1s"))
    assert set(after) >= {"vda", "zram0", "loop0"}
    io = procfs.io_summary(after, before, 1.0)
    assert list(io["devices"]) == ["vda"]  # loop and zram devices are no disks
    assert io["read_bytes"] == 10840786 * 512 and io["written_bytes"] == 138451608 * 512
    assert (io["reads"], io["writes"]) == (426592, 906256)
    assert io["read_bytes_per_s"] == 360 * 512 and io["written_bytes_per_s"] == 184 * 512
    assert procfs.io_summary(after)["read_bytes_per_s"] == 0.0  # no earlier sample


def test_partitions_and_stacked_devices_are_not_counted_twice(procfs):
    names = ["sda", "sda1", "sda2", "nvme0n1", "nvme0n1p1", "nvme0n1p12", "mmcblk0",
             "mmcblk0p1", "dm-0", "md0", "loop0", "sr0", "zram0", "ram1", "nbd0", "vdb", "xvda",
             "xvda1"]
    assert procfs.whole_disks(names) == ["mmcblk0", "nvme0n1", "sda", "vdb", "xvda"]
    line = ("   8       1 sda1 10 0 80 0 20 0 160 0 0 0 0\n"
            "   8       0 sda 10 0 80 0 20 0 160 0 0 0 0\n")
    io = procfs.io_summary(procfs.parse_diskstats(line))
    assert io["read_bytes"] == 80 * 512 and list(io["devices"]) == ["sda"]


def test_connections_of_a_lab_portal(procfs):
    connections = procfs.connections(text("lab_net_tcp"), text("lab_net_tcp6"))
    assert connections == {"total": 20, "established": 6, "listen": 8,
                           "states": {"established": 6, "listen": 8, "time_wait": 6},
                           "ipv4": 18, "ipv6": 2}


def test_connections_of_the_build_vm_and_a_host_without_ipv6(procfs):
    connections = procfs.connections(text("net_tcp"))
    assert connections["states"] == {"close_wait": 3, "listen": 1}
    assert connections["ipv6"] == 0 and connections["established"] == 0
    assert procfs.tcp_states("  sl  local_address rem_address   st\n"
                             "   0: 00000000:0016 00000000:0000 0d 00000000\n") == \
        {"unknown_0d": 1}


def test_load_and_uptime(procfs):
    assert procfs.load(text("loadavg")) == {"1m": 5.09, "5m": 5.24, "15m": 3.87,
                                            "running": 3, "threads": 443}
    assert procfs.uptime(text("uptime")) == 4397.19
    for bad in ("", "1 2 3\n", "a b c 1/2 3\n"):
        with pytest.raises(procfs.ProcError):
            procfs.load(bad)
    with pytest.raises(procfs.ProcError):
        procfs.uptime("")
