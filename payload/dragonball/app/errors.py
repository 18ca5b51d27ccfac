"""Errors of the application layer (docs/app-spec.md): `AppError` and one category each."""

from __future__ import annotations

from dragonball.errors import AppError, InvalidInput, NotFound, Unavailable

__all__ = ["AddressImageMissing", "AppError", "AppNotApplied", "AppSpecInvalid",
           "AppUnspecified", "CycleError", "ObservedInvalid", "SlotsUnplaced",
           "UnknownService", "no_such_app", "the_only_app"]


class AppSpecInvalid(AppError, InvalidInput):
    """An app spec breaks its schema or its cross-checks: every problem is listed."""

    def __init__(self, file: str, problems: list) -> None:
        self.file = file
        problems = list(problems)
        lines = [f"app spec {file} has {len(problems)} problem(s):"]
        lines += [f"  {p}" for p in problems]
        super().__init__("\n".join(lines), "fix each listed line, then run "
                         "'dragonball plan SPEC' again", problems)


class CycleError(AppError, InvalidInput):
    """The dependency graph has a cycle; `path` is it, first name repeated at the end."""

    def __init__(self, path: list) -> None:
        self.path = list(path)
        message = f"dependency cycle: {' -> '.join(self.path)}"
        super().__init__(message, "remove one of these dependencies", [message])


class UnknownService(AppError, NotFound):
    """A command names a service the app spec does not have."""

    def __init__(self, name: str, known) -> None:
        super().__init__(f"the app spec has no service {name!r}",
                         f"name one of: {', '.join(sorted(known))}")


class SlotsUnplaced(AppError, Unavailable):
    """Slots of a service with storage that no ready server can take (app.slots.place)."""

    def __init__(self, problems) -> None:
        problems = list(problems)
        super().__init__("no server can take " + "; ".join(problems),
                         "bring a server that fits the placement up (or join one), or lower "
                         "the service's replicas; nothing was changed")
        self.problems = problems


class AddressImageMissing(AppError, Unavailable):
    """A Service has a moving address, and the portal registry lacks the keepalived image."""

    def __init__(self, image: str) -> None:
        super().__init__(f"the portal registry has no {image}: a Service's address needs it",
                         "this cluster was installed from an older .bin: upgrade it with this "
                         "release's .bin, or remove the address from the spec")


class AppNotApplied(AppError, NotFound):
    """A command names an app the portal has no spec of (or none is applied yet)."""


class AppUnspecified(AppError, InvalidInput):
    """A command that needs an app does not say which, and the portal has several."""


class ObservedInvalid(AppError, InvalidInput):
    """An observed-state file (`plan --observed`) cannot be read."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "see docs/app-spec.md, 'The observed state'")


def no_such_app(app: str, apps: list, hint: str) -> AppNotApplied:
    """The error for an app the portal has no spec of, naming those it has (a typo shows
    itself; the local and the remote commands say the same)."""
    return AppNotApplied(f"the portal has no app {app!r} (applied: "
                         f"{', '.join(apps) or 'none yet'})", hint)


def the_only_app(apps: list) -> str:
    """The one app applied: AppNotApplied when there is none, AppUnspecified when several
    (the local and the remote commands say the same)."""
    if len(apps) == 1:
        return apps[0]
    if not apps:
        raise AppNotApplied("no app is applied yet", "apply one first")
    raise AppUnspecified(f"several apps are applied ({', '.join(apps)})",
                         "say which: --app NAME")
