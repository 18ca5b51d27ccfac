"""What the browser tests share (tests/integration/test_portal_browser.py,
tests/e2e/test_app_browser.py): Debian's Chromium driven by Playwright, skipped with the
reason when it is missing, and the screenshots they write into docs/screenshots/ (only
when missing, or with DRAGONBALL_SCREENSHOTS=1, so a run leaves the tree clean)."""

from __future__ import annotations

import os

import pytest

from support import ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking"]
SCREENSHOTS = ROOT / "docs" / "screenshots"
NEEDS_CHROMIUM = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"{CHROMIUM} is missing: 'apt-get install chromium' (scripts/setup.sh installs it)")


def shot(tab, name: str) -> None:
    """A full-page screenshot, written only when missing or DRAGONBALL_SCREENSHOTS=1."""
    path = SCREENSHOTS / f"{name}.png"
    if path.exists() and os.environ.get("DRAGONBALL_SCREENSHOTS") != "1":
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(path), full_page=True)
