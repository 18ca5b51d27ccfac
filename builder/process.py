"""Run host commands (debootstrap, tar), streaming their output line by line.

The only place the builder starts processes; failures become `BuildError`
with the command, its exit status and the tail of its output.
"""

from __future__ import annotations

import collections
import logging
import shlex
import subprocess
from collections.abc import Callable, Sequence

from dragonball.errors import BuildError

log = logging.getLogger(__name__)

TAIL_LINES = 15

LineSink = Callable[[str], None]


def run_streaming(argv: Sequence[str], on_line: LineSink, hint: str = "") -> None:
    """Run `argv`, passing each output line (stdout and stderr merged) to `on_line`."""
    log.debug("running %s", shlex.join(argv))
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    try:
        with subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, errors="replace") as proc:
            for line in proc.stdout:
                line = line.rstrip("\n")
                tail.append(line)
                on_line(line)
    except FileNotFoundError as e:
        raise BuildError(f"{argv[0]} is not installed (needed to run: {shlex.join(argv)})",
                         "run 'sudo bash scripts/setup.sh' to install the build tools") from e
    if proc.returncode != 0:
        raise _failed(argv, proc.returncode, "\n".join(tail), hint)


def run_capture(argv: Sequence[str], hint: str = "") -> str:
    """Run `argv` and return its standard output; a failure raises `BuildError`."""
    log.debug("running %s", shlex.join(argv))
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              errors="replace", check=False)
    except FileNotFoundError as e:
        raise BuildError(f"{argv[0]} is not installed (needed to run: {shlex.join(argv)})",
                         "run 'sudo bash scripts/setup.sh' to install the build tools") from e
    if done.returncode != 0:
        raise _failed(argv, done.returncode, (done.stdout + done.stderr)[-2000:], hint)
    return done.stdout


def _failed(argv: Sequence[str], status: int, tail: str, hint: str) -> BuildError:
    body = "\n".join("  | " + line for line in tail.strip().splitlines())
    return BuildError(f"{shlex.join(argv)} failed with exit status {status}; last output:\n{body}",
                      hint or "read the output above; rerun with --debug for details")
