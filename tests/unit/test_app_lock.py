"""One command changing an app at a time across processes (shared.app_lock): the portal's
jobs and the commands run on the portal take the same lock; the second is refused at once,
told who holds it; the kernel frees a dead holder's lock."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from dragonball.errors import ExitStatus
from dragonball.portal.jobs import Jobs
from dragonball.shared import app_lock
from dragonball.shared.app_lock import AppLocked


def test_a_second_holder_is_refused_and_told_who_holds_it(tmp_path):
    with app_lock.app_lock("notes", "apply by alice", str(tmp_path)):
        with pytest.raises(AppLocked) as refused:
            app_lock.acquire("notes", "move by bob", str(tmp_path))
        assert "app 'notes' is busy: apply by alice (pid " in refused.value.message
        assert refused.value.exit_status == ExitStatus.CONFLICT
        app_lock.acquire("blog", "another app", str(tmp_path)).release()
    app_lock.acquire("notes", "move by bob", str(tmp_path)).release()
    assert oct(os.stat(tmp_path / "notes.lock").st_mode & 0o777) == "0o600"


def test_a_killed_holder_leaves_no_lock_behind(tmp_path):
    code = ("import sys, os; from dragonball.shared import app_lock; "
            f"app_lock.acquire('notes', 'a doomed apply', {str(tmp_path)!r}); "
            "print('held', flush=True); os._exit(9)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert run.stdout.strip() == "held"
    app_lock.acquire("notes", "the next one", str(tmp_path)).release()


def test_a_bad_app_name_never_becomes_a_path(tmp_path):
    with pytest.raises(AppLocked, match="no such app name"):
        app_lock.acquire("../etc/passwd", "x", str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_a_portal_job_holds_the_lock_a_command_on_the_portal_needs(tmp_path):
    jobs, gate = Jobs(lock_dir=str(tmp_path)), threading.Event()
    job = jobs.start("apply", "notes", lambda job: gate.wait(10))
    with pytest.raises(AppLocked, match=f"the portal's job {job.id} \\(apply\\)"):
        app_lock.acquire("notes", "'dragonball move' on the portal", str(tmp_path))
    gate.set()
    jobs.wait(job.id)
    app_lock.acquire("notes", "'dragonball move' on the portal", str(tmp_path)).release()
    with app_lock.app_lock("notes", "'dragonball apply' on the portal", str(tmp_path)):
        with pytest.raises(AppLocked):
            jobs.start("move", "notes", lambda job: None)
    assert jobs.running("notes") is None


def test_a_command_waits_for_the_portal_s_upkeep_and_the_upkeep_never_waits(tmp_path):
    folder = str(tmp_path)
    upkeep = app_lock.acquire("notes", "the portal's address upkeep", folder, background=True)
    threading.Timer(0.5, upkeep.release).start()
    with app_lock.app_lock("notes", "'dragonball start' on the portal", folder):
        with pytest.raises(AppLocked, match="'dragonball start' on the portal \\(pid"):
            app_lock.acquire("notes", "the portal's address upkeep", folder, background=True)
    # a bounded wait: an upkeep that does not end in time is named, not waited for forever
    upkeep = app_lock.acquire("notes", "the portal's address upkeep", folder, background=True)
    with pytest.raises(AppLocked, match="busy: the portal's address upkeep \\(pid \\d+\\) is"):
        app_lock.acquire("notes", "'dragonball stop' on the portal", folder, wait_s=0.3)
    upkeep.release()
