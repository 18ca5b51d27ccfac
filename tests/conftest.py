"""Markers by tier (a test's folder decides its marker) and the module-folder fixture."""

from __future__ import annotations

import pathlib

import pytest

from support import write_module

TIERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = pathlib.Path(str(item.fspath)).parts
        for tier in TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture
def make_module(tmp_path):
    """`make_module(name, scripts, manifest)` -> a module folder under a fresh service root."""
    service_root = tmp_path / "service"
    service_root.mkdir()
    return lambda name="demo", scripts=None, manifest=None: write_module(
        service_root, name, scripts, manifest)
