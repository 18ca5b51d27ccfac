"""Reading an app spec: YAML with lines, then its shape, then the cross-checks.

Every problem is collected before anything is refused (docs/app-spec.md).
"""

from __future__ import annotations

from dragonball.app import checks, document, schema
from dragonball.app.errors import AppSpecInvalid
from dragonball.app.model import AppSpec, Observed


def check(text: str, file: str, observed: Observed = Observed()) -> tuple[AppSpec | None, list]:
    """(spec, []) or (None, every problem), sorted by line."""
    doc = document.read(text, file)
    if doc.problems and doc.data is None:
        return None, doc.problems
    spec, services = schema.check_shape(doc)
    if isinstance(doc.data, dict):
        checks.check_all(doc, dict(spec.services) if spec else services, observed)
    problems = sorted(doc.problems, key=lambda p: (p.line or 0, p.path))
    return (spec, []) if spec and not problems else (None, problems)


def load(text: str, file: str, observed: Observed = Observed()) -> AppSpec:
    """The valid spec, or AppSpecInvalid listing every problem."""
    spec, problems = check(text, file, observed)
    if problems:
        raise AppSpecInvalid(file, problems)
    return spec


def check_file(path: str, observed: Observed = Observed()) -> tuple[AppSpec | None, list]:
    """`check` of the file at `path`; an unreadable file is the one problem."""
    try:
        text = read_text(path)
    except AppSpecInvalid as e:
        return None, e.problems
    return check(text, path, observed)


def read_text(path: str) -> str:
    """The text of the spec file at `path`; AppSpecInvalid (its one problem) when it cannot
    be read."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise AppSpecInvalid(path, [document.Problem(
            path, None, "", f"cannot read it: {e}", "give the path of an app spec (YAML)")]) from e


def load_file(path: str, observed: Observed = Observed()) -> AppSpec:
    """The valid spec at `path`, or AppSpecInvalid listing every problem."""
    spec, problems = check_file(path, observed)
    if problems:
        raise AppSpecInvalid(path, problems)
    return spec
