"""The portal's state replicated through etcd (dragonball.portal.statelog): copies of the store
on two SQLite files sharing one in-memory etcd (etcd_fakes.FakeEtcd) hold the same rows, a
write that loses the race or finds no quorum changes nothing, and snapshots let the log shrink.
"""

from __future__ import annotations

import sqlite3

import pytest
from starlette.requests import Request

from dragonball.errors import Category
from dragonball.portal import auth
from dragonball.orchestrator.state import AppStore
from dragonball.portal.statelog import StoreConflict, decode_statement, encode_statement, \
    open_store
from dragonball.portal.store import Store, StoreError
from etcd_fakes import FakeEtcd
from portal_web_fakes import Clock, make_settings

LOG = "/dragonball/portal/log/"


@pytest.fixture
def etcd() -> FakeEtcd:
    return FakeEtcd()


@pytest.fixture
def replicas(tmp_path, etcd):
    """open(name) -> a replicated store at tmp_path/name/portal.db; all closed after."""
    settings, opened = make_settings(tmp_path), []

    def open_(name: str, clock=None) -> Store:
        store = open_store(settings, path=str(tmp_path / name / "portal.db"),
                           clock=clock or Clock(), etcd=etcd)
        opened.append(store)
        return store
    yield open_
    for store in opened:
        store.close()


def dump(store: Store) -> dict:
    """Every row of every table (meta's replication index aside), in rowid order."""
    db = sqlite3.connect(store.path)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                           "ORDER BY name")]
        rows = {t: db.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in tables}
    finally:
        db.close()
    rows["meta"] = [r for r in rows["meta"] if r[0] != "statelog_applied"]
    return rows


def test_a_write_on_one_portal_is_read_on_another_after_catch_up(replicas):
    one, two = replicas("one"), replicas("two")
    one.set_admin_password("correct horse battery")
    assert not two.has_admin()
    assert two.catch_up() is True
    assert two.has_admin() and two.check_admin("admin", "correct horse battery")
    assert two.catch_up() is False  # nothing new


def test_a_write_starts_from_the_log_s_newest_entry(replicas):
    one, two = replicas("one"), replicas("two")
    _, first = one.create_code(3600)
    _, second = two.create_code(3600)  # no catch_up by hand: the write does it first
    assert (first.id, second.id) == (1, 2)
    one.catch_up()
    assert [c.id for c in one.codes()] == [c.id for c in two.codes()] == [1, 2]


def test_every_table_replays_to_the_same_rows(replicas):
    clock = Clock()
    one, two = replicas("one", clock), replicas("two", clock)
    one.set_admin_password("pw-one-two-three")
    code, _ = one.create_code(3600, actor="admin", client="10.0.0.9")
    device, _ = one.enroll(code, "s2", "10.0.0.2", client="10.0.0.2")
    one.mark_joined(device.id, "node-s2")
    one.add_portal("s1", "10.0.0.1", "node-s1")
    secret, _ = one.create_session("admin", "session", 600, 3600, client="10.0.0.9")
    clock.now += 60
    assert one.session(secret) is not None  # its `seen` is written again
    attempt = one.reserve_event("login.failed", "10.0.0.7", clock.now - 60, 10)
    one.settle_event(attempt, {"reason": "bad password"})
    one.drop_event(one.reserve_event("login.failed", "10.0.0.8", clock.now - 60, 10))
    apps = AppStore(one)
    apps.save_app("notes", "notes.yaml", "name: notes\n")
    apps.set_params("notes", "web", {"greeting": "hi", "blob": "é\x00"})
    apps.set_pins("notes", {"store-1": "s2"})
    apps.mark_published("notes", "store", {"url": "db://store"})
    apps.record_changes("notes", {"web": {"state": "healthy"}},
                        [("api", {"event": "healthy"}), ("api", {"event": "stopped"})])
    pending = apps.pending("notes")["api"]
    apps.failed(pending.id, "connection refused")
    apps.delivered(pending.id)
    one.end_session(secret)
    two.catch_up()
    late = replicas("late")  # joins from the seed snapshot and replays the whole log
    assert dump(one) == dump(two) == dump(late)
    assert AppStore(two).params("notes", "web") == apps.params("notes", "web")


def test_a_write_that_loses_the_race_changes_nothing_here(replicas, etcd):
    one, two = replicas("one"), replicas("two")
    etcd.before_txn = lambda: two.record("other.write", "admin")  # two takes the index first
    with pytest.raises(StoreConflict) as caught:
        one.record("mine", "admin")
    assert caught.value.category is Category.CONFLICT
    assert "another manager's portal wrote at the same moment" in caught.value.message
    assert [e["kind"] for e in one.events()] == []
    one.record("mine", "admin")  # tried again: it starts from two's entry
    two.catch_up()
    assert [e["kind"] for e in one.events()] == [e["kind"] for e in two.events()] == \
        ["mine", "other.write"]


def test_a_write_without_quorum_fails_and_changes_nothing(replicas, etcd):
    one = replicas("one")
    one.record("before", "admin")
    keys = etcd.keys("/dragonball/")
    etcd.down = True
    with pytest.raises(StoreError) as caught:
        one.create_code(3600)
    assert caught.value.category is Category.UNAVAILABLE
    assert "quorum" in caught.value.message and "Nothing changed" in caught.value.message
    assert one.codes() == [] and [e["kind"] for e in one.events()] == ["before"]
    assert etcd.keys("/dragonball/") == keys
    assert one.has_admin() is False  # reads go on from this copy
    etcd.down = False
    one.create_code(3600)
    assert len(one.codes()) == 1


def test_a_transaction_that_changes_nothing_writes_no_entry(replicas, etcd):
    one = replicas("one")
    with one.write() as db:
        db.execute("SELECT 1")
        db.execute("UPDATE codes SET used = 1 WHERE id = 42")
    assert etcd.keys(LOG) == []


def test_a_failed_body_is_rolled_back_and_written_nowhere(replicas, etcd):
    one = replicas("one")
    with pytest.raises(RuntimeError):
        with one.write() as db:
            db.execute("INSERT INTO meta VALUES ('x', 'y')")
            raise RuntimeError("boom")
    assert etcd.keys(LOG) == [] and not one.read("SELECT 1 FROM meta WHERE key = 'x'")


def test_the_first_portal_seeds_the_cluster_with_what_it_held(tmp_path, etcd, replicas):
    local = Store.open(str(tmp_path / "first" / "portal.db"))  # written before replication
    local.set_admin_password("installed-locally")
    local.close()
    first, second = replicas("first"), replicas("second")
    assert second.check_admin("admin", "installed-locally")
    assert first.check_admin("admin", "installed-locally")


def test_a_copy_that_never_joined_takes_the_cluster_s_state(tmp_path, replicas):
    first = replicas("first")
    first.record("cluster", "admin")
    stray = Store.open(str(tmp_path / "stray" / "portal.db"))
    stray.record("stray", "admin")
    stray.close()
    joined = replicas("stray")
    assert [e["kind"] for e in joined.events()] == ["cluster"]


def test_a_snapshot_lets_the_log_shrink_and_a_copy_behind_it_restore(replicas, etcd):
    one, behind = replicas("one"), replicas("behind")
    one.replica.snapshot_every = 3
    for n in range(5):
        one.record(f"e{n}", "admin")
    assert one.replica.snapshot(one) == 5
    assert etcd.keys(LOG) == []
    assert one.replica.snapshot(one) is None  # nothing new since
    one.record("e5", "admin")
    assert etcd.keys(LOG) == [LOG + "000000000006"]
    assert behind.catch_up() is True  # its entries are gone: it restores, then replays 6
    late = replicas("late")
    assert dump(one) == dump(behind) == dump(late)
    behind.record("from-behind", "admin")
    one.catch_up()
    assert [e["kind"] for e in one.events(2)] == ["from-behind", "e5"]


def test_a_stale_copy_cannot_append_below_the_floor(replicas, etcd):
    one, two = replicas("one"), replicas("two")
    one.replica.snapshot_every = 1
    one.record("a", "admin")
    one.replica.snapshot(one)  # log entry 1 is gone, the floor is 1
    with two._lock:  # a copy at 0 that sees no entry must not write entry 1 again
        two.replica.catch_up = lambda db: 0
        with pytest.raises(StoreConflict):
            two.record("b", "admin")
    del two.replica.catch_up
    two.record("b", "admin")
    assert [e["kind"] for e in two.events()] == ["b", "a"]


def test_statements_travel_as_json_with_bytes_and_names():
    for sql, args in (("INSERT INTO t VALUES (?, ?, ?)", (b"\x00\xff", 1.5, None)),
                      ("UPDATE t SET a = :a", {"a": b"raw"})):
        assert decode_statement(encode_statement(sql, args)) == (sql, args)


def _bearer(secret: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/api/v1/devices",
                    "query_string": b"", "client": ("192.0.2.9", 4000),
                    "headers": [(b"authorization", f"Bearer {secret}".encode())]})


def test_a_token_made_on_one_portal_opens_another_at_once(replicas, etcd):
    one, two = replicas("one"), replicas("two")
    secret, _ = one.create_session("admin", "token", 3600, 3600)
    # two has not caught up (its follower runs every second): the lookup that misses does
    assert auth.Auth(two, limiter=None).principal(_bearer(secret)).username == "admin"
    with pytest.raises(auth.NotAuthenticated):            # an unknown token stays unknown
        auth.Auth(two, limiter=None).principal(_bearer("not-a-token"))
    etcd.down = True                                       # and with no quorum: refused, no crash
    with pytest.raises(auth.NotAuthenticated):
        auth.Auth(two, limiter=None).principal(_bearer("another-unknown"))


def test_a_session_stays_valid_when_its_last_use_loses_the_race(replicas, etcd):
    """After a power cut every manager's portal writes at once: the `seen` bookkeeping of a
    request's session losing the race must not fail the request (it did: exit 4 "another
    manager's portal wrote at the same moment" from a long `dragonball apply`)."""
    clock = Clock()
    one, two = replicas("one", clock), replicas("two")
    secret, _ = one.create_session("admin", "token", 600, 3600)
    clock.now += Store.SEEN_EVERY_S
    etcd.before_txn = lambda: two.record("other.write", "admin")
    session = one.session(secret)
    assert session is not None and session.username == "admin"
    etcd.before_txn = None
    clock.now += 1
    assert one.session(secret).seen == clock.now      # written by the next request
