"""The portal's unit restarts on a new runtime by itself (issue 18): when the runtime's stamp
(/opt/dragonball/runtime/.sha256) changes under a running `portal serve` or `portal
standby`, because an upgrade or the node agent put a new runtime in place (the agent's
agent_runtime.py), the process ends as SIGTERM ends it (gracefully: uvicorn finishes its
requests) and systemd starts it again (the unit's Restart=always), on the new runtime.
Without systemd (no INVOCATION_ID) nobody would start it again: it only says so.

`changed(first, now)` is pure; `watch` polls every INTERVAL_S in a daemon thread.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from dragonball.shared import paths

STAMP = f"{paths.RUNTIME_PARENT}/runtime/.sha256"
INTERVAL_S = 5.0
log = logging.getLogger(__name__)


def read_stamp(path: str = STAMP) -> str:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError):
        return ""   # missing for a moment while a new tree is renamed in


def changed(first: str, now: str) -> bool:
    """A new runtime is in place: a stamp read now, and not the one this process began with
    (a stamp missing at start or now is no change: a tree being swapped)."""
    return bool(first) and bool(now) and now != first


def watch(path: str = STAMP, interval: float = INTERVAL_S, stop=None,
          end=lambda: os.kill(os.getpid(), signal.SIGTERM)) -> threading.Thread:
    """Start the watch; `end()` once the stamp changed (when systemd will start us again)."""
    first = read_stamp(path)
    stop = stop or threading.Event()
    supervised = bool(os.environ.get("INVOCATION_ID"))

    def run() -> None:
        while not stop.wait(interval):
            now = read_stamp(path)
            if not changed(first, now):
                continue
            if supervised:
                log.warning("a new runtime (%s) is in place: restarting on it", now[:12])
                end()
            else:
                log.warning("a new runtime (%s) is in place: restart the portal to run it",
                            now[:12])
            return

    thread = threading.Thread(target=run, name="runtime-watch", daemon=True)
    thread.start()
    return thread
