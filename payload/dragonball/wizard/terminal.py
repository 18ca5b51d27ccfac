"""Where the wizard reads and writes, injected (httpie's Environment is the model).

Tests pass a prompt_toolkit pipe input and a DummyOutput, and a StringIO for what
rich prints; the installer passes nothing and gets the process's own streams.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from typing import Any, TextIO

from rich.console import Console


def _is_tty(stream) -> bool:
    """Whether `stream` is an open terminal: None (fd closed at start) and closed are not."""
    try:
        return stream is not None and not stream.closed and stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


@dataclasses.dataclass
class Io:
    """The wizard's streams, its test for a terminal, and its environment."""

    stdin: TextIO | None = dataclasses.field(default_factory=lambda: sys.stdin)
    stdout: TextIO = dataclasses.field(default_factory=lambda: sys.stdout)
    stderr: TextIO = dataclasses.field(default_factory=lambda: sys.stderr)
    #: Whether questions can be asked; default: stdin and stdout are both terminals.
    isatty: Callable[[], bool] | None = None
    #: prompt_toolkit's input and output; None: the terminal on stdin and stdout.
    prompt_input: Any = None
    prompt_output: Any = None
    environ: dict = dataclasses.field(default_factory=lambda: dict(os.environ))

    def is_terminal(self) -> bool:
        if self.isatty is not None:
            return self.isatty()
        return _is_tty(self.stdin) and _is_tty(self.stdout)

    def not_terminal_reason(self) -> str:
        """Which stream is not a terminal, said for a person."""
        if self.stdin is None or getattr(self.stdin, "closed", False):
            return "standard input is closed"
        if not _is_tty(self.stdin):
            return "standard input is not a terminal"
        if not _is_tty(self.stdout):
            return "standard output is not a terminal"
        return "there is no terminal"

    def console(self) -> Console:
        return Console(file=self.stdout, highlight=False)

    def prompt_kwargs(self) -> dict:
        """What questionary passes on to prompt_toolkit: the injected input and output."""
        kwargs = {}
        if self.prompt_input is not None:
            kwargs["input"] = self.prompt_input
        if self.prompt_output is not None:
            kwargs["output"] = self.prompt_output
        return kwargs

    def install_command(self) -> str:
        """How the person started the installer, for hints: the .bin when run from it."""
        binary = self.environ.get("DRAGONBALL_BIN")
        return f"{binary} install" if binary else "dragonball install"
