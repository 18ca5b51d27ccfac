"""`dragonball preflight` through the real entry point: output shapes and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dragonball.installer.preflight import report
from test_preflight_golden import HOSTS, run_case

MANIFEST = str(HOSTS / "manifest.json")
CHECK_KEYS = {"name", "status", "detail", "hint"}


def dragonball(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dragonball.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_json_has_the_documented_shape_and_real_facts(tmp_path):
    result = dragonball("preflight", "--json", "--manifest", MANIFEST,
                        "--data-dir", str(tmp_path / "data"))
    assert result.returncode in (0, 1), result.stderr
    doc = json.loads(result.stdout)
    assert set(doc) == {"schema", "dragonball", "release", "role", "ok", "summary", "checks",
                        "facts"}
    assert (doc["schema"], doc["role"], doc["release"]) == (1, "portal", "notes 0.1.0")
    assert all(set(c) == CHECK_KEYS for c in doc["checks"])
    assert sum(doc["summary"].values()) == len(doc["checks"])
    assert doc["ok"] == (doc["summary"]["fail"] == 0) == (result.returncode == 0)
    assert doc["facts"]["paths"]["data"] == str(tmp_path / "data")


def test_table_and_summary_line(tmp_path):
    result = dragonball("preflight", "--manifest", MANIFEST, "--data-dir", str(tmp_path))
    assert result.returncode in (0, 1), result.stderr
    assert "port.8443/tcp" in result.stdout and "kernel.overlay" in result.stdout
    assert "preflight: " in result.stdout.splitlines()[-1]


def test_device_role_checks_its_own_ports_and_the_portal():
    # Nothing listens on port 1 of this host: the portal check fails, fast.
    result = dragonball("preflight", "--json", "--portal", "127.0.0.1:1")
    doc = json.loads(result.stdout)
    assert doc["role"] == "device" and result.returncode == 1
    names = [c["name"] for c in doc["checks"]]
    assert "port.5000/tcp" not in names and "port.9443/tcp" in names
    portal = next(c for c in doc["checks"] if c["name"] == "portal")
    assert portal["status"] == "fail" and "1/tcp" in portal["detail"]


@pytest.mark.parametrize("args, message", [
    (["--data-dir", "relative/dir"], "absolute path"),
    (["--role", "portal", "--portal", "10.0.0.5"], "--role device"),
    (["--portal", "http://10.0.0.5"], "HOST or HOST:PORT"),
    (["--manifest", "/nonexistent.json"], None),
    (["--role", "manager"], "invalid choice"),
])
def test_usage_errors_exit_2_and_say_why(args, message):
    result = dragonball("preflight", *args)
    if message is None:  # an unreadable manifest is invalid input too
        assert result.returncode == 2 and "cannot read the manifest" in result.stderr
        return
    assert result.returncode == 2 and message in result.stderr


def test_a_failed_check_exits_1_and_the_summary_says_install_would_stop():
    result = run_case("centos7-old")
    assert not result.ok
    assert "install would stop" in report.summary_line(result)
    doc = report.document(result)
    assert doc["ok"] is False and doc["summary"]["fail"] == 5
