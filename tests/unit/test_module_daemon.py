"""The module authors' background-server helpers (dragonball.module.daemon), on real processes."""

from __future__ import annotations

import subprocess
import sys

from dragonball.module import daemon


def started(setup: str = "") -> subprocess.Popen:
    """A sleeping child that has exec'd and run `setup`, and says so (before it exec'd,
    its cmdline is still ours)."""
    code = f"{setup}\nimport time\nprint('ready', flush=True)\ntime.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"ready\n"
    return proc


def test_a_pid_is_alive_only_while_it_runs_the_expected_program(tmp_path):
    proc = started()
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


def test_terminate_stops_a_server_and_kills_one_that_ignores_sigterm():
    polite = started()
    assert daemon.terminate(polite.pid, b"time.sleep", within=5) == "stopped"
    polite.wait()
    stubborn = started("import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)")
    try:
        assert daemon.terminate(stubborn.pid, b"SIG_IGN", within=0.3) == "still running"
        assert daemon.terminate(stubborn.pid, b"SIG_IGN", within=0.3, kill=True) in (
            "stopped", "still running")
        stubborn.wait(timeout=5)
        assert stubborn.returncode == -9
    finally:
        stubborn.kill()
    assert daemon.terminate(None, b"x", within=1) == "not running"
