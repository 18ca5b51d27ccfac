"""The one exception tree (dragonball.errors): every error of the runtime and the builder has
a category with an exit status and an HTTP status, no two share a name, the root has the
layers and the categories as children and nothing else, and no module keeps exit statuses of
its own (README.md, "Exit statuses")."""

from __future__ import annotations

import ast
import importlib
import pathlib
import pkgutil

import pytest

import builder
import dragonball
from dragonball import errors
from dragonball.errors import (CATEGORY_OF_HTTP, EXIT_STATUS, HTTP_REFINEMENTS, HTTP_STATUS,
                               LAYERS, Category, DragonBallError, ExitStatus)

REPO = pathlib.Path(__file__).parents[2]
PAYLOAD = REPO / "payload" / "dragonball"
CATEGORY_CLASSES = (errors.Failed, errors.InvalidInput, errors.NotFound, errors.Conflict,
                    errors.Unavailable, errors.Denied, errors.Internal)


def _modules(package) -> list:
    """Every module of `package` but the entry points (importing one runs its command)."""
    names = [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
             if not m.name.endswith("__main__")]
    return [importlib.import_module(name) for name in names]


def _subclasses(cls) -> set:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _subclasses(sub)
    return found


@pytest.fixture(scope="module")
def every_error() -> list:
    """Every DragonBallError class of the runtime and the builder, all modules imported."""
    _modules(dragonball)
    _modules(builder)
    owned = [c for c in _subclasses(DragonBallError)
             if c.__module__.startswith(("dragonball.", "builder."))]
    return sorted(owned, key=lambda c: f"{c.__module__}.{c.__name__}")


def test_every_error_has_a_category_with_an_exit_and_an_http_status(every_error):
    assert len(every_error) > 50
    for cls in every_error:
        assert cls.category in EXIT_STATUS and cls.category in HTTP_STATUS, cls


def test_every_category_has_both_statuses_and_an_exit_status_of_the_enum():
    assert set(EXIT_STATUS) == set(HTTP_STATUS) == set(Category)
    assert all(isinstance(status, ExitStatus) for status in EXIT_STATUS.values())
    assert {EXIT_STATUS[c] for c in Category} == set(ExitStatus) - {ExitStatus.OK,
                                                                    ExitStatus.INTERRUPTED}
    assert set(CATEGORY_OF_HTTP.values()) <= set(Category)
    for category, status in HTTP_STATUS.items():  # the table read back gives the category
        assert CATEGORY_OF_HTTP.get(status, category) is category


def test_no_two_error_classes_share_a_name(every_error):
    names = [c.__name__ for c in every_error]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []


def test_the_root_has_the_layers_and_the_categories_as_children_and_nothing_else(every_error):
    children = {c.__name__ for c in DragonBallError.__subclasses__()}
    assert children == {
        # the categories
        "Failed", "InvalidInput", "NotFound", "Conflict", "Unavailable", "Denied", "Internal",
        # one class per layer
        "InstallerError", "PortalError", "AppError", "RegistryError", "ReleaseError",
        "WizardError", "SupervisorError", "BuildError", "PkiError", "ClientError"}
    assert {c.__name__ for c in LAYERS} <= children


def test_a_layer_has_no_category_and_an_error_exactly_one(every_error):
    """A layer class raised as it is is FAILED (the root's); a specific error takes its
    category from one category class, so two categories never compete in one class."""
    for layer in LAYERS:
        assert "category" not in vars(layer) and layer.category is Category.FAILED, layer
    for cls in every_error:
        if cls in LAYERS or cls in CATEGORY_CLASSES:
            continue
        categories = [c for c in cls.__mro__ if c in CATEGORY_CLASSES]
        layers = [c for c in cls.__mro__ if c in LAYERS]
        assert len(categories) == 1, (cls, categories)
        assert len(layers) == 1, (cls, layers)
        assert "category" not in vars(cls), cls


def test_an_http_refinement_stays_within_its_category(every_error):
    refined = {c.__name__: c.http_refinement for c in every_error if c.http_refinement}
    assert refined == {"BodyTooLarge": 413, "CodeRefused": 401, "NotAuthenticated": 401,
                       "RateLimited": 429}
    for cls in every_error:
        if cls.http_refinement:
            assert cls.http_refinement in HTTP_REFINEMENTS[cls.category], cls
            assert CATEGORY_OF_HTTP[cls.http_refinement] is cls.category


def test_the_categories_end_as_the_tables_say():
    problem = errors.Problem("is missing", "add it", "notes.app.yaml", 3, "services")
    invalid = errors.InvalidInput("1 problem", "fix it", [problem, "another"])
    assert (invalid.exit_status, invalid.http_status) == (2, 422)
    assert invalid.to_dict() == {"error": "1 problem", "hint": "fix it", "category": "invalid",
                                 "problems": [problem.to_dict(), "another"]}
    assert str(problem) == "notes.app.yaml:3: services: is missing\n    hint: add it"
    statuses = {cls.category: (cls("x").exit_status, cls("x").http_status)
                for cls in CATEGORY_CLASSES}
    assert statuses == {Category.FAILED: (1, 500), Category.INVALID: (2, 422),
                        Category.NOT_FOUND: (3, 404), Category.CONFLICT: (4, 409),
                        Category.UNAVAILABLE: (5, 503), Category.DENIED: (6, 403),
                        Category.INTERNAL: (70, 500)}
    assert errors.category_of(ValueError("a bug")) is Category.INTERNAL


# --- no exit statuses of a module's own ------------------------------------------------------

STATUS_NAMES = {"OK", "SUCCESS", "FAILED", "FAILURE", "ERROR", "INVALID", "USAGE", "UNREACHABLE",
                "INTERNAL", "BUG", "INTERRUPTED", "NOT_FOUND", "CONFLICT", "UNAVAILABLE",
                "DENIED", "ACTION_FAILED", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE"}
#: The one documented exception: run.sh's "the supervisor itself failed" is the module spec's
#: own status (docs/module-spec.md), apart from the runtime's range.
ALLOWED = {("supervisor/__main__.py", "SUPERVISOR_FAILED")}


def _status_constants(tree: ast.AST) -> list[str]:
    """Names bound to small ints that look like exit statuses; IntEnum classes."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(
                getattr(b, "attr", getattr(b, "id", "")) == "IntEnum" for b in node.bases):
            found.append(f"class {node.name}(IntEnum)")
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [n for t in targets for n in
                     ([t] if isinstance(t, ast.Name) else getattr(t, "elts", []))
                     if isinstance(n, ast.Name)]
            values = getattr(node.value, "elts", [node.value])
            ints = [v for v in values if isinstance(v, ast.Constant)
                    and type(v.value) is int and 0 <= v.value < 256]
            if ints and any(n.id in STATUS_NAMES or n.id.startswith("EXIT_")
                            or n.id.endswith(("_FAILED", "_STATUS")) for n in names):
                found += [n.id for n in names]
    return found


@pytest.mark.parametrize("root", [PAYLOAD, REPO / "builder"], ids=["payload", "builder"])
def test_no_module_keeps_exit_statuses_of_its_own(root):
    offenders = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if (root, relative) == (PAYLOAD, "errors.py"):
            continue  # ExitStatus itself
        for name in _status_constants(ast.parse(path.read_text(encoding="utf-8"))):
            if (relative, name) not in ALLOWED:
                offenders.append(f"{relative}: {name}")
    assert offenders == []


def test_the_scan_finds_what_it_looks_for():
    tree = ast.parse("OK, FAILED, INVALID = 0, 1, 2\nUSAGE = 2\n"
                     "class Status(enum.IntEnum):\n    OK = 0\nLIMIT = 10\n")
    assert _status_constants(tree) == ["OK", "FAILED", "INVALID", "USAGE",
                                       "class Status(IntEnum)", "OK"]


def test_no_error_class_carries_an_exit_status_of_its_own(every_error):
    for cls in every_error:
        assert "exit_status" not in vars(cls) and "http_status" not in vars(cls), cls
