"""The install journal and step runner: resume after failure or kill, refuse other answers."""

from __future__ import annotations

import json
import os
import stat

import pytest

from dragonball.errors import DragonBallError
from dragonball.installer.journal import Journal, JournalError, answers_digest
from dragonball.installer.steps import Step, StepFailed, run_steps


def plan(calls: list, fail_at: str | None = None):
    def action(step_id):
        def run():
            calls.append(step_id)
            if step_id == fail_at:
                raise DragonBallError(f"{step_id} broke", "fix the disk")
            return {"touched": step_id}
        return run
    return [Step(s, f"step {s}", action(s)) for s in ("a", "b", "c")]


def test_a_failed_run_resumes_at_the_failed_step(tmp_path):
    calls = []
    journal = Journal.load(str(tmp_path))
    journal.begin(answers_digest({"role": "portal"}))
    with pytest.raises(StepFailed) as err:
        run_steps(plan(calls, fail_at="b"), journal)
    assert "run the same command again" in err.value.hint and "fix the disk" in err.value.hint
    again = Journal.load(str(tmp_path))
    again.begin(answers_digest({"role": "portal"}))
    outcomes = run_steps(plan(calls), again)
    assert calls == ["a", "b", "b", "c"]
    assert [o.status for o in outcomes] == ["skipped", "done", "done"]
    assert [k for k, _ in Journal.load(str(tmp_path)).changes()] == ["c", "b", "a"]


def test_a_step_interrupted_by_a_kill_runs_again(tmp_path):
    journal = Journal.load(str(tmp_path))
    journal.begin("x")
    journal.start("a")  # the process dies here
    again = Journal.load(str(tmp_path))
    assert again.interrupted() == ["a"] and not again.is_done("a")


def test_other_answers_are_refused_until_reset_half_way_or_finished(tmp_path):
    journal = Journal.load(str(tmp_path))
    journal.begin("first")
    journal.start("a")
    with pytest.raises(JournalError, match="half-way"):
        Journal.load(str(tmp_path)).begin("second")
    finished = Journal.load(str(tmp_path))
    finished.begin("first")
    finished.done("a", {"file": "/etc/x"})
    finished.finish()
    with pytest.raises(JournalError, match="is installed with other answers") as err:
        Journal.load(str(tmp_path)).begin("second")
    assert "reset" in err.value.hint
    assert Journal.load(str(tmp_path)).changes() == [("a", {"file": "/etc/x"})]


def test_the_journal_is_private_and_holds_no_answers(tmp_path):
    journal = Journal.load(str(tmp_path))
    journal.begin(answers_digest({"admin_password": "hunter2"}))
    mode = stat.S_IMODE(os.stat(journal.path).st_mode)
    assert mode == 0o600
    assert "hunter2" not in open(journal.path).read()


def test_a_corrupt_journal_says_how_to_start_over(tmp_path):
    (tmp_path / "install-journal.json").write_text("{")
    with pytest.raises(JournalError, match="move it away"):
        Journal.load(str(tmp_path))
    (tmp_path / "install-journal.json").write_text(json.dumps({"format": 99}))
    with pytest.raises(JournalError, match="format"):
        Journal.load(str(tmp_path))
