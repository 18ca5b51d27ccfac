"""`run.sh notify` as a real process: env, payload file, duplicates, retries, bad payloads."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from supervisor_cli import supervisor  # noqa: F401 (fixture)

RECORD = """
s="$DRAGONBALL_STORAGE_DIR"
seq=$(grep -o '"seq": [0-9]*' "$DRAGONBALL_NOTIFICATION_FILE" 2>/dev/null | tr -dc 0-9)
echo "$DRAGONBALL_EVENT seq=$seq" >> "$s/runs"
test ! -e "$s/fail" || { echo "cannot reach the api"; exit 4; }
echo "handled $DRAGONBALL_EVENT greeting=$PARAM_GREETING"
"""


def note(seq, **fields) -> str:
    return json.dumps({"schema": 1, "seq": seq, "app": "notes", "service": "api",
                       "event": "healthy", "replicas": {"desired": 2, "running": 2, "healthy": 2},
                       "at": "2026-11-28T14:00:00Z", "to": "web", **fields})


def runs(root) -> list:
    path = root / "storage" / "runs"
    return path.read_text().splitlines() if path.exists() else []


def test_notify_runs_config_change_scripts_with_the_payload_and_unchanged_params(
        make_module, supervisor):
    root = make_module("demo", {"config_change/1_apply.sh": """
        cp "$DRAGONBALL_NOTIFICATION_FILE" "$DRAGONBALL_STORAGE_DIR/note.json"
        stat -c %a "$DRAGONBALL_NOTIFICATION_FILE" > "$DRAGONBALL_STORAGE_DIR/mode"
        cmp -s "$DRAGONBALL_PARAMS_FILE" "$DRAGONBALL_OLD_PARAMS_FILE" &&
            echo same > "$DRAGONBALL_STORAGE_DIR/cmp"
        """ + RECORD})
    env = {"DRAGONBALL_PARAMS": '{"greeting": "hi"}'}
    result = supervisor("notify", "--json", stdin=note(3), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert (report["event"], report["ok"], report["seq"], report["duplicate"]) == \
        ("notify", True, 3, False)
    assert report["scripts"][0]["output"] == "handled notify greeting=hi\n"
    assert json.loads((root / "storage" / "note.json").read_text()) == json.loads(note(3))
    assert (root / "storage" / "mode").read_text() == "600\n"
    assert (root / "storage" / "cmp").read_text() == "same\n"  # old = new: nothing changed
    assert not (root / "storage" / ".dragonball" / "params.json").exists(), "not persisted"
    changed = supervisor("config_change", stdin='{"greeting": "bonjour"}', env=env)
    assert changed.returncode == 0, changed.stderr
    assert runs(root) == ["notify seq=3", "config_change seq="]


def test_a_seq_already_handled_is_acknowledged_without_running_anything(make_module, supervisor):
    root = make_module("demo", {"config_change/1_apply.sh": RECORD})
    for seq in (1, 2):
        assert supervisor("notify", stdin=note(seq)).returncode == 0
    again = supervisor("notify", "-", "--json", stdin=note(2))
    older = supervisor("notify", stdin=note(1))
    assert again.returncode == 0 and older.returncode == 0
    report = json.loads(again.stdout)
    assert report["ok"] and report["duplicate"] and report["scripts"] == []
    assert "seq 1 already handled (last 2)" in older.stdout
    assert supervisor("notify", stdin=note(5)).returncode == 0  # gaps are fine
    assert runs(root) == ["notify seq=1", "notify seq=2", "notify seq=5"]


def test_a_failed_notification_is_not_recorded_so_its_retry_runs(make_module, supervisor):
    root = make_module("demo", {"config_change/1_apply.sh": RECORD})
    (root / "storage").mkdir()
    (root / "storage" / "fail").touch()
    failed = supervisor("notify", "--json", stdin=note(7))
    assert failed.returncode == 1
    report = json.loads(failed.stdout)
    assert not report["ok"] and not report["duplicate"]
    assert report["failed_script"] == "1_apply.sh"
    assert "cannot reach the api" in report["scripts"][0]["output"]
    log = (root / "log" / "dragonball" / "supervisor.log").read_text()
    assert "action/config_change/1_apply.sh exited with status 4" in log
    assert "NOT recorded" in log
    (root / "storage" / "fail").unlink()
    retried = supervisor("notify", "--json", stdin=note(7))
    assert retried.returncode == 0 and not json.loads(retried.stdout)["duplicate"]
    assert runs(root) == ["notify seq=7", "notify seq=7"]


@pytest.mark.parametrize("payload, fragments", [
    ("nope", ["not valid JSON"]),
    ("[1]", ["must be a JSON object, not list"]),
    (note(0), ["seq: must be an integer >= 1, got 0"]),
    (note(True), ["seq: must be an integer >= 1, got True"]),
    (note("3"), ["seq: must be an integer >= 1, got '3'"]),
    (note(3, event="exploded", service=None),
     ["event: must be one of healthy, unhealthy, stopped, scaled, got 'exploded'",
      "service: must be a non-empty string, got None"]),
    ('{"seq": 1}', ["service:", "event:"]),
])
def test_an_invalid_notification_exits_2_listing_every_problem_and_runs_nothing(
        make_module, supervisor, payload, fragments):
    root = make_module("demo", {"config_change/1_apply.sh": RECORD})
    result = supervisor("notify", "--json", stdin=payload)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "the notification from standard input is invalid" in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr
    assert "hint:" in result.stderr and result.stdout == ""
    assert runs(root) == []


def test_notify_reads_a_file_and_refuses_replace(make_module, supervisor, tmp_path):
    root = make_module("demo", {"config_change/1_apply.sh": RECORD})
    (tmp_path / "note.json").write_text(note(4))
    assert supervisor("notify", str(tmp_path / "note.json")).returncode == 0
    missing = supervisor("notify", str(tmp_path / "absent.json"))
    assert missing.returncode == 2 and "cannot read a notification from" in missing.stderr
    assert supervisor("notify", "--replace", stdin=note(5)).returncode == 2
    assert runs(root) == ["notify seq=4"]


def test_notify_output_reaches_the_container_log(make_module, supervisor):
    make_module("demo", {"config_change/1_apply.sh": RECORD})
    proc = supervisor.spawn()
    try:
        supervisor.wait_phase("running")
        assert supervisor("notify", stdin=note(1)).returncode == 0
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "[notify/1_apply.sh] handled notify greeting=" in out


def test_notify_waits_for_a_running_config_change(make_module, supervisor):
    root = make_module("demo", {"config_change/1_apply.sh": """
        python3 -c 'import time; print(time.time())' >> "$DRAGONBALL_STORAGE_DIR/times"
        sleep 1
        python3 -c 'import time; print(time.time())' >> "$DRAGONBALL_STORAGE_DIR/times"
        """})
    change = subprocess.Popen([sys.executable, "-m", "dragonball.supervisor", "config_change"],
                              env=supervisor.env({}), stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, text=True)
    change.stdin.write('{"a": 1}')
    change.stdin.close()
    deadline = time.monotonic() + 10
    while not (root / "storage" / "times").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert supervisor("notify", stdin=note(1)).returncode == 0
    assert change.wait(timeout=30) == 0
    began_1, ended_1, began_2, ended_2 = map(
        float, (root / "storage" / "times").read_text().split())
    assert began_2 >= ended_1, "notify ran while config_change held the lock"

