"""ActionRunner with real processes: order, failure, timeouts, background processes."""

from __future__ import annotations

import os
import threading
import time

from dragonball.module import load_module
from dragonball.supervisor.runner import ActionRunner
from dragonball.supervisor.procs import read_table


def run(make_module, scripts, event="start", manifest=None, **kw):
    module = load_module(str(make_module("demo", scripts, manifest)))
    env = dict(os.environ, OUT=str(module.path("out")))
    return module, ActionRunner(module, **kw).run_event(event, env)


def test_scripts_run_one_by_one_in_ascii_order(make_module):
    scripts = {f"start/{n}": f'echo {n} >> "$OUT"; sleep 0.05' for n in
               ("b", "10_x", "2_y", "A")}
    module, report = run(make_module, scripts)
    assert report.ok
    assert open(module.path("out")).read().split() == ["10_x", "2_y", "A", "b"]
    assert [s.name for s in report.scripts] == ["10_x", "2_y", "A", "b"]


def test_a_failing_script_stops_the_event_and_keeps_its_output_tail(make_module):
    module, report = run(make_module, {
        "start/1_ok": "echo fine", "start/2_bad": "seq 1 2000; echo 'disk full' >&2; exit 7",
        "start/3_never": 'echo ran >> "$OUT"'})
    assert not report.ok and report.failed.name == "2_bad"
    assert report.failed.exit_status == 7
    assert report.failed.output.endswith("disk full\n")
    assert len(report.failed.output.encode()) <= 4096
    assert [s.name for s in report.scripts] == ["1_ok", "2_bad"]
    assert not os.path.exists(module.path("out"))


def test_timeout_kills_the_whole_process_group(make_module):
    module, report = run(make_module, {
        "start/1_hang": 'sleep 600 & echo $! > "$OUT"; sleep 600'},
        manifest='{"timeouts": {"start/1_hang": 0.5}}')
    result = report.scripts[0]
    assert result.timed_out and not report.ok
    assert 0.5 <= result.duration_s < 5
    child = int(open(module.path("out")).read())
    # signals are delivered asynchronously: give the killed child a moment to go
    deadline = time.monotonic() + 5
    while child in _live_pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert child not in _live_pids(), "the script's background child survived its timeout"


def test_processes_left_by_a_successful_script_keep_running(make_module):
    module, report = run(make_module, {"start/1_daemon": 'sleep 600 & echo $! > "$OUT"'})
    child = int(open(module.path("out")).read())
    try:
        assert report.ok and report.scripts[0].duration_s < 5
        assert child in _live_pids()
    finally:
        os.kill(child, 9)


def test_output_of_background_processes_keeps_flowing_to_the_sink(make_module):
    lines = []
    _, report = run(make_module, {"start/1_bg": "(sleep 0.3; echo later) & echo now"},
                    sink=lambda event, script, line: lines.append((script, line)))
    assert report.ok
    deadline = time.monotonic() + 5
    while ("1_bg", b"later\n") not in lines and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lines == [("1_bg", b"now\n"), ("1_bg", b"later\n")]


def test_interrupt_ends_the_running_script(make_module):
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    _, report = run(make_module, {"start/1_long": "sleep 600"}, interrupt=stop)
    assert report.scripts[0].exit_status == -15 and report.scripts[0].duration_s < 5


def test_a_script_that_cannot_start_is_reported(make_module):
    root = make_module("demo")
    path = root / "action" / "status" / "1_gone"
    path.write_text("#!/nonexistent/interpreter\n")
    path.chmod(0o755)
    report = ActionRunner(load_module(str(root))).run_event("status", dict(os.environ))
    assert report.scripts[0].exit_status is None
    assert "could not be started" in report.scripts[0].why()


def _live_pids() -> set:
    return {pid for pid, (_, state) in read_table().items() if state != "Z"}


def test_a_folder_runs_under_another_event_name(make_module):
    module = load_module(str(make_module("demo", {
        "config_change/1_apply": 'echo "$DRAGONBALL_EVENT"; exit 2'})))
    lines = []
    report = ActionRunner(module, sink=lambda ev, script, line: lines.append((ev, line))) \
        .run_event("config_change", dict(os.environ), as_event="notify")
    assert report.event == "notify" and lines == [("notify", b"notify\n")]
    assert "demo notify FAILED: action/config_change/1_apply exited with status 2" == \
        report.summary()
