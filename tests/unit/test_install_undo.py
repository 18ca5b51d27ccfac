"""Reset's order and its bookkeeping: the journal's undo notes, latest first, a failed
undo kept, an unknown kind skipped."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dragonball.errors import InstallerError
from dragonball.installer import plan
from dragonball.installer.journal import Journal
from dragonball.installer.steps import run_steps
from dragonball.installer.undo import UndoLog, undo_all, undoer


def test_reset_undoes_latest_step_first_and_each_steps_notes_in_reverse(tmp_path):
    undone = []
    undoer("test-order")(lambda host, entry: undone.append(entry["name"]))
    journal = Journal.load(str(tmp_path))
    journal.begin("d")

    def step(step_id, names):
        def action():
            log = UndoLog(journal, step_id)
            for name in names:
                log.note(name, {"kind": "test-order", "name": name})
            return log.entries()
        return plan.Step(step_id, step_id, action)

    run_steps([step("first", ["a1", "a2"]), step("second", ["b1"]),
               step("third", ["c1", "c2", "c3"])], journal)
    results = undo_all(Journal.load(str(tmp_path)), host=None)
    assert undone == ["c3", "c2", "c1", "b1", "a2", "a1"]
    assert [(r.step, r.key) for r in results][0] == ("third", "c3")
    assert Journal.load(str(tmp_path)).changes() == []


def test_a_failed_undo_stays_in_the_journal_and_the_rest_goes_on(tmp_path):
    def fragile(host, entry):
        if entry["name"] == "stuck":
            raise InstallerError("cannot undo stuck", "fix it")
    undoer("test-fragile")(fragile)
    journal = Journal.load(str(tmp_path))
    journal.begin("d")
    journal.start("s")
    for name in ("ok1", "stuck", "ok2"):
        journal.note("s", name, {"kind": "test-fragile", "name": name})
    journal.failed("s", "it broke")  # a failed step's notes are undone too
    results = undo_all(Journal.load(str(tmp_path)), host=None)
    assert [(r.key, r.status) for r in results] == [("ok2", "undone"), ("stuck", "failed"),
                                                    ("ok1", "undone")]
    assert list(Journal.load(str(tmp_path)).changes()[0][1]) == ["stuck"]


def test_an_entry_of_an_unknown_kind_is_skipped_and_said(tmp_path):
    journal = Journal.load(str(tmp_path))
    journal.begin("d")
    run_steps([plan.Step("old", "a step of another release", lambda: {"x": {"kind": "?"}})],
              journal)
    results = undo_all(journal, host=None)
    assert [(r.status, r.step) for r in results] == [("skipped", "old")]


def test_noting_a_kind_nobody_can_undo_is_a_bug_caught_at_once(tmp_path):
    journal = Journal.load(str(tmp_path))
    journal.begin("d")
    journal.start("s")
    with pytest.raises(ValueError, match="no undo handler"):
        UndoLog(journal, "s").note("k", {"kind": "nobody-knows"})


def test_reset_knows_every_kind_a_step_may_note():
    """Reset alone (a fresh process: nothing else imported) can undo every kind: importing
    installer/roles.py imports every step module, and with each its undo handlers."""
    found = subprocess.run(
        [sys.executable, "-c", "import dragonball.installer.reset, dragonball.installer.undo "
         "as u; print(' '.join(sorted(u.HANDLERS)))"],
        capture_output=True, text=True, check=True, timeout=60).stdout.split()
    assert found == sorted([
        "file", "sysctl", "selinux", "config_value", "ports", "authorized_key",  # apply
        "link", "portal_link",                                                   # apply
        "tree", "service", "dockerd", "systemd_reload",                          # engine
        "portal_swarm", "portal_file", "portal_tree", "portal_image", "portal_container",
        "portal_login", "portal_service", "portal_process",                      # portal
        "docker_login", "swarm_join", "join_note",                               # join
        "agent_service", "agent_secret", "agent_params", "agent_runtime_parent",  # agent
        "release_images",                                                        # images
        "release_record",                                                        # release
        "firewall_chain"])                                                       # firewall
