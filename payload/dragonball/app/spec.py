"""Reading an app spec: YAML with lines, then its shape, then the cross-checks.

Every problem is collected before anything is refused (docs/app-spec.md).
"""

from __future__ import annotations

from dragonball.app import checks, document, job_checks, schema, shared_checks
from dragonball.app.errors import AppSpecInvalid
from dragonball.app.model import MAX_SERVICES, AppSpec, Observed
from dragonball.shared import safe_yaml


def check(text: str | bytes, file: str,
          observed: Observed = Observed()) -> tuple[AppSpec | None, list]:
    """(spec, []) or (None, every problem), sorted by line. The spec is resolved: each
    shared parameter a service or job takes is the declaration it names (AppSpec.resolved)."""
    doc = document.read(text, file)
    if doc.problems and doc.data is None:
        return None, doc.problems
    if _too_many_services(doc):
        return None, doc.problems
    spec, services, jobs = schema.check_shape(doc)
    if isinstance(doc.data, dict):
        services, jobs = (dict(spec.services), dict(spec.jobs)) if spec else (services, jobs)
        checks.check_all(doc, services, observed, jobs)
        job_checks.check_jobs(doc, jobs, observed)
        shared_checks.check_shared(doc, schema.shared_declarations(doc, spec), {
            **{("services", n): s for n, s in services.items()},
            **{("jobs", n): j for n, j in jobs.items()}})
    problems = sorted(doc.problems, key=lambda p: (p.line or 0, p.path))
    if doc.full:
        problems.append(document.Problem(file, None, "", f"checking stopped after "
                                         f"{document.MAX_PROBLEMS} problems",
                                         "fix these, then check the spec again"))
    return (spec.resolved(), []) if spec and not problems else (None, problems)


def _too_many_services(doc: document.Document) -> bool:
    """More services than MAX_SERVICES is the one problem: checking each would take long."""
    services = doc.data.get("services") if isinstance(doc.data, dict) else None
    if isinstance(services, dict) and len(services) > MAX_SERVICES:
        doc.problem(("services",), f"{len(services)} services: an app has at most "
                    f"{MAX_SERVICES} (docs/app-spec.md, 'Limits')",
                    "split the app in several, or remove the services it does not need")
        return True
    return False


def load(text: str | bytes, file: str, observed: Observed = Observed()) -> AppSpec:
    """The valid spec, or AppSpecInvalid listing every problem."""
    spec, problems = check(text, file, observed)
    if problems:
        raise AppSpecInvalid(file, problems)
    return spec


def check_file(path: str, observed: Observed = Observed()) -> tuple[AppSpec | None, list]:
    """`check` of the file at `path`; an unreadable file is the one problem. A file over
    the size limit is refused having read little more than the limit."""
    data, problems = safe_yaml.read_file(path, document.SPEC_LIMITS)
    if data is None:
        return None, _problems(path, problems, "give the path of an app spec (YAML)")
    return check(data, path, observed)


def read_text(path: str) -> str:
    """The text of the spec file at `path` (to send to the portal); AppSpecInvalid when it
    cannot be read, is over the size limit or is not UTF-8."""
    data, problems = safe_yaml.read_file(path, document.SPEC_LIMITS)
    text, bad = safe_yaml.text_of(data, document.SPEC_LIMITS) if data is not None else (None, [])
    if text is None:
        raise AppSpecInvalid(path, _problems(path, problems + bad,
                                             "give the path of an app spec (YAML)"))
    return text


def _problems(path: str, found: list, hint: str) -> list:
    return [document.Problem(path, p.line, "", p.message, p.hint or hint) for p in found]


def load_file(path: str, observed: Observed = Observed()) -> AppSpec:
    """The valid spec at `path`, or AppSpecInvalid listing every problem."""
    spec, problems = check_file(path, observed)
    if problems:
        raise AppSpecInvalid(path, problems)
    return spec
