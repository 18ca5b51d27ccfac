"""The supervisor as a real process (what run.sh runs), outside any container."""

from __future__ import annotations

import json
import os
import signal
import time

from supervisor_cli import supervisor  # noqa: F401 (fixture)

DAEMON = """
# a real daemon: double fork + setsid, escaping the script's process group
python3 -c 'import os,time
if os.fork(): os._exit(0)
os.setsid()
if os.fork(): os._exit(0)
open(os.environ["DRAGONBALL_STORAGE_DIR"] + "/daemon.pid", "w").write(str(os.getpid()))
time.sleep(600)'
"""


def test_sigterm_runs_stop_actions_then_ends_what_start_left(make_module, supervisor):
    root = make_module("demo", {
        "start/1_daemon.sh": DAEMON, "start/2_hello.sh": "echo hello from start",
        "stop/1_save.sh": 'echo saved > "$DRAGONBALL_STORAGE_DIR/stop.marker"; echo bye'})
    proc = supervisor.spawn()
    supervisor.wait_phase("running")
    daemon = int((root / "storage" / "daemon.pid").read_text())
    os.kill(daemon, 0)  # alive while running
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert (root / "storage" / "stop.marker").read_text() == "saved\n"
    assert "[start/2_hello.sh] hello from start" in out and "[stop/1_save.sh] bye" in out
    assert not _alive(daemon), "a daemonized process escaped the stop"


def test_a_failed_start_exits_1_naming_script_status_and_tail(make_module, supervisor):
    root = make_module("demo", {"start/1_ok.sh": "true",
                                "start/2_fail.sh": "echo 'cannot bind port 80'; exit 4"})
    result = supervisor("start")
    assert result.returncode == 1
    for text in (result.stdout, (root / "log" / "dragonball" / "supervisor.log").read_text()):
        assert "action/start/2_fail.sh exited with status 4" in text
        assert "cannot bind port 80" in text


def test_an_invalid_module_is_refused_with_every_problem(make_module, supervisor):
    root = make_module("demo", {"start/1_a.sh": "true"})
    (root / "action" / "start" / "1_a.sh").chmod(0o644)
    (root / "extra").mkdir()
    for command in ("start", "status", "check"):
        result = supervisor(command)
        assert result.returncode == 2
        assert "action/start/1_a.sh: is not executable" in result.stderr
        assert "extra: is not part of the module spec" in result.stderr
    assert not (root / "log").exists(), "an invalid module must change nothing"


def test_status_is_unhealthy_until_started_then_follows_the_status_action(
        make_module, supervisor):
    root = make_module("demo", {"start/1_slow.sh": "sleep 1",
                                "status/1_flag.sh": 'test ! -e "$DRAGONBALL_STORAGE_DIR/sick"'})
    proc = supervisor.spawn()
    try:
        supervisor.wait_phase("starting")
        early = json.loads(supervisor("status", "--json").stdout)
        assert early["ok"] is False and early["phase"] == "starting"
        supervisor.wait_phase("running")
        assert supervisor("status").returncode == 0
        (root / "storage" / "sick").touch()
        sick = supervisor("status", "--json")
        assert sick.returncode == 1
        assert json.loads(sick.stdout)["failed_script"] == "1_flag.sh"
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_config_change_persists_only_on_success_and_survives_a_new_supervisor(
        make_module, supervisor):
    root = make_module("demo", {
        "config_change/1_apply.sh":
            'cat "$DRAGONBALL_PARAMS_FILE" > "$DRAGONBALL_STORAGE_DIR/seen.json"\n'
            'test "$PARAM_PORT" != 0 || { echo "port 0 is not allowed"; exit 3; }',
        "info/1_show.sh": 'echo "port=$PARAM_PORT greeting=$PARAM_GREETING"'})
    initial = {"DRAGONBALL_PARAMS": '{"port": 80, "greeting": "hi"}'}
    applied = supervisor("config_change", stdin='{"port": 8080}', env=initial)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert json.loads((root / "storage" / "seen.json").read_text()) == \
        {"port": 8080, "greeting": "hi"}
    refused = supervisor("config_change", "--json", stdin='{"port": 0}', env=initial)
    assert refused.returncode == 1
    assert "port 0 is not allowed" in json.loads(refused.stdout)["scripts"][0]["output"]
    # a "recreated container": a fresh supervisor, same storage, same initial parameters
    shown = supervisor("info", env=initial)
    assert shown.stdout == "port=8080 greeting=hi\n"
    params_file = root / "storage" / ".dragonball" / "params.json"
    assert oct(params_file.stat().st_mode & 0o777) == "0o600"


def test_config_change_rejects_a_non_object_without_running_anything(make_module, supervisor):
    root = make_module("demo", {"config_change/1_apply.sh": 'touch "$DRAGONBALL_STORAGE_DIR/ran"'})
    result = supervisor("config_change", stdin="[1, 2]")
    assert result.returncode == 2 and "must be a JSON object" in result.stderr
    assert not (root / "storage" / "ran").exists()


def test_stop_scripts_share_the_grace_period(make_module, supervisor):
    make_module("demo", {"stop/1_slow.sh": "sleep 600"})
    proc = supervisor.spawn(env={"DRAGONBALL_STOP_GRACE": "3"})
    supervisor.wait_phase("running")
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1, out  # a stop script that timed out is not a clean stop
    assert time.monotonic() - began < 6
    assert "action/stop/1_slow.sh timed out" in out


def _alive(pid: int) -> bool:
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ")[1][0] == "Z":
                    return False
        except FileNotFoundError:
            return False
        time.sleep(0.05)
    return True


def test_config_change_output_reaches_the_container_log_and_options_mix(
        make_module, supervisor):
    make_module("demo", {"config_change/1_apply.sh": 'echo "now $PARAM_COLOR"'})
    proc = supervisor.spawn()
    try:
        supervisor.wait_phase("running")
        result = supervisor("config_change", "--json", "-", "--replace",
                            stdin='{"color": "blue"}')
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["scripts"][0]["output"] == "now blue\n"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "[config_change/1_apply.sh] now blue" in out
