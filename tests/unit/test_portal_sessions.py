"""The store's sessions and API tokens: only a hash of the secret, idle and absolute expiry."""

from __future__ import annotations

from dragonball.portal.credentials import token_hash
from dragonball.portal.store import Store


def test_only_the_hash_of_the_secret_is_kept(store):
    secret, session = store.create_session("admin", "session", 600, 3600, "10.0.0.9")
    (row,) = store.read("SELECT * FROM sessions")
    assert row["id_hash"] == token_hash(secret) and secret not in str(dict(row))
    assert store.session(secret) == session
    assert store.session(secret + "x") is None and store.session("") is None


def test_idle_time_restarts_with_use_and_the_absolute_expiry_holds(store, clock):
    secret, _ = store.create_session("admin", "session", 600, 10_000)
    clock.now += 599
    assert store.session(secret) is not None  # seen again: 600 s more
    clock.now += 599
    assert store.session(secret) is not None
    clock.now += 600
    assert store.session(secret) is None  # idle
    other, _ = store.create_session("admin", "session", 600, 1000)
    for _ in range(3):
        clock.now += 300
        assert store.session(other) is not None
    clock.now += 101
    assert store.session(other) is None  # 1001 s old


def test_seen_is_written_at_most_every_30_s(store, clock):
    secret, _ = store.create_session("admin", "session", 600, 3600)
    clock.now += 10
    assert store.session(secret).seen == clock.now - 10
    clock.now += Store.SEEN_EVERY_S
    assert store.session(secret).seen == clock.now


def test_ending_a_session_and_expired_ones_are_swept(store, clock):
    secret, _ = store.create_session("admin", "session", 600, 3600)
    assert store.end_session(secret, "10.0.0.9") is True
    assert store.end_session(secret) is False and store.session(secret) is None
    store.create_session("admin", "session", 60, 60)
    clock.now += 61
    store.create_session("admin", "token", 60, 60)
    assert len(store.read("SELECT * FROM sessions")) == 1
    assert [e["kind"] for e in store.events(4)] == ["token.created", "session.created",
                                                     "session.ended", "session.created"]


def test_events_before_pages_newest_first(store):
    for n in range(5):
        store.record("test", "tester", None, {"n": n})
    first = store.events_before(None, 2)
    assert [e["detail"]["n"] for e in first] == [4, 3]
    assert [e["detail"]["n"] for e in store.events_before(first[-1]["id"], 10)] == [2, 1, 0]
