"""AppStore over a real portal store (SQLite in a tmp dir): applied specs, parameter
revisions, what was published, states and the notification outbox."""

from __future__ import annotations

import pytest

from dragonball.orchestrator.state import AppStore


@pytest.fixture
def apps(store):
    """AppStore over the empty store of tests/unit/conftest.py (on its `clock`)."""
    return AppStore(store)


def test_save_and_read_apps(apps):
    assert apps.app("notes") is None and apps.apps() == []
    apps.save_app("notes", "/srv/notes.app.yaml", "app: notes\n")
    apps.save_app("blog", "blog.yaml", "app: blog\n")
    assert apps.app("notes") == ("/srv/notes.app.yaml", "app: notes\n")
    assert apps.apps() == ["blog", "notes"]
    apps.save_app("notes", "other.yaml", "app: notes\n# v2\n")   # replaced, not added
    assert apps.app("notes") == ("other.yaml", "app: notes\n# v2\n")
    assert apps.apps() == ["blog", "notes"]


def test_a_second_appstore_on_the_same_database_sees_the_same(apps):
    apps.save_app("notes", "f", "t")
    assert AppStore(apps.store).app("notes") == ("f", "t")  # its schema is idempotent


def test_params_start_empty_and_revisions_only_grow(apps):
    assert apps.params("notes", "api") == (0, {})
    assert apps.set_params("notes", "api", {"greeting": "hi"}) == 1
    assert apps.set_params("notes", "api", {}) == 2          # fewer values: still newer
    assert apps.bump_params("notes", "api") == 3
    assert apps.params("notes", "api") == (3, {})
    assert apps.set_params("notes", "api", {"port": 1, "hosts": ["a"]}) == 4
    assert apps.params("notes", "api") == (4, {"port": 1, "hosts": ["a"]})
    # per service, per app
    assert apps.params("notes", "web") == (0, {})
    assert apps.set_params("blog", "api", {}) == 1


def test_published_round_trip(apps):
    assert apps.published("notes", "api") is None
    apps.mark_published("notes", "api", {"port": 1, "password": ""})
    assert apps.published("notes", "api") == {"port": 1, "password": ""}
    apps.mark_published("notes", "api", {})
    assert apps.published("notes", "api") == {}


def test_states_are_saved_with_the_notifications(apps):
    apps.record_changes("notes", {"api": {"state": "healthy", "desired": 2, "healthy": 2}}, [])
    assert apps.states("notes") == {"api": {"state": "healthy", "desired": 2, "healthy": 2}}
    apps.record_changes("notes", {"api": {"state": "unhealthy", "desired": 2, "healthy": 1}},
                        [])
    assert apps.states("notes")["api"]["state"] == "unhealthy"
    assert apps.pending("notes") == {}


def _note(service: str, event: str) -> dict:
    return {"schema": 1, "app": "notes", "service": service, "event": event}


def test_pending_is_the_oldest_undelivered_per_receiver_in_seq_order(apps):
    apps.record_changes("notes", {}, [("web", _note("api", "unhealthy")),
                                      ("api", _note("store", "unhealthy"))])
    apps.record_changes("notes", {}, [("web", _note("api", "healthy"))])
    first = apps.pending("notes")
    assert set(first) == {"web", "api"}
    web = first["web"]
    assert (web.seq, web.receiver, web.app) == (1, "web", "notes")
    assert web.payload == dict(_note("api", "unhealthy"), seq=1, to="web")
    assert (web.attempts, web.last_error) == (0, None)
    assert first["api"].seq == 1    # seq counts per receiver

    apps.delivered(web.id)
    after = apps.pending("notes")
    assert after["web"].seq == 2
    assert after["web"].payload["event"] == "healthy"
    assert after["api"].id == first["api"].id
    apps.delivered(after["web"].id)
    assert set(apps.pending("notes")) == {"api"}
    assert apps.pending("blog") == {}


def test_a_failed_delivery_stays_pending_with_its_error_and_waits_to_retry(apps, clock):
    apps.record_changes("notes", {}, [("web", _note("api", "stopped"))])
    note = apps.pending("notes")["web"]
    apps.failed(note.id, "web.1 on node-a: exit 1")
    assert apps.pending("notes") == {}                 # not due yet: 2 s
    assert apps.pending("notes", due_only=False)["web"].id == note.id
    clock.now += 2
    again = apps.pending("notes")["web"]
    assert (again.id, again.attempts, again.last_error) == (note.id, 1,
                                                            "web.1 on node-a: exit 1")
    apps.failed(note.id, "x" * 5000)
    clock.now += 3
    assert apps.pending("notes") == {}                 # then 4 s
    clock.now += 1
    again = apps.pending("notes")["web"]
    assert again.attempts == 2
    assert again.last_error == "x" * 2000              # kept short
    apps.delivered(note.id)
    assert apps.pending("notes", due_only=False) == {}
    shown = apps.notifications("notes")
    assert shown[0]["attempts"] == 3 and shown[0]["last_error"] is None
    assert shown[0]["delivered"] == clock.now
    assert shown[0]["payload"]["to"] == "web"


def test_retries_wait_at_most_a_minute(apps, clock):
    apps.record_changes("notes", {}, [("web", _note("api", "stopped"))])
    note = apps.pending("notes")["web"]
    for _ in range(10):
        apps.failed(note.id, "down")
    clock.now += 59
    assert apps.pending("notes") == {}
    clock.now += 1
    assert apps.pending("notes")["web"].attempts == 10


def test_a_waiting_receiver_does_not_hold_back_another(apps, clock):
    apps.record_changes("notes", {}, [("web", _note("api", "stopped")),
                                      ("api", _note("store", "stopped"))])
    apps.failed(apps.pending("notes")["web"].id, "down")
    assert set(apps.pending("notes")) == {"api"}


def test_notifications_are_listed_newest_first(apps):
    apps.record_changes("notes", {}, [("web", _note("api", "unhealthy"))])
    apps.record_changes("notes", {}, [("web", _note("api", "healthy"))])
    assert [n["seq"] for n in apps.notifications("notes")] == [2, 1]
    assert [n["seq"] for n in apps.notifications("notes", limit=1)] == [2]


def test_forget_app(apps):
    apps.save_app("notes", "f", "t")
    apps.save_app("blog", "g", "u")
    apps.set_params("notes", "api", {"a": 1})
    apps.set_params("blog", "api", {"b": 2})
    apps.mark_published("notes", "api", {"a": 1})
    apps.record_changes("notes", {"api": {"state": "healthy"}}, [])
    apps.forget_app("notes")
    assert apps.app("notes") is None and apps.apps() == ["blog"]
    # parameters stay: their revision must keep growing (servers refuse an older one)
    assert apps.params("notes", "api") == (1, {"a": 1})
    assert apps.set_params("notes", "api", {}) == 2
    assert apps.published("notes", "api") is None
    assert apps.states("notes") == {}
    assert apps.params("blog", "api") == (1, {"b": 2})   # another app is untouched
