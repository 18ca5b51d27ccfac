"""Cross-checks of an app spec's shared parameters (docs/app-spec.md, "Shared parameters"):
the top-level `shared:` declarations and the `{shared: NAME}` references that take them.

- each declaration's default is of its type (as a service's parameter: checks.check_default);
- a reference names a declared shared parameter (did you mean, or what there is);
- a reference that restates `type:` restates the declaration's: a module expecting an int
  must not be handed the string a shared declaration says;
- a declaration no service or job takes is no problem (a spec on its way to using it), but
  the plan says so (`unused_notes`: its notes, shown by plan and apply).

Like every check, each adds its problems to the document and none stops the others.
"""

from __future__ import annotations

from dragonball.app import checks
from dragonball.app.document import Document
from dragonball.app.model import AppSpec, SharedReference


def check_shared(doc: Document, shared: dict, members: dict) -> None:
    """Every check of the shared parameters; `shared`: name -> Parameter of the shape-valid
    declarations; `members`: (section, name) -> the shape-valid services and jobs."""
    declared = checks.section_names(doc, "shared")   # every name written, whatever its shape
    for name, param in sorted(shared.items()):
        checks.check_default(doc, ("shared", name), param)
    for (section, member), spec in sorted(members.items()):
        for key, entry in spec.parameters.items():
            if doc.full:
                return
            if isinstance(entry, SharedReference):
                check_reference(doc, (section, member, "parameters", key), entry, declared,
                                shared)


def check_reference(doc: Document, path: tuple, entry: SharedReference, declared: set,
                    shared: dict) -> None:
    """The shared parameter `entry` names is declared, and of the type it restates."""
    name = entry.shared
    if name not in declared:
        hint = checks.did_you_mean(name, declared) or (
            f"the shared parameters are: {', '.join(sorted(declared))}" if declared else
            f"declare it once at the top of the spec: shared: {{{name}: {{type: string, "
            "default: \"\"}}")
        doc.problem(path + ("shared",), f"unknown shared parameter {name!r}", hint)
        return
    found = shared.get(name)      # None: declared, but its own shape is broken (reported)
    if found is not None and entry.type is not None and entry.type != found.type:
        doc.problem(path + ("type",), f"{path[-1]} is taken as {entry.type}, but the shared "
                    f"parameter {name!r} (line {doc.line(('shared', name))}) is {found.type}",
                    "give the same type in both, or leave 'type:' out here: a shared "
                    "parameter's type is its declaration's")


def unused_notes(spec: AppSpec) -> tuple[str, ...]:
    """A note for each shared parameter no service or job takes (of a resolved spec)."""
    return tuple(f"shared parameter {name!r} is taken by no service or job: take it with "
                 f"parameters: {{KEY: {{shared: {name}}}}}, or remove it from shared:"
                 for name, takers in spec.takers().items() if not takers)
