"""The report's JSON shape is fixed (docs/module-spec.md): a golden test."""

from __future__ import annotations

from dragonball.supervisor.report import EventReport, ScriptResult


def test_json_shape_is_the_documented_one():
    report = EventReport("api", "status", started_at=0.0, duration_s=0.0421, phase="running",
                         scripts=[ScriptResult("1_ping.sh", 0, False, 0.04, "PONG\n")],
                         require_running=True)
    assert report.to_dict() == {
        "schema": 1, "module": "api", "event": "status", "ok": True, "phase": "running",
        "started_at": "1970-01-01T00:00:00.000Z", "duration_s": 0.042, "failed_script": None,
        "scripts": [{"name": "1_ping.sh", "exit_status": 0, "timed_out": False,
                     "duration_s": 0.04, "output": "PONG\n"}]}


def test_status_is_unhealthy_until_start_has_finished():
    report = EventReport("api", "status", phase="starting", require_running=True)
    assert not report.ok and report.failed is None
    assert "starting" in report.summary()


def test_a_failure_names_script_status_and_output_tail():
    failed = ScriptResult("2_b.sh", 3, output="line one\nboom\n")
    report = EventReport("api", "start", scripts=[ScriptResult("1_a.sh", 0), failed])
    assert report.to_dict()["failed_script"] == "2_b.sh"
    text = report.render()
    assert "action/start/2_b.sh exited with status 3" in text and "  boom" in text
    assert "timed out" in ScriptResult("x", -15, timed_out=True, duration_s=1).why()
    assert "signal 9" in ScriptResult("x", -9).why()
