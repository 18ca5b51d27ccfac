"""What the person running build.py sees: one rich console, steps with progress.

On a terminal a long step shows a spinner with its latest output line. Without
one (CI), the latest line is printed at most every few seconds, so a log shows
progress without debootstrap's 500 lines; milestones (Dockerfile steps,
warnings) are always printed, and ``--debug`` logs every line.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.markup import escape
from rich.status import Status

log = logging.getLogger(__name__)

_WIDTH = 100
HEARTBEAT_S = 5.0
# The classic builder colours a step's stderr with ANSI sequences; rich would
# print them as literal junk ("[91m").
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class Step:
    """A running step; `line` feeds it one output line of the work it watches."""

    def __init__(self, console: Console, title: str, status: Status | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._console = console
        self._title = title
        self._status = status
        self._clock = clock
        self._last_print = clock()

    def line(self, text: str, keep: bool = False) -> None:
        """Show one output line; `keep` prints it even when it would only be a spinner text."""
        text = _ANSI.sub("", text).rstrip()
        if not text:
            return
        log.debug("%s: %s", self._title, text)
        if self._status is not None:
            self._status.update(f"{escape(self._title)}  [dim]{escape(text[:_WIDTH])}[/]")
        if keep or (self._status is None and self._due()):
            self._console.print(f"    {escape(text)}", style="dim", highlight=False,
                                soft_wrap=True)

    def _due(self) -> bool:
        now = self._clock()
        if now - self._last_print < HEARTBEAT_S:
            return False
        self._last_print = now
        return True


class Reporter:
    """Prints steps, notes and results on one console."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[Step]:
        """Run a step: a spinner while it lasts, then a tick with its duration."""
        started = time.monotonic()
        if self.console.is_terminal:
            with self.console.status(escape(title)) as status:
                yield Step(self.console, title, status)
        else:
            self.console.print(f"… {escape(title)}", soft_wrap=True)
            yield Step(self.console, title, None)
        self.console.print(f"[green]✓[/] {escape(title)} "
                           f"[dim]({time.monotonic() - started:.1f} s)[/]", soft_wrap=True)

    def note(self, text: str) -> None:
        """A line of information between steps."""
        self.console.print(f"  {escape(text)}", soft_wrap=True)

    def error(self, text: str) -> None:
        """An error for a person: what failed, and the hint."""
        self.console.print(f"[bold red]error:[/] {escape(text)}", soft_wrap=True)
