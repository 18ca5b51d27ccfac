"""Every test file's name is unique across the tiers: pytest imports them by their base name
(no packages), so a unit and an e2e file of one name break the whole run's collection (CI
found it once: four pairs landed together)."""

from __future__ import annotations

import collections
import pathlib

TESTS = pathlib.Path(__file__).parents[1]


def test_no_two_test_files_share_a_name():
    names = collections.Counter(p.name for p in TESTS.rglob("test_*.py")
                                if "__pycache__" not in p.parts)
    assert [n for n, count in names.items() if count > 1] == []
