"""The wizard's errors. Each takes its exit status from its category (dragonball.errors)."""

from __future__ import annotations

from dragonball.errors import Failed, InvalidInput, WizardError

__all__ = ["AnswersInvalid", "Cancelled", "Declined", "NoTerminal", "UsageError",
           "WizardError"]


class AnswersInvalid(WizardError, InvalidInput):
    """An answers file (or the answers given) has problems: all of them are listed."""

    def __init__(self, source: str, problems: list, hint: str | None = None) -> None:
        self.source = source
        problems = list(problems)
        lines = [f"{source}: {len(problems)} problem(s), nothing was changed:"]
        lines += [f"  - {p}" for p in problems]
        super().__init__("\n".join(lines), hint or f"fix each one, then check the file "
                                                   f"with 'dragonball answers check {source}'",
                         problems)


class NoTerminal(WizardError, InvalidInput):
    """The questions cannot be asked: no terminal, and no answers file to read instead."""


class UsageError(WizardError, InvalidInput):
    """The wizard's options contradict each other (--yes without --answers)."""


class Declined(WizardError, Failed):
    """The person said no at the summary: the install did not happen (exit 1, as a refused
    confirmation of `reset` does; 130 is kept for Ctrl-C)."""


class Cancelled(KeyboardInterrupt):
    """Ctrl-C (or end of input) before the summary was confirmed: an interruption like any
    Ctrl-C (exit 130), with a message saying nothing was changed."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message, self.hint = message, hint

    def __str__(self) -> str:
        return self.message
