"""One container at a time on a module's storage (supervisor.storage_lock): a second holder
waits, saying so, and starts once the first has gone, however it went; a stop while waiting
gives up at once."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time

from dragonball.supervisor import storage_lock

HOLD = ("import os, sys, time, threading; from dragonball.supervisor import storage_lock; "
        "fd = storage_lock.hold(sys.argv[1], threading.Event()); print('held', flush=True); "
        "time.sleep(float(sys.argv[2]))")


def holder(storage, seconds: float) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(storage), str(seconds)],
                             stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert child.stdout.readline().strip() == "held"
    return child


def test_the_second_container_waits_for_the_first_to_end(tmp_path, caplog):
    first = holder(tmp_path, 60)
    got, stop = [], threading.Event()
    waiter = threading.Thread(target=lambda: got.append(storage_lock.hold(str(tmp_path), stop)))
    with caplog.at_level(logging.INFO):
        waiter.start()
        time.sleep(1.0)
        assert got == []                       # still waiting
        first.kill()                           # however the first ends: -9 here
        first.wait()
        waiter.join(timeout=10)
    assert got and got[0] is not None
    os.close(got[0])
    text = caplog.text
    assert "in use by another container of this slot (container" in text
    assert "storage/ is free: starting" in text
    assert oct(os.stat(tmp_path / storage_lock.LOCK_NAME).st_mode & 0o777) == "0o600"


def test_a_stop_while_waiting_gives_up_at_once(tmp_path):
    first = holder(tmp_path, 60)
    stop = threading.Event()
    stop.set()
    began = time.monotonic()
    assert storage_lock.hold(str(tmp_path), stop) is None
    assert time.monotonic() - began < 2
    first.kill()
    first.wait()


def test_a_free_storage_is_taken_at_once(tmp_path):
    fd = storage_lock.hold(str(tmp_path), threading.Event())
    assert fd is not None
    assert "pid" in (tmp_path / storage_lock.LOCK_NAME).read_text()
    os.close(fd)
