"""The failure limit (api.Limiter over the store's events) under concurrent attempts: a
limit of 10 lets exactly 10 concurrent guesses be checked, the others get 429; a success
gives its place back. Through FastAPI's TestClient, with the real (slow, scrypt) check."""

from __future__ import annotations

import base64
import concurrent.futures
import threading
import time

import pytest

from dragonball.portal import api
from dragonball.shared import codes
from portal_web_fakes import ADMIN_PASSWORD, login, make_client, make_settings
from test_portal_app import FakeCluster

GUESSES = 20


@pytest.fixture
def store(portal_store):
    """The store with the admin and s1 (tests/unit/conftest.py)."""
    return portal_store


@pytest.fixture
def client(store, tmp_path):
    return make_client(store, make_settings(tmp_path), FakeCluster())[0]


def _basic(password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()}


def counted(monkeypatch, store, name: str, pause_s: float = 0.0) -> list:
    """Count the calls of store.`name` (each waits `pause_s` more, to widen the race)."""
    calls, real = [], getattr(store, name)

    def wrapper(*args, **kwargs):
        calls.append(args)
        time.sleep(pause_s)
        return real(*args, **kwargs)
    monkeypatch.setattr(store, name, wrapper)
    return calls


def all_at_once(call, n: int = GUESSES) -> list[int]:
    """`call()` from `n` threads released together; their HTTP statuses, sorted."""
    start = threading.Barrier(n)

    def one(_):
        start.wait()
        return call().status_code
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        return sorted(pool.map(one, range(n)))


def test_concurrent_wrong_passwords_get_exactly_the_limit_checked(client, store, monkeypatch):
    checks = counted(monkeypatch, store, "check_admin")
    statuses = all_at_once(lambda: client.get("/api/v1/devices", headers=_basic("nope")))
    assert statuses == [401] * api.FAILURE_LIMIT + [429] * (GUESSES - api.FAILURE_LIMIT)
    assert len(checks) == api.FAILURE_LIMIT
    refused = [e for e in store.events(100) if e["kind"] == api.LOGIN_REFUSED]
    assert len(refused) == api.FAILURE_LIMIT
    assert {e["detail"]["reason"] for e in refused} == {"wrong user name or password"}


def test_concurrent_wrong_codes_get_exactly_the_limit_checked(client, store, monkeypatch):
    checks = counted(monkeypatch, store, "enroll", pause_s=0.05)
    statuses = all_at_once(lambda: client.post("/api/v1/enroll", json={
        "code": codes.new_code(), "hostname": "node-2", "address": "10.0.0.2"}))
    assert statuses == [401] * api.FAILURE_LIMIT + [429] * (GUESSES - api.FAILURE_LIMIT)
    assert len(checks) == api.FAILURE_LIMIT


def test_a_right_password_gives_its_place_back(client, store):
    for _ in range(api.FAILURE_LIMIT - 1):
        assert client.get("/api/v1/devices", headers=_basic("nope")).status_code == 401
    for _ in range(3):  # each holds the last place while it is checked, then gives it back
        assert client.get("/api/v1/devices", headers=_basic(ADMIN_PASSWORD)).status_code == 200
    assert login(client, password="nope").status_code == 401   # the 10th failure
    assert client.get("/api/v1/devices", headers=_basic(ADMIN_PASSWORD)).status_code == 429
    kinds = [e["kind"] for e in store.events(100)]
    assert kinds.count(api.LOGIN_REFUSED) == api.FAILURE_LIMIT


def test_a_check_that_breaks_gives_its_place_back(store):
    limiter = api.Limiter(store, api.LOGIN_REFUSED, limit=1)
    with pytest.raises(RuntimeError), limiter.attempt("10.0.0.9") as slot:
        assert slot is not None
        raise RuntimeError("the check broke")
    with limiter.attempt("10.0.0.9") as slot:
        slot.failed("wrong")
    with limiter.attempt("10.0.0.9") as slot:
        assert slot is None and limiter.retry_after("10.0.0.9") == api.FAILURE_WINDOW_S + 1
