"""The wizard's errors. Each carries the exit status the installer should end with."""

from __future__ import annotations

from dragonball.errors import DragonBallError


class WizardError(DragonBallError):
    """The wizard could not produce answers; nothing was changed."""

    exit_status = 1


class AnswersInvalid(WizardError):
    """An answers file (or the answers given) has problems: all of them are listed."""

    exit_status = 2

    def __init__(self, source: str, problems: list, hint: str | None = None) -> None:
        self.source = source
        self.problems = list(problems)
        lines = [f"{source}: {len(self.problems)} problem(s), nothing was changed:"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines), hint or f"fix each one, then check the file "
                                                   f"with 'dragonball answers check {source}'")


class NoTerminal(WizardError):
    """The questions cannot be asked: no terminal, and no answers file to read instead."""

    exit_status = 2


class UsageError(WizardError):
    """The wizard's options contradict each other (--yes without --answers)."""

    exit_status = 2


class Declined(WizardError):
    """The person said no at the summary."""

    exit_status = 1


class Cancelled(WizardError):
    """Ctrl-C (or end of input) before the summary was confirmed."""

    exit_status = 130
