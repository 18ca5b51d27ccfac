"""Errors of the application layer (docs/app-spec.md), under the one root `DragonBallError`."""

from __future__ import annotations

from dragonball.errors import DragonBallError


class AppSpecInvalid(DragonBallError):
    """An app spec breaks its schema or its cross-checks: every problem is listed."""

    def __init__(self, file: str, problems: list) -> None:
        self.file = file
        self.problems = list(problems)
        lines = [f"app spec {file} has {len(self.problems)} problem(s):"]
        lines += [f"  {p}" for p in self.problems]
        super().__init__("\n".join(lines), "fix each listed line, then run "
                         "'dragonball plan SPEC' again")


class CycleError(DragonBallError):
    """The dependency graph has a cycle; `path` is it, first name repeated at the end."""

    def __init__(self, path: list) -> None:
        self.path = list(path)
        super().__init__(f"dependency cycle: {' -> '.join(self.path)}",
                         "remove one of these dependencies")


class UnknownService(DragonBallError):
    """A command names a service the app spec does not have."""

    def __init__(self, name: str, known) -> None:
        super().__init__(f"the app spec has no service {name!r}",
                         f"name one of: {', '.join(sorted(known))}")


class ObservedInvalid(DragonBallError):
    """An observed-state file (`plan --observed`) cannot be read."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "see docs/app-spec.md, 'The observed state'")
