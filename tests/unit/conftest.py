"""Fixtures shared by the unit tests: a clock moved by hand and the portal's real store
(SQLite under the test's tmp_path), empty or as `portal install` leaves it."""

from __future__ import annotations

import pytest

from dragonball.portal import credentials
from dragonball.portal.store import Store
from portal_web_fakes import ADMIN_PASSWORD, Clock, make_settings


@pytest.fixture(autouse=True)
def _cheap_scrypt(monkeypatch):
    """Unit tests hash passwords at scrypt's former cost (N=2**14, ~40 ms): today's
    (~0.4 s a try) would add minutes. test_portal_password checks today's cost itself."""
    monkeypatch.setattr(credentials, "SCRYPT_N", 2 ** 14)


@pytest.fixture
def clock() -> Clock:
    """Store time, 1_800_000_000.0 until a test moves it: ``clock.now += 60``."""
    return Clock()


@pytest.fixture
def store(tmp_path, clock):
    """An empty store at tmp_path/portal/portal.db on `clock`; closed after the test."""
    s = Store.open(str(tmp_path / "portal" / "portal.db"), clock=clock)
    yield s
    s.close()


@pytest.fixture
def portal_store(tmp_path, clock):
    """The store at make_settings(tmp_path).db_path on `clock`, with the admin
    (ADMIN_PASSWORD) and the portal itself (s1, 10.0.0.1) in it; closed after the test."""
    s = Store.open(make_settings(tmp_path).db_path, clock=clock)
    s.set_admin_password(ADMIN_PASSWORD)
    s.add_portal("s1", "10.0.0.1", "portalnode")
    yield s
    s.close()
