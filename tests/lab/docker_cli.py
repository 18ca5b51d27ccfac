"""The lab's door to the host: the docker client and iptables, as subprocesses.

The docker CLI rather than the SDK: a lab is the `docker run` line of
MACHINE.md, and a person reading a failure can paste the command shown.
Every failure becomes `LabError` with the command, its status and its output.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shlex
import subprocess
from collections.abc import Sequence

from .errors import LabError

log = logging.getLogger(__name__)

DOCKER = "/usr/bin/docker"  # Debian's client; /usr/local/bin may hold an older one
IPTABLES = "iptables"
DEFAULT_TIMEOUT_S = 120


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a command did: exit status and its outputs as text."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run(argv: Sequence[str], stdin: bytes | str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S, check: bool = True, hint: str = "") -> Outcome:
    """Run `argv`; with `check`, a non-zero status raises `LabError`."""
    log.debug("running %s", shlex.join(argv))
    data = stdin.encode() if isinstance(stdin, str) else stdin
    try:
        done = subprocess.run(argv, input=data, capture_output=True, timeout=timeout,
                              stdin=None if data is not None else subprocess.DEVNULL)
    except FileNotFoundError as e:
        raise LabError(f"{argv[0]} is not installed (needed for: {shlex.join(argv)})",
                       "run 'sudo bash scripts/setup.sh'") from e
    except subprocess.TimeoutExpired as e:
        raise LabError(f"{_short(argv)} did not finish within {timeout:.0f} s",
                       hint or "see what it waits for; raise the timeout if it is just slow") from e
    outcome = Outcome(done.returncode, done.stdout.decode(errors="replace"),
                      done.stderr.decode(errors="replace"))
    if check and not outcome.ok:
        raise failed(argv, outcome, hint)
    return outcome


def failed(argv: Sequence[str], outcome: Outcome, hint: str = "") -> LabError:
    """The `LabError` for a command that exited non-zero."""
    tail = (outcome.stderr.strip() or outcome.stdout.strip())[-1500:]
    body = "\n".join("  | " + line for line in tail.splitlines())
    return LabError(f"{_short(argv)} failed with exit status {outcome.returncode}:\n{body}",
                    hint or "read the output above")


def _short(argv: Sequence[str]) -> str:
    text = shlex.join(argv)
    return text if len(text) <= 300 else text[:300] + " ..."


class Docker:
    """The few docker client calls a lab makes."""

    def __init__(self, binary: str = DOCKER) -> None:
        self.binary = binary

    def __call__(self, *args: str, stdin: bytes | str | None = None,
                 timeout: float = DEFAULT_TIMEOUT_S, check: bool = True,
                 hint: str = "") -> Outcome:
        return run([self.binary, *args], stdin, timeout, check, hint)

    def argv(self, *args: str) -> list[str]:
        """The full command line, for callers that run it themselves (a pty, Popen)."""
        return [self.binary, *args]

    def inspect(self, kind: str, name: str) -> dict | None:
        """`docker <kind> inspect NAME` as a dict; None when there is no such object."""
        outcome = self(kind, "inspect", name, check=False)
        if not outcome.ok:
            if "no such" in outcome.stderr.lower():
                return None
            raise failed([self.binary, kind, "inspect", name], outcome)
        return json.loads(outcome.stdout)[0]

    def names(self, kind: str, label: str) -> list[str]:
        """Names of containers, networks or volumes carrying `label` (key=value)."""
        if kind == "container":
            args = ["ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}}"]
        else:
            args = [kind, "ls", "--filter", f"label={label}", "--format", "{{.Name}}"]
        return sorted(self(*args).stdout.split())

    def subnets(self) -> list[str]:
        """Every subnet of every docker network on this engine."""
        ids = self("network", "ls", "-q").stdout.split()
        if not ids:
            return []
        out = self("network", "inspect", "--format",
                   "{{range .IPAM.Config}}{{.Subnet}} {{end}}", *ids).stdout
        return out.split()


def iptables(*args: str, check: bool = True) -> Outcome:
    """`iptables -w ARGS` (waits for the xtables lock other programs hold)."""
    return run([IPTABLES, "-w", *args], check=check,
               hint="the lab changes the host firewall: run it as root")
