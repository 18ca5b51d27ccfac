"""What an event did: one result per script, as JSON (fixed shape) or for people.

The JSON shape is documented in docs/module-spec.md ("Reports"); `SCHEMA`
changes when it does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

SCHEMA = 1
TAIL_BYTES = 4096


@dataclass
class ScriptResult:
    """One script run. `exit_status` is -N when killed by signal N, None if it never ran."""

    name: str
    exit_status: int | None
    timed_out: bool = False
    duration_s: float = 0.0
    output: str = ""
    error: str | None = None  # why it could not run, when exit_status is None

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not self.timed_out

    def why(self) -> str:
        """Short reason for a failure, for people."""
        if self.error:
            return self.error
        if self.timed_out:
            return f"timed out after {self.duration_s:.1f} s (process group killed)"
        if self.exit_status is not None and self.exit_status < 0:
            return f"was killed by signal {-self.exit_status}"
        return f"exited with status {self.exit_status}"

    def to_dict(self) -> dict:
        return {"name": self.name, "exit_status": self.exit_status,
                "timed_out": self.timed_out, "duration_s": round(self.duration_s, 3),
                "output": self.output}


@dataclass
class EventReport:
    """The scripts of one event, in the order they ran; stops at the first failure."""

    module: str
    event: str
    started_at: float = field(default_factory=time.time)
    duration_s: float = 0.0
    scripts: list = field(default_factory=list)
    phase: str = "unknown"
    require_running: bool = False  # status: healthy only once start has finished
    folder: str = ""  # the action folder the scripts came from, when not `event` (notify)

    @property
    def failed(self) -> ScriptResult | None:
        return next((s for s in self.scripts if not s.ok), None)

    @property
    def ok(self) -> bool:
        if self.require_running and self.phase != "running":
            return False
        return self.failed is None

    def to_dict(self) -> dict:
        failed = self.failed
        return {
            "schema": SCHEMA, "module": self.module, "event": self.event, "ok": self.ok,
            "phase": self.phase, "started_at": _iso(self.started_at),
            "duration_s": round(self.duration_s, 3),
            "failed_script": failed.name if failed else None,
            "scripts": [s.to_dict() for s in self.scripts],
        }

    def summary(self) -> str:
        """One line for people and for the supervisor log."""
        where = f"{self.module} {self.event}"
        failed = self.failed
        if failed:
            folder = self.folder or self.event
            return f"{where} FAILED: action/{folder}/{failed.name} {failed.why()}"
        if not self.ok:
            return f"{where}: not healthy, the module is {self.phase} (start has not finished)"
        return f"{where} ok: {len(self.scripts)} script(s) in {self.duration_s:.2f} s"

    def render(self) -> str:
        """The report for people: the summary, then the failed script's output tail."""
        lines = [self.summary()]
        failed = self.failed
        if failed and failed.output.strip():
            lines.append(f"--- last output of {failed.name} ---")
            lines += [f"  {line}" for line in failed.output.rstrip("\n").splitlines()]
        return "\n".join(lines)


def _iso(ts: float) -> str:
    millis = int(ts * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{millis:03d}Z"
