"""What goes into module images runs on the base image's bare python3: stdlib only."""

from __future__ import annotations

import ast
import pathlib
import sys

PAYLOAD = pathlib.Path(__file__).resolve().parents[2] / "payload" / "dragonball"
IN_IMAGES = [PAYLOAD / "__init__.py", PAYLOAD / "errors.py",
             *sorted((PAYLOAD / "module").glob("*.py")),
             *sorted((PAYLOAD / "supervisor").glob("*.py"))]
ALLOWED_OWN = ("dragonball.errors", "dragonball.module", "dragonball.supervisor")


def imported_modules(path: pathlib.Path) -> set:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module)
    return names


def test_image_code_imports_only_the_standard_library_and_itself():
    assert len(IN_IMAGES) > 8
    offenders = {}
    for path in IN_IMAGES:
        bad = {name for name in imported_modules(path)
               if name.split(".")[0] not in sys.stdlib_module_names
               and not name.startswith(ALLOWED_OWN) and name != "__future__"}
        if bad:
            offenders[str(path.relative_to(PAYLOAD))] = sorted(bad)
    assert offenders == {}
