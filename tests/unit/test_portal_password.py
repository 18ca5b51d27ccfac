"""The admin's password and tokens after install: scrypt at today's cost (older hashes
still verify and are made again at the next right login), a token that cannot make
tokens, logout everywhere, a password change that ends every other login, all in the
audit log with the client's address."""

from __future__ import annotations

import base64

import pytest

from dragonball.portal import credentials
from portal_web_fakes import ADMIN_PASSWORD, csrf_of, login, make_client, make_settings
from test_portal_app import FakeCluster

NEW_PASSWORD = "Another-Long-Passphrase-7"


@pytest.fixture
def store(portal_store):
    return portal_store


@pytest.fixture
def client(store, tmp_path):
    return make_client(store, make_settings(tmp_path), FakeCluster())[0]


def basic(password: str = ADMIN_PASSWORD) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def new_token(client) -> str:
    answer = client.post("/api/v1/tokens", json={}, headers=basic())
    assert answer.status_code == 200, answer.text
    return answer.json()["token"]


def stored_hash(store) -> str:
    return store.read("SELECT password_hash FROM admins WHERE username = 'admin'")[0][0]


def events(store, kind: str) -> list[dict]:
    return [e for e in store.events(200) if e["kind"] == kind]


def test_scrypt_is_at_owasp_guidance(monkeypatch):
    monkeypatch.setattr(credentials, "SCRYPT_N", 2 ** 17)  # undo the unit tests' cheap cost
    hashed = credentials.hash_password("pw")
    assert hashed.startswith("scrypt$131072$8$1$") and credentials.verify_password("pw", hashed)
    assert not credentials.needs_rehash(hashed)
    monkeypatch.setattr(credentials, "SCRYPT_N", 2 ** 14)
    legacy = credentials.hash_password("pw")
    monkeypatch.setattr(credentials, "SCRYPT_N", 2 ** 17)
    assert credentials.verify_password("pw", legacy) and credentials.needs_rehash(legacy)


def test_a_hash_that_asks_for_too_much_memory_is_refused_not_run():
    greedy = "scrypt$1048576$8$1$" + base64.b64encode(b"s" * 16).decode() + "$" + \
        base64.b64encode(b"k" * 32).decode()
    assert credentials.verify_password("pw", greedy) is False


def test_a_right_login_makes_an_older_hash_again(client, store, monkeypatch):
    old = stored_hash(store)
    assert old.startswith("scrypt$16384$")
    monkeypatch.setattr(credentials, "SCRYPT_N", 2 ** 15)  # "today's" cost, raised
    assert client.get("/api/v1/devices", headers=basic("wrong")).status_code == 401
    assert stored_hash(store) == old
    assert client.get("/api/v1/devices", headers=basic()).status_code == 200
    assert stored_hash(store).startswith("scrypt$32768$8$1$")
    assert len(events(store, "admin.password_rehashed")) == 1
    assert client.get("/api/v1/devices", headers=basic()).status_code == 200  # not again
    assert len(events(store, "admin.password_rehashed")) == 1


def test_a_token_cannot_make_tokens(client, store):
    token = new_token(client)
    answer = client.post("/api/v1/tokens", json={}, headers=bearer(token))
    assert answer.status_code == 403 and "cannot make tokens" in answer.json()["error"]
    assert len(events(store, "token.created")) == 1


def test_a_browser_session_can_make_a_token(client):
    assert login(client).status_code == 303
    csrf = csrf_of(client.get("/").text)
    answer = client.post("/api/v1/tokens", json={}, headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 200 and answer.json()["token"]


def test_logout_everywhere_ends_every_token_and_session(client, store):
    first, second = new_token(client), new_token(client)
    assert login(client).status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 200
    answer = client.delete("/api/v1/tokens", headers=bearer(first))
    assert answer.status_code == 200 and answer.json() == {"ended": 3}
    for token in (first, second):
        assert client.get("/api/v1/devices", headers=bearer(token)).status_code == 401
    assert client.get("/", follow_redirects=False).status_code == 303  # to /login
    [ended] = events(store, "sessions.ended_all")
    assert ended["actor"] == "admin" and ended["client"] == "testclient"


def test_a_password_change_ends_every_other_login(client, store):
    mine, other = new_token(client), new_token(client)
    assert login(client).status_code == 303
    answer = client.post("/api/v1/password", headers=bearer(mine),
                         json={"current": ADMIN_PASSWORD, "new": NEW_PASSWORD})
    assert answer.status_code == 200 and answer.json() == {"changed": True, "ended": 2}
    assert client.get("/api/v1/devices", headers=bearer(mine)).status_code == 200
    assert client.get("/api/v1/devices", headers=bearer(other)).status_code == 401
    assert client.get("/", follow_redirects=False).status_code == 303
    assert client.get("/api/v1/devices", headers=basic()).status_code == 401
    assert client.get("/api/v1/devices", headers=basic(NEW_PASSWORD)).status_code == 200
    [changed] = events(store, "admin.password_changed")
    assert (changed["actor"], changed["client"]) == ("admin", "testclient")
    assert changed["detail"] == {"sessions_ended": 2}
    assert NEW_PASSWORD not in str(store.events(200)) and ADMIN_PASSWORD not in str(
        store.events(200))


def test_a_password_change_with_basic_auth_ends_every_login(client):
    token = new_token(client)
    answer = client.post("/api/v1/password", headers=basic(),
                         json={"current": ADMIN_PASSWORD, "new": NEW_PASSWORD})
    assert answer.json() == {"changed": True, "ended": 1}
    assert client.get("/api/v1/devices", headers=bearer(token)).status_code == 401


def test_a_wrong_current_password_is_refused_and_counted(client, store):
    token = new_token(client)
    answer = client.post("/api/v1/password", headers=bearer(token),
                         json={"current": "not it", "new": NEW_PASSWORD})
    assert answer.status_code == 403 and "current password is wrong" in answer.json()["error"]
    assert len(events(store, "login.refused")) == 1
    assert client.get("/api/v1/devices", headers=basic()).status_code == 200


@pytest.mark.parametrize("new, problem", [("short-1", "too short"),
                                          ("alllowercaseletters", "one kind"),
                                          (ADMIN_PASSWORD, "the same")])
def test_a_weak_new_password_is_refused(client, store, new, problem):
    token = new_token(client)
    answer = client.post("/api/v1/password", headers=bearer(token),
                         json={"current": ADMIN_PASSWORD, "new": new})
    assert answer.status_code == 422 and problem in answer.json()["error"]
    assert not events(store, "admin.password_changed")


def test_a_password_change_from_a_browser_needs_its_csrf_token(client):
    assert login(client).status_code == 303
    body = {"current": ADMIN_PASSWORD, "new": NEW_PASSWORD}
    assert client.post("/api/v1/password", json=body).status_code == 403
    csrf = csrf_of(client.get("/").text)
    answer = client.post("/api/v1/password", json=body, headers={"X-CSRF-Token": csrf})
    assert answer.json() == {"changed": True, "ended": 0}
    assert client.get("/", follow_redirects=False).status_code == 200  # this session stays
