"""The chaos bench's pure parts (bench/chaos.py, bench/chaos_watch.py): its arguments, what
it makes of `dragonball status --json` and of the dashboard's HTML, its tables and ratios. The
bench itself runs on an installed lab (docs/lab.md, "Faults")."""

from __future__ import annotations

import sys

import pytest

from support import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import chaos  # noqa: E402
import chaos_watch  # noqa: E402


def test_scenarios_are_filtered_by_letter():
    assert chaos.parse([]).scenario == list("abcde")
    assert chaos.parse(["--scenario", "a,c"]).scenario == ["a", "c"]
    assert chaos.parse(["--scenario", "de"]).scenario == ["d", "e"]
    with pytest.raises(SystemExit):
        chaos.parse(["--scenario", "az"])


def test_status_in_a_few_words():
    document = {"devices": {"total": 3, "by_state": {"joined": 3}},
                "apps": {"notes": {"total": 3, "by_state": {"healthy": 2, "unhealthy": 1},
                                   "not_healthy": [{"service": "store", "state": "unhealthy",
                                                    "healthy": 0, "desired": 1}]}}}
    assert chaos_watch.status_text(document) == \
        "3 devices 3 joined | notes: store unhealthy 0/1"
    document["apps"]["notes"]["not_healthy"] = []
    assert chaos_watch.status_text(document).endswith("notes: all healthy")


HEALTH = """<div id="health" hx-get="/dashboard/health">
  <div class="tiles">
    <div class="tile"><span class="big">3</span> devices</div>
    <div class="tile bad"><span class="big">2/3</span> agents answering</div>
  </div>
  <h2>Alerts</h2>
  <ul class="alerts">
    <li class="bad"><strong>s2 (10.213.1.12)</strong>: its agent does not answer &amp; more</li>
  </ul>
</div>"""
SERVICES = """<div id="dashboard-services">
  <ul class="services tree">
    <li class="depth-0" data-service="notes/web"><a href="/services?app=notes">web</a>
      <span class="badge state-healthy">healthy</span>
      <span class="muted small">1/1 · notes</span></li>
    <li class="depth-2" data-service="notes/store"><a href="/services?app=notes">store</a>
      <span class="badge state-unhealthy">unhealthy</span>
      <span class="muted small">0/1</span></li>
  </ul>
  <ul class="alerts">
    <li class="warn"><strong>notes/store</strong>: 0 of 1 tasks healthy</li>
  </ul>
</div>"""


def test_the_dashboard_in_a_few_words():
    text = chaos_watch.dashboard_text(HEALTH, SERVICES)
    assert text == ("2/3 agents answering | services: store unhealthy 0/1 | alert "
                    "s2 (10.213.1.12): its agent does not answer & more | "
                    "alert notes/store: 0 of 1 tasks healthy")
    assert chaos_watch.dashboard_text("", "<p>Every service is healthy.</p>") == \
        "services: all healthy"


def result(variant, failed, gap, lost, recovery, scenario="d", case="s2 | others"):
    summary = {"requests": 500, "failed": failed, "longest_gap_s": gap, "writes_lost": lost,
               "writes_unverified": 0, "first_good_after_fault_s": 1.5, "failures": {}}
    return chaos.Result(scenario, case, variant, summary, 20.0, recovery,
                        ["3 devices 3 joined | notes: all healthy"], ["services: all healthy"])


def test_the_markdown_table_has_a_row_per_case_and_no_stray_pipes():
    text = chaos.markdown([result("app", 0, 0.4, 0, 12.0),
                           result("baseline", 31, 25.0, 7, None)])
    lines = text.splitlines()
    assert len(lines) == 4 and lines[0].startswith("| scenario | case | app |")
    assert lines[2].count("|") == lines[0].count("|") == lines[3].count("|")
    assert "no (within --recover)" in lines[3] and "s2 / others" in lines[2]


def test_ratios_put_the_baseline_beside_the_app():
    rows = chaos.ratios([result("app", 2, 0.5, 0, 10.0), result("baseline", 30, 25.0, 7, 40.0)],
                        "app", "baseline")
    assert rows == [["(d) s2 | others", "30 / 2 (15.0×)", "25 / 0.5 (50.0×)", "7 / 0",
                     "40 / 10 (4.0×)"]]


def test_samples_are_condensed_to_what_changed():
    samples = ["3 devices 3 joined | notes: all healthy",
               "3 devices 3 joined | notes: store down 0/1",
               "3 devices 3 joined | notes: store down 0/1",
               "3 devices 3 joined | notes: all healthy"]
    assert chaos_watch.condense(samples) == (
        "throughout: 3 devices 3 joined ‖ notes: all healthy → "
        "notes: store down 0/1 → notes: all healthy")
    assert chaos_watch.condense(["a | b"]) == "throughout: a; b"
    assert chaos_watch.condense([]) == "-"
    assert chaos_watch.condense(["x", "y"]) == "x → y"


def test_a_failed_status_says_its_error():
    error = ('{"ok": false, "exit_status": 3, "error": "cannot reach the portal at '
             '10.213.1.11:8443: connection refused", "hint": "is it up?"}')
    assert chaos_watch.status_answer(3, error, "") == \
        "exit 3: cannot reach the portal at 10.213.1.11:8443: connection refused"
    assert chaos_watch.status_answer(137, "{", "") == \
        "no answer: the CLI was killed (its server lost power)"
    assert chaos_watch.status_answer(1, "", "Traceback ...\nboom") == "exit 1: Traceback ..."
    assert chaos_watch.status_answer(0, '{"devices": {"total": 1, "by_state": {"joined": 1}}, '
                                  '"apps": {}}', "") == "1 devices 1 joined"
