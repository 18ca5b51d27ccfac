"""The one exception tree of DragonBall, its categories and their exit and HTTP statuses.

Every error a person can see derives from `DragonBallError` and carries what failed, where,
and what to do next. Each error has a `Category`; the category alone decides the exit status
of a command (`EXIT_STATUS`) and the HTTP status of an API answer (`HTTP_STATUS`), so the same
failure ends the same way locally, remotely and in the portal's API.

Layers subclass the root once (`InstallerError`, `PortalError`, ...) and a specific error
takes its category from one of the category classes below (`class CodeRefused(PortalError,
Denied)`): a layer class carries no category of its own (raised as it is, it is FAILED), and a
specific error inherits exactly one category class. Foreign exceptions are translated at the
adapter that caught them (``raise ... from e``) and never leak further; one that does is
INTERNAL (exit 70, and the `dragonball` command says to run it again with --debug).

Being interrupted is not a category: Ctrl-C (KeyboardInterrupt, and the wizard's `Cancelled`,
which is one) ends a command with 130. The exit statuses, the .bin stub's own range and the
HTTP statuses are documented once, in README.md ("Exit statuses").

Standard library only: the supervisor inside module images imports this.
"""

from __future__ import annotations

import dataclasses
import enum


class Category(enum.Enum):
    """What kind of failure an error is; what a person (or a script) should do differs."""

    FAILED = "failed"            # the operation ran and did not succeed (a step, a rollout)
    INVALID = "invalid"          # bad input (command line, file, spec, request); nothing changed
    NOT_FOUND = "not_found"      # a named thing does not exist
    CONFLICT = "conflict"        # the current state forbids it (busy, taken, already done)
    UNAVAILABLE = "unavailable"  # a part that should answer does not (portal, engine, agent)
    DENIED = "denied"            # authentication or authorization refused
    INTERNAL = "internal"        # a defect of DragonBall itself


class ExitStatus(enum.IntEnum):
    """Exit statuses of the runtime (`dragonball`, and the commands the .bin runs).

    The .bin's own stub uses 80-89 (see scripts/stub.sh), which the runtime never uses.
    """

    OK = 0
    FAILED = 1
    INVALID = 2
    NOT_FOUND = 3
    CONFLICT = 4
    UNAVAILABLE = 5
    DENIED = 6
    INTERNAL = 70      # sysexits' EX_SOFTWARE
    INTERRUPTED = 130  # Ctrl-C (or end of input at a prompt): 128 + SIGINT, as shells do


#: The one table from category to exit status.
EXIT_STATUS = {category: ExitStatus[category.name] for category in Category}

#: The one table from category to HTTP status.
HTTP_STATUS = {
    Category.FAILED: 500,
    Category.INVALID: 422,
    Category.NOT_FOUND: 404,
    Category.CONFLICT: 409,
    Category.UNAVAILABLE: 503,
    Category.DENIED: 403,
    Category.INTERNAL: 500,
}

#: Where HTTP has a narrower word than a category's status, an error class may answer with it
#: (its `http_refinement`): 401 asks for credentials (with WWW-Authenticate), 429 says "too many
#: attempts, wait" (with Retry-After). Both stay DENIED: a command still exits 6. 413 says "a
#: body too large", refused before it was read; it stays INVALID (exit 2).
HTTP_REFINEMENTS = {Category.DENIED: frozenset({401, 429}), Category.INVALID: frozenset({413})}

#: And back: the category of an HTTP error status (a remote call's answer). A 500 is FAILED
#: or INTERNAL: the answer's own "category" says which (PortalClient).
CATEGORY_OF_HTTP = {400: Category.INVALID, 401: Category.DENIED, 403: Category.DENIED,
                    404: Category.NOT_FOUND, 405: Category.INVALID, 409: Category.CONFLICT,
                    413: Category.INVALID, 422: Category.INVALID, 429: Category.DENIED,
                    502: Category.UNAVAILABLE, 503: Category.UNAVAILABLE,
                    504: Category.UNAVAILABLE}


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where (file, line, path), what, and how to fix it.

    `path` is the place inside the input: a spec's `services.api.replicas`, an answers
    file's field, a module's `action/start/1.sh`.
    """

    message: str
    hint: str = ""
    file: str = ""
    line: int | None = None
    path: str = ""

    def where(self) -> str:
        place = f"{self.file}:{self.line}" if self.file and self.line else (
            self.file or (f"line {self.line}" if self.line else ""))
        return ": ".join(part for part in (place, self.path) if part)

    def to_dict(self) -> dict:
        return {"file": self.file or None, "line": self.line, "path": self.path,
                "message": self.message, "hint": self.hint}

    def __str__(self) -> str:
        where = self.where()
        text = f"{where}: {self.message}" if where else self.message
        return f"{text}\n    hint: {self.hint}" if self.hint else text


class DragonBallError(Exception):
    """Root of every DragonBall error.

    `hint` says what to do next; `str()` gives message and hint together. The category is
    the class's own (`category`), FAILED unless a category class below says otherwise.
    """

    category = Category.FAILED
    #: A status of HTTP_REFINEMENTS[category] this class answers with instead of the table's.
    http_refinement: int | None = None

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    @property
    def exit_status(self) -> ExitStatus:
        return EXIT_STATUS[self.category]

    @property
    def http_status(self) -> int:
        return self.http_refinement or HTTP_STATUS[self.category]

    def to_dict(self) -> dict:
        """The JSON body of an error answer (the API, `--json`)."""
        return {"error": self.message, "hint": self.hint, "category": self.category.value}

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


# --- the categories: a specific error subclasses its layer's class and one of these ---------

class Failed(DragonBallError):
    """The operation ran and did not succeed."""

    category = Category.FAILED


class InvalidInput(DragonBallError):
    """Bad input; nothing was changed. `problems` lists every problem found, at once."""

    category = Category.INVALID

    def __init__(self, message: str, hint: str = "", problems=()) -> None:
        super().__init__(message, hint)
        self.problems = list(problems)

    def to_dict(self) -> dict:
        return super().to_dict() | {"problems": [_problem_dict(p) for p in self.problems]}


def _problem_dict(problem):
    """A problem as JSON: a Problem's dict, a dict as it came (a remote answer's), else text."""
    if hasattr(problem, "to_dict"):
        return problem.to_dict()
    return problem if isinstance(problem, dict) else str(problem)


class NotFound(DragonBallError):
    """A named thing does not exist."""

    category = Category.NOT_FOUND


class Conflict(DragonBallError):
    """The current state forbids the operation (busy, taken, already done)."""

    category = Category.CONFLICT


class Unavailable(DragonBallError):
    """A part that should answer does not; trying again later may work."""

    category = Category.UNAVAILABLE


class Denied(DragonBallError):
    """Authentication or authorization refused."""

    category = Category.DENIED


class Internal(DragonBallError):
    """A defect of DragonBall itself."""

    category = Category.INTERNAL


def category_of(error: BaseException) -> Category:
    """The category of any exception: a foreign one that leaked is INTERNAL."""
    if isinstance(error, DragonBallError):
        return error.category
    return Category.INTERNAL


# --- the layers: one class per layer, each a direct child of the root, none with a category -

class InstallerError(DragonBallError):
    """Installing, preparing or resetting a server failed (dragonball.installer)."""


class PortalError(DragonBallError):
    """The portal service cannot do what was asked: its store, settings, Swarm, jobs, pages,
    authentication (dragonball.portal)."""


class AppError(DragonBallError):
    """The application layer: an app spec, its plan, its rollout on the cluster
    (dragonball.app, dragonball.orchestrator)."""


class RegistryError(DragonBallError):
    """A registry refused a request, or could not be reached or trusted (dragonball.registry)."""


class ReleaseError(DragonBallError):
    """The release this runtime came from: the .bin, its sections, its signature
    (dragonball.release)."""


class WizardError(DragonBallError):
    """The wizard could not produce answers; nothing was changed (dragonball.wizard)."""


class SupervisorError(DragonBallError):
    """Inside a module container: the module spec, the supervisor, a module's parameters."""


class BuildError(DragonBallError):
    """The build pipeline (build.py, builder/) failed."""


class PkiError(DragonBallError):
    """A certificate, key or credential cannot be made or written (dragonball.pki)."""


class ClientError(DragonBallError):
    """A call to another part of the cluster (the portal's API, an agent) failed: `status` is
    the HTTP status of its answer (None when there was none), `body` its JSON, `problems` what
    it listed as wrong."""

    def __init__(self, message: str, hint: str = "", status: int | None = None,
                 body: dict | None = None, problems: list | None = None) -> None:
        super().__init__(message, hint)
        self.status, self.body = status, body
        self.problems = list(problems or [])

    def to_dict(self) -> dict:
        found = super().to_dict()
        if self.problems:
            found["problems"] = [_problem_dict(p) for p in self.problems]
        return found


#: The layers, in the order of the list above.
LAYERS = (InstallerError, PortalError, AppError, RegistryError, ReleaseError, WizardError,
          SupervisorError, BuildError, PkiError, ClientError)


# --- specific errors every layer's neighbours share (the supervisor reads this module alone) --

class ModuleError(SupervisorError, InvalidInput):
    """A module folder does not follow the module spec (docs/module-spec.md)."""

    def __init__(self, module_dir: str, problems: list) -> None:
        self.module_dir = module_dir
        lines = [f"module {module_dir} has {len(problems)} problem(s):"]
        lines += [f"  - {p}" for p in problems]
        super().__init__("\n".join(lines), "fix each listed path, then run "
                         "'dragonball module check DIR' again", problems)


class ParamsError(SupervisorError, InvalidInput):
    """Parameters given to a module are not a valid JSON object."""


class SupervisorInputInvalid(SupervisorError, InvalidInput):
    """What run.sh was given cannot be used: a file to read, a notification, the container's
    module folder (none, or several)."""


class PreflightError(InstallerError, InvalidInput):
    """Preflight cannot run: its input (the command line, a manifest) is wrong."""
