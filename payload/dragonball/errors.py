"""The one exception tree of DragonBall.

Every error a person can see derives from `DragonBallError` and carries what
failed, where, and what to do next. Foreign exceptions are translated at the
adapter that caught them (``raise ... from e``) and never leak further.
Standard library only: the supervisor inside module images imports this.
"""

from __future__ import annotations


class DragonBallError(Exception):
    """Root of every DragonBall error.

    `hint` says what to do next; `str()` gives message and hint together.
    """

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class ModuleError(DragonBallError):
    """A module folder does not follow the module spec (docs/module-spec.md)."""

    def __init__(self, module_dir: str, problems: list) -> None:
        self.module_dir = module_dir
        self.problems = list(problems)
        lines = [f"module {module_dir} has {len(self.problems)} problem(s):"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines), "fix each listed path, then run "
                         "'dragonball module check DIR' again")

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}"


class SupervisorError(DragonBallError):
    """The supervisor inside a module container cannot do what it was asked."""


class ParamsError(SupervisorError):
    """Parameters given to a module are not a valid JSON object."""


class BuildError(DragonBallError):
    """The build pipeline (build.py, builder/) failed."""


class InstallerError(DragonBallError):
    """Installing, preparing or resetting a server failed (dragonball.installer)."""


class PreflightError(InstallerError):
    """Preflight cannot run: its input (a manifest) is unreadable."""


class EngineError(DragonBallError):
    """The Docker engine refused or failed a request."""
