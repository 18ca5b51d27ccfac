"""Where a module lives in its container, and the supervisor's phase.

Paths come from the environment with the image's defaults, so the supervisor
also runs outside a container (tests, a module developer's laptop).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

from dragonball.errors import SupervisorInputInvalid
from dragonball.module import Module

SERVICE_ROOT = "/opt/dragon_ball/service"
RUN_DIR = "/run/dragonball"
PHASES = ("starting", "running", "stopping", "stopped", "failed")


@dataclass(frozen=True)
class Runtime:
    """The supervisor's view of its container: module folder and runtime folder."""

    service_root: str
    run_dir: str
    module_name: str | None
    environ: dict

    @classmethod
    def from_environ(cls, environ: dict) -> "Runtime":
        return cls(environ.get("DRAGONBALL_SERVICE_ROOT", SERVICE_ROOT),
                   environ.get("DRAGONBALL_RUN_DIR", RUN_DIR),
                   environ.get("DRAGONBALL_MODULE") or None, dict(environ))

    def module_dir(self) -> str:
        """The folder of this container's module; SupervisorInputInvalid when ambiguous."""
        if self.module_name:
            return os.path.join(self.service_root, self.module_name)
        try:
            names = sorted(n for n in os.listdir(self.service_root) if not n.startswith("."))
        except FileNotFoundError:
            names = []
        if len(names) == 1:
            return os.path.join(self.service_root, names[0])
        if not names:
            raise SupervisorInputInvalid(f"no module under {self.service_root}",
                                         "add one in the image: ADD my_module "
                                         f"{self.service_root}/my_module")
        raise SupervisorInputInvalid(f"several modules under {self.service_root}: "
                                     f"{', '.join(names)}",
                                     "set DRAGONBALL_MODULE to the one this container runs")

    def script_env(self, module: Module, params_file: str, params_env: dict) -> dict:
        """The environment every script of `module` runs with."""
        env = {k: v for k, v in self.environ.items() if not k.startswith("PARAM_")}
        env.update(params_env)
        env.update(DRAGONBALL_MODULE=module.name, DRAGONBALL_MODULE_DIR=module.root,
                   DRAGONBALL_LOG_DIR=module.path("log"),
                   DRAGONBALL_STORAGE_DIR=module.path("storage"),
                   DRAGONBALL_PARAMS_FILE=params_file)
        return env

    # -- phase ---------------------------------------------------------------
    @property
    def state_path(self) -> str:
        return os.path.join(self.run_dir, "state.json")

    def set_phase(self, phase: str) -> None:
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)
        tmp = self.state_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"phase": phase, "pid": os.getpid(), "since": time.time()}, f)
        os.replace(tmp, self.state_path)

    def _state(self) -> dict:
        try:
            with open(self.state_path, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def phase(self) -> str:
        phase = self._state().get("phase")
        return phase if phase in PHASES else "unknown"

    def supervisor_output(self):
        """The supervisor's standard output (the container log), opened for appending.

        Events run through `docker exec` write there so their output lands in
        `docker logs` too; None when no supervisor runs (then nobody reads it).
        """
        pid = self._state().get("pid")
        if not isinstance(pid, int) or self.phase() in ("stopped", "unknown"):
            return None
        try:
            return open(f"/proc/{pid}/fd/1", "ab", buffering=0)
        except OSError:
            return None
