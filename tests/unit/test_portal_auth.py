"""The portal's authentication through TestClient: login, logout, session expiry, CSRF,
the login rate limit, API tokens and basic auth, and auth on every route."""

from __future__ import annotations

import base64

import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount

from dragonball.portal import auth
from dragonball.portal.web.login import safe_next
from portal_web_fakes import ADMIN_PASSWORD, csrf_of, login, make_client, make_settings
from test_portal_app import FakeCluster

#: Open without a login: the login page, health, the CA, a device's enroll and joined
#: (it has its own device token) and the static files the login page needs.
PUBLIC = {"/login", "/healthz", "/api/v1/ca", "/api/v1/enroll",
          "/api/v1/devices/{device_id}/joined", "/static"}


@pytest.fixture
def store(portal_store):
    """The store with the admin and s1 (tests/unit/conftest.py)."""
    return portal_store


@pytest.fixture
def client(store, tmp_path):
    return make_client(store, make_settings(tmp_path), FakeCluster())[0]


def _basic(password: str = ADMIN_PASSWORD) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()}


def test_a_page_sends_a_stranger_to_login_and_back(client):
    first = client.get("/events?before=9", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/login?next=%2Fevents%3Fbefore%3D9"
    logged = login(client, next="/events?before=9")
    assert logged.status_code == 303 and logged.headers["location"] == "/events?before=9"
    assert client.get("/events?before=9").status_code == 200


def test_the_session_cookie_is_httponly_secure_strict_and_only_its_hash_is_stored(client, store):
    cookie = login(client).headers["set-cookie"]
    assert cookie.startswith(auth.COOKIE + "=")
    for attribute in ("HttpOnly", "Secure", "SameSite=strict", "Path=/"):
        assert attribute in cookie
    secret = client.cookies[auth.COOKIE]
    assert len(base64.urlsafe_b64decode(secret + "=")) == 32  # 256 bits
    rows = store.read("SELECT * FROM sessions")
    assert len(rows) == 1 and secret not in str(dict(rows[0]))


def test_a_wrong_password_is_refused_with_the_form_again(client, store):
    answer = login(client, password="wrong")
    assert answer.status_code == 401 and "wrong user name or password" in answer.text
    assert auth.COOKIE not in client.cookies
    assert client.get("/", follow_redirects=False).status_code == 303
    assert [e["kind"] for e in store.events(1)] == ["login.refused"]


def test_failed_logins_are_rate_limited_across_form_and_basic(client):
    for _ in range(5):
        assert login(client, password="nope").status_code == 401
    for _ in range(5):
        assert client.get("/api/v1/devices", headers=_basic("nope")).status_code == 401
    limited = login(client)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert "too many failed logins" in limited.text
    assert client.get("/api/v1/devices", headers=_basic()).status_code == 429


def test_logout_ends_the_session_on_the_server(client, store):
    login(client)
    cookie = client.cookies[auth.COOKIE]
    token = csrf_of(client.get("/").text)
    out = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert store.session(cookie) is None
    client.cookies.set(auth.COOKIE, cookie)  # a copied cookie opens nothing any more
    assert client.get("/", follow_redirects=False).status_code == 303


def test_logout_needs_the_csrf_token(client):
    login(client)
    assert client.post("/logout", follow_redirects=False).status_code == 403
    assert client.get("/").status_code == 200


def test_a_session_ends_after_idle_time(client, clock):
    login(client)
    clock.now += auth.SESSION_IDLE_S - 60
    assert client.get("/").status_code == 200  # activity restarts the idle time
    clock.now += auth.SESSION_IDLE_S - 60
    assert client.get("/").status_code == 200
    clock.now += auth.SESSION_IDLE_S + 1
    gone = client.get("/devices", follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"].startswith("/login")


def test_a_session_ends_at_its_absolute_expiry_even_when_busy(client, clock):
    login(client)
    for _ in range(int(auth.SESSION_ABSOLUTE_S // 600) - 1):
        clock.now += 600
        assert client.get("/events").status_code == 200
    clock.now += 1200
    assert client.get("/events", follow_redirects=False).status_code == 303


def test_htmx_is_told_to_go_to_login(client):
    answer = client.get("/devices/table", headers={"HX-Request": "true"})
    assert answer.status_code == 401 and answer.headers["HX-Redirect"] == "/login?next=%2Fdevices%2Ftable"


def test_state_changes_need_the_csrf_token_by_form_or_header(client):
    login(client)
    token = csrf_of(client.get("/devices").text)
    assert client.post("/devices/enrollment", data={"ttl": "1h"}).status_code == 403
    assert client.post("/devices/enrollment", data={"ttl": "1h", "csrf_token": "x" * 43}
                       ).status_code == 403
    assert client.post("/devices/enrollment", data={"ttl": "1h"},
                       headers={"X-CSRF-Token": "nope"}).status_code == 403
    assert client.post("/devices/enrollment", data={"ttl": "1h", "csrf_token": token}
                       ).status_code == 200
    assert client.post("/devices/enrollment", data={"ttl": "1h"},
                       headers={"X-CSRF-Token": token, "HX-Request": "true"}).status_code == 200


def test_another_sessions_token_does_not_pass(client, store, tmp_path):
    login(client)
    _, other = store.create_session("admin", "session", 600, 3600)
    assert client.post("/devices/enrollment", data={"csrf_token": other.csrf_token}
                       ).status_code == 403


def test_a_cross_site_request_changes_nothing_even_with_the_token(client):
    login(client)
    token = csrf_of(client.get("/devices").text)
    answer = client.post("/devices/enrollment", data={"csrf_token": token},
                         headers={"Sec-Fetch-Site": "cross-site"})
    assert answer.status_code == 403
    assert login(client).status_code == 303
    cross = client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD},
                        headers={"Sec-Fetch-Site": "cross-site"}, follow_redirects=False)
    assert cross.status_code == 403


def test_basic_auth_may_not_post_a_form_a_browser_could_send(client):
    answer = client.post("/api/v1/tokens", headers={**_basic(), "Content-Type":
                                                    "application/x-www-form-urlencoded"})
    assert answer.status_code == 403 and "JSON" in answer.json()["error"]


def test_an_api_token_for_the_cli(client, store, clock):
    made = client.post("/api/v1/tokens", headers=_basic())
    assert made.status_code == 200
    token = made.json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/devices", headers=bearer).status_code == 200
    assert client.get("/", headers=bearer).status_code == 200
    clock.now += auth.TOKEN_S + 1
    expired = client.get("/api/v1/devices", headers=bearer)
    assert expired.status_code == 401 and "expired" in expired.json()["error"]


def test_an_api_token_can_be_ended_and_is_not_a_cookie(client):
    token = client.post("/api/v1/tokens", headers=_basic()).json()["token"]
    client.cookies.set(auth.COOKIE, token)  # a token is no browser session
    assert client.get("/", follow_redirects=False).status_code == 303
    client.cookies.clear()
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.delete("/api/v1/tokens/current", headers=bearer).json() == {"ended": True}
    assert client.get("/api/v1/devices", headers=bearer).status_code == 401


def test_a_session_cookie_is_no_bearer_token(client):
    login(client)
    secret = client.cookies[auth.COOKIE]
    client.cookies.clear()
    answer = client.get("/api/v1/devices", headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 401


def test_the_api_answers_json_401_to_a_stranger(client):
    answer = client.get("/api/v1/devices")
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"].startswith("Basic")
    assert "error" in answer.json()


def test_a_session_opens_the_api_too(client):
    login(client)
    assert client.get("/api/v1/devices").status_code == 200


def _routes(routes, prefix: str = ""):
    """(path, method) of every route, into included routers (FastAPI keeps them whole)."""
    for route in routes:
        if isinstance(route, APIRoute):
            for method in route.methods:
                yield prefix + route.path, method
        elif isinstance(route, Mount):
            yield prefix + route.path, "GET"
        elif hasattr(route, "original_router"):
            yield from _routes(route.original_router.routes,
                               prefix + route.include_context.prefix)
        else:
            raise AssertionError(f"a route of an unknown kind: {route!r}")


def test_every_route_but_the_public_ones_needs_auth(client):
    walked = list(_routes(client.app.routes))
    assert len(walked) > 12
    for path, method in walked:
        if path in PUBLIC:
            continue
        url = path.replace("{device_id}", "1")
        answer = client.request(method, url, follow_redirects=False)
        if path.startswith("/api/"):
            assert answer.status_code == 401, (method, path, answer.status_code)
        else:
            assert answer.status_code == 303, (method, path, answer.status_code)
            assert answer.headers["location"].startswith("/login")
    assert {p for p, _ in walked} >= PUBLIC


def test_every_answer_carries_the_security_headers(client):
    for path in ("/login", "/healthz", "/static/portal.css", "/api/v1/devices"):
        headers = client.get(path).headers
        assert "default-src 'none'" in headers["Content-Security-Policy"], path
        assert headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("target, expected", [
    ("/devices", "/devices"), ("/events?before=3", "/events?before=3"), ("", "/"),
    ("https://evil.example/", "/"), ("//evil.example/x", "/"), ("/\\evil.example", "/"),
    ("devices", "/")])
def test_login_goes_back_only_to_this_portal(target, expected):
    assert safe_next(target) == expected


def test_no_password_or_session_secret_reaches_logs_or_events(client, store, caplog):
    caplog.set_level("DEBUG")
    login(client, password="Wrong-Password-9")
    login(client)
    secret = client.cookies[auth.COOKIE]
    token = csrf_of(client.get("/").text)
    client.post("/logout", data={"csrf_token": token})
    text = caplog.text + str(store.events())
    for value in (ADMIN_PASSWORD, "Wrong-Password-9", secret, token):
        assert value not in text
    assert [e["kind"] for e in store.events(3)] == ["session.ended", "session.created",
                                                     "login.refused"]
