"""The module authors' background-server helpers (dragonball.module.daemon), on real processes."""

from __future__ import annotations

import subprocess
import sys

from dragonball.module import daemon


def test_a_pid_is_alive_only_while_it_runs_the_expected_program(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert daemon.alive(proc.pid, b"time.sleep")
        assert not daemon.alive(proc.pid, b"docker-registry"), "a reused pid is not ours"
    finally:
        proc.kill()
        proc.wait()
    assert not daemon.alive(proc.pid, b"time.sleep")


def test_pid_files_and_the_log_fallback(tmp_path, monkeypatch):
    (tmp_path / "x.pid").write_text("123\n")
    (tmp_path / "bad.pid").write_text("soon")
    assert daemon.read_pid(str(tmp_path / "x.pid")) == 123
    assert daemon.read_pid(str(tmp_path / "bad.pid")) is None
    assert daemon.read_pid(str(tmp_path / "none.pid")) is None
    monkeypatch.setattr(daemon, "CONTAINER_LOG", str(tmp_path / "no" / "such" / "fd"))
    monkeypatch.setenv("DRAGONBALL_LOG_DIR", str(tmp_path / "log"))
    with daemon.container_log("srv.log") as out:
        out.write(b"hello\n")
    assert (tmp_path / "log" / "srv.log").read_bytes() == b"hello\n"
