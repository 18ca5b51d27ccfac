"""Markers by tier: a test's folder decides its marker, so `-m unit` etc. work."""

from __future__ import annotations

import pathlib

import pytest

TIERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = pathlib.Path(str(item.fspath)).parts
        for tier in TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))


EVENTS = ("config_change", "info", "start", "status", "stop")


def write_module(parent: pathlib.Path, name: str, scripts: dict | None = None,
                 manifest: str | None = None) -> pathlib.Path:
    """Create a module folder: `scripts` maps "event/file" to a sh body.

    Each body gets a ``#!/bin/sh`` line and mode 0755; every event folder exists.
    """
    root = parent / name
    for event in EVENTS:
        (root / "action" / event).mkdir(parents=True, exist_ok=True)
    for rel, body in (scripts or {}).items():
        path = root / "action" / rel
        path.write_text("#!/bin/sh\n" + body.strip("\n") + "\n")
        path.chmod(0o755)
    if manifest is not None:
        (root / "module.json").write_text(manifest)
    return root


@pytest.fixture
def make_module(tmp_path):
    """`make_module(name, scripts, manifest)` -> a module folder under a fresh service root."""
    service_root = tmp_path / "service"
    service_root.mkdir()
    return lambda name="demo", scripts=None, manifest=None: write_module(
        service_root, name, scripts, manifest)
