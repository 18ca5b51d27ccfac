"""The supervisor as a real process (what run.sh runs), outside any container.

The `supervisor` fixture is imported by the test modules that use it.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

PAYLOAD = pathlib.Path(__file__).resolve().parents[2] / "payload"


@pytest.fixture
def supervisor(tmp_path):
    """supervisor(args, stdin=None, env=None) -> CompletedProcess; spawn(...) -> Popen."""
    base_env = dict(os.environ, PYTHONPATH=str(PAYLOAD),
                    DRAGONBALL_SERVICE_ROOT=str(tmp_path / "service"),
                    DRAGONBALL_RUN_DIR=str(tmp_path / "run"))

    class Supervisor:
        def env(self, extra):
            return {**base_env, **(extra or {})}

        def __call__(self, *args, stdin=None, env=None):
            return subprocess.run([sys.executable, "-m", "dragonball.supervisor", *args],
                                  input=stdin, env=self.env(env), capture_output=True,
                                  text=True, timeout=60)

        def spawn(self, env=None):
            return subprocess.Popen([sys.executable, "-m", "dragonball.supervisor", "start"],
                                    env=self.env(env), stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)

        def wait_phase(self, phase, timeout=10):
            deadline = time.monotonic() + timeout
            state = tmp_path / "run" / "state.json"
            while time.monotonic() < deadline:
                if state.exists() and json.loads(state.read_text())["phase"] == phase:
                    return
                time.sleep(0.05)
            raise AssertionError(f"supervisor never reached phase {phase}")

    return Supervisor()
