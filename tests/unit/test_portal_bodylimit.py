"""Request bodies are bounded before authentication or parsing (portal.bodylimit): a body
over its route's limit is 413 JSON whether it says its length or streams without one, the
credentials it carries are never checked, and the rest of it is never read."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from dragonball.portal import bodylimit
from portal_web_fakes import ADMIN_PASSWORD, make_client, make_settings
from test_portal_app import FakeCluster

BASIC = {"Authorization": "Basic " + base64.b64encode(
    f"admin:{ADMIN_PASSWORD}".encode()).decode()}


@pytest.fixture
def store(portal_store):
    return portal_store


@pytest.fixture
def client(store, tmp_path):
    return make_client(store, make_settings(tmp_path), FakeCluster())[0]


def checks_of(monkeypatch, store) -> list:
    calls, real = [], store.check_admin
    monkeypatch.setattr(store, "check_admin", lambda *a: calls.append(a) or real(*a))
    return calls


def _refused(answer, limit=bodylimit.DEFAULT_LIMIT) -> None:
    assert answer.status_code == 413, answer.text
    body = answer.json()
    assert body["category"] == "invalid" and f"{limit // 1024} KiB" in body["error"]
    assert answer.headers["strict-transport-security"] == "max-age=31536000"


def test_a_large_declared_body_is_refused_before_authentication(client, store, monkeypatch):
    checks = checks_of(monkeypatch, store)
    big = b"x" * (bodylimit.DEFAULT_LIMIT + 1)
    _refused(client.post("/api/v1/codes", content=big, headers=BASIC | {
        "Content-Type": "application/json"}))
    _refused(client.post("/api/v1/enroll", content=big, headers={
        "Content-Type": "application/json"}))
    _refused(client.post("/login", content=big, headers={
        "Content-Type": "application/x-www-form-urlencoded"}))
    assert checks == [] and not [e for e in store.events(100) if "refused" in e["kind"]]


def test_a_streamed_body_without_a_length_is_counted(client, store, monkeypatch):
    checks = checks_of(monkeypatch, store)

    def chunks():
        for _ in range(20):
            yield b"y" * (128 * 1024)
    answer = client.post("/api/v1/codes", content=chunks(), headers=BASIC | {
        "Content-Type": "application/json"})
    _refused(answer)
    assert checks == []


def test_a_body_under_the_limit_goes_through(client):
    answer = client.post("/api/v1/codes", json={"ttl": "1h", "pad": "z" * 500_000},
                         headers=BASIC)
    assert answer.status_code == 200, answer.text


def test_the_spec_routes_take_a_larger_body(client):
    spec = "name: notes\n" + "# a long comment\n" * 100_000   # 1.7 MB in JSON
    for path in ("/api/v1/plan", "/api/v1/apply"):
        answer = client.post(path, json={"spec": spec, "file": "a.yaml"}, headers=BASIC)
        assert answer.status_code != 413, (path, answer.text)
    big = json.dumps({"spec": "x" * bodylimit.SPEC_LIMIT})
    _refused(client.post("/api/v1/plan", content=big, headers=BASIC | {
        "Content-Type": "application/json"}), bodylimit.SPEC_LIMIT)


@pytest.mark.parametrize("path, limit", [
    ("/api/v1/plan", bodylimit.SPEC_LIMIT), ("/api/v1/apply", bodylimit.SPEC_LIMIT),
    ("/placement/notes/apply", bodylimit.SPEC_LIMIT), ("/api/v1/apply/x", 1 << 20),
    ("/api/v1/enroll", 1 << 20), ("/placement/notes/plan", 1 << 20)])
def test_limit_of(path, limit):
    assert bodylimit.limit_of(path) == limit


def test_the_middleware_stops_reading_at_the_limit():
    """A client streaming without end: the middleware reads one chunk past the limit."""
    received, sent, called = [], [], []

    async def receive():
        received.append(1)
        return {"type": "http.request", "body": b"z" * 1000, "more_body": True}

    async def send(message):
        sent.append(message)

    async def app(scope, receive, send):
        called.append(scope)
    middleware = bodylimit.BodyLimit(app, limit=lambda path: 10_000)
    scope = {"type": "http", "path": "/api/v1/x", "method": "POST", "headers": []}
    asyncio.run(middleware(scope, receive, send))
    assert len(received) == 11 and called == []
    assert sent[0]["status"] == 413 and (b"connection", b"close") in sent[0]["headers"]


def test_the_body_is_replayed_to_the_app_whole():
    parts = [b"ab", b"cd", b""]
    got = []

    async def receive():
        return {"type": "http.request", "body": parts.pop(0), "more_body": bool(parts)}

    async def app(scope, receive, send):
        got.append(await receive())
    asyncio.run(bodylimit.BodyLimit(app)({"type": "http", "path": "/", "headers": []},
                                         receive, None))
    assert got == [{"type": "http.request", "body": b"abcd", "more_body": False}]


def test_every_answer_says_https_only(client):
    for answer in (client.get("/healthz"), client.get("/login"),
                   client.get("/api/v1/devices"), client.get("/", follow_redirects=False)):
        assert answer.headers["strict-transport-security"] == "max-age=31536000"


@pytest.mark.parametrize("body", ["[" * 200_000 + "]" * 200_000,
                                  '{"a":' * 50_000 + "1" + "}" * 50_000,
                                  '{"code": "' + "\udcff" * 0 + '\x00"}', "{", "\xff"])
def test_json_nested_past_any_depth_or_broken_is_a_400_not_a_crash(client, body):
    """Within the size limit, as deep as a parser can be pushed: answered 400 at once by
    every JSON route an anonymous client can reach, never a 500."""
    for path in ("/api/v1/enroll", "/api/v1/devices/1/joined"):
        answer = client.post(path, content=body.encode("utf-8", "surrogateescape"),
                             headers={"Content-Type": "application/json",
                                      "Authorization": "Bearer x"})
        assert answer.status_code in (400, 401, 422), (path, answer.status_code, answer.text)
