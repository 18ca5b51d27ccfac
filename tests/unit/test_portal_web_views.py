"""The pages' view models: plain data in, rows and alerts out (no store, no network)."""

from __future__ import annotations

from dragonball.errors import DragonBallError
from dragonball.portal.store import Device
from dragonball.portal.web import views
from portal_web_fakes import METRICS


def _device(id_, hostname, state="joined", address=None, labels=None):
    return Device(id=id_, hostname=hostname, address=address or f"10.0.0.{id_}",
                  role="portal" if id_ == 1 else "device", state=state, code_id=None,
                  node_id="n" if state == "joined" else None,
                  labels=labels or {"io.dragonball.role": "device"}, created=0.0, joined=None)


def test_human_bytes():
    assert [views.human_bytes(n) for n in (0, 1023, 1536, 5 * 2 ** 20, 3 * 2 ** 40)] == [
        "0 B", "1023 B", "1.5 KiB", "5.0 MiB", "3.0 TiB"]


def test_metrics_as_text():
    shown = views.metrics_view(METRICS)
    assert shown.cpu == "27% of 2 cores" and shown.cpu_bar == 25
    assert shown.memory == "2.0 GiB / 8.0 GiB" and shown.memory_percent == 25.0
    assert shown.io == "r 1.0 KiB/s · w 957.2 KiB/s"
    assert shown.connections == "6 established · 20 total" and shown.load == "0.31"


def test_metrics_missing_fields_do_not_break_the_row():
    shown = views.metrics_view({"schema": 1})
    assert shown.cpu == "0% of ? cores" and shown.memory == "0 B / 0 B"


def test_bar_steps_are_clamped():
    assert [views.bar_step(p) for p in (-3, 0, 4.9, 5, 99.9, 100, 250)] == [0, 0, 0, 5, 95, 100, 100]


def test_device_rows_join_metrics_by_address():
    devices = [_device(1, "s1"), _device(2, "s2"), _device(3, "s3", state="enrolled")]
    rows = views.device_rows(devices, {"10.0.0.1": METRICS,
                                       "10.0.0.2": DragonBallError("cannot reach the agent")})
    assert rows[0].metrics is not None and rows[0].agent_error is None
    assert rows[1].metrics is None and rows[1].agent_error == "cannot reach the agent"
    assert rows[2].metrics is None and rows[2].agent_error is None  # not joined: not asked
    assert rows[0].labels == ["io.dragonball.role=device"]


def test_counts_by_state():
    devices = [_device(1, "s1"), _device(2, "s2"), _device(3, "s3", state="enrolled")]
    assert views.state_counts(devices) == {"total": 3, "joined": 2, "enrolled": 1}
    assert views.state_counts([]) == {"total": 0, "joined": 0, "enrolled": 0}


def test_alerts_name_the_device_and_what_to_look_at():
    full = {**METRICS, "memory": {**METRICS["memory"], "used_percent": 93.0},
            "cpu": {"cores": 2, "busy_percent": 97.0}}
    rows = views.device_rows(
        [_device(1, "s1"), _device(2, "s2"), _device(3, "s3", state="enrolled")],
        {"10.0.0.1": full, "10.0.0.2": DragonBallError("timed out")})
    found = [(a.level, a.subject, a.text) for a in views.alerts(rows)]
    assert found == [
        ("warning", "s1", "memory 93% used"), ("warning", "s1", "cpu 97% busy"),
        ("error", "s2", "its agent does not answer: timed out"),
        ("warning", "s3", "enrolled but not joined yet (state enrolled): is its install "
                          "still running?")]
    assert views.alerts(views.device_rows([_device(1, "s1")], {"10.0.0.1": METRICS})) == []


def test_event_rows_and_pages():
    events = [{"id": 7, "at": 1_800_000_000.0, "kind": "code.created", "actor": "admin (web)",
               "client": "10.0.0.9", "detail": {"code_id": 3, "expires": 1.5}},
              {"id": 6, "at": 0.0, "kind": "device.joined", "actor": "installer",
               "client": None, "detail": {"hostname": "s1"}}]
    rows = views.event_rows(events)
    assert rows[0].at == "2027-01-15 08:00:00 UTC" and rows[0].detail == "code_id=3 expires=1.5"
    assert rows[1].client == "" and rows[1].detail == "hostname=s1"
    assert views.page_of([1, 2, 3], 2) == ([1, 2], True)
    assert views.page_of([1, 2], 2) == ([1, 2], False)


def test_image_rows_sorted():
    rows = views.image_rows({"b/app": ["2", "10", "1"], "a/base": []})
    assert [(r.repository, r.tags) for r in rows] == [("a/base", []), ("b/app", ["1", "10", "2"])]
