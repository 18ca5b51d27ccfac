"""The portal's store: one-time expiring codes kept as hashes, device tokens, scrypt, WAL."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import time

import pytest

from dragonball.portal import store as store_mod
from dragonball.portal.store import CodeRefused, HostnameTaken, Store, StoreError
from dragonball.portal.errors import RequestInvalid
from dragonball.shared import codes


def _dump(path) -> bytes:
    """Every byte of the database and its WAL: where a leaked secret would be."""
    data = b""
    for suffix in ("", "-wal"):
        if os.path.exists(str(path) + suffix):
            with open(str(path) + suffix, "rb") as f:
                data += f.read()
    return data


def test_the_database_is_wal_and_root_only(store, tmp_path):
    path = tmp_path / "portal" / "portal.db"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "portal").stat().st_mode) == 0o700
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_code_has_the_wizards_format_and_only_its_hash_is_kept(store, tmp_path):
    code, record = store.create_code(3600)
    assert codes.problem(code) is None and codes.normalize(code) == code
    assert record.expires == record.created + 3600
    data = _dump(tmp_path / "portal" / "portal.db")
    assert code.encode() not in data
    assert code.replace("-", "").encode() not in data
    assert hashlib.sha256(code.encode()).hexdigest().encode() in data


def test_a_code_enrolls_and_the_token_is_kept_hashed(store, tmp_path):
    code, _ = store.create_code()
    device, token = store.enroll(code, "node-2", "10.0.0.2", client="10.0.0.2")
    assert device.state == "enrolled" and device.hostname == "node-2"
    assert device.labels == {"io.dragonball.device-id": str(device.id),
                             "io.dragonball.role": "device", "io.dragonball.enrolled": "true"}
    assert len(token) >= 43
    assert store.device_by_token(token) == device
    assert store.device_by_token("x" + token) is None
    assert token.encode() not in _dump(tmp_path / "portal" / "portal.db")


def test_typing_is_forgiving_as_the_wizard_is(store):
    code, _ = store.create_code()
    device, _ = store.enroll(code.lower().replace("-", " "), "node-2", "10.0.0.2")
    assert device.hostname == "node-2"


def test_a_code_is_one_time_once_the_device_joined(store):
    code, _ = store.create_code()
    device, _ = store.enroll(code, "node-2", "10.0.0.2")
    store.mark_joined(device.id, "abcdefghijklmnopqrstuvwxy")
    with pytest.raises(CodeRefused, match="used already"):
        store.enroll(code, "node-2", "10.0.0.2")
    with pytest.raises(CodeRefused, match="used already"):
        store.enroll(code, "node-3", "10.0.0.3")
    assert store.codes()[0].used is not None


def test_before_joining_the_same_server_may_enroll_again_with_a_new_token(store):
    code, _ = store.create_code()
    first, token1 = store.enroll(code, "node-2", "10.0.0.2")
    again, token2 = store.enroll(code, "NODE-2", "10.0.0.22")
    assert again.id == first.id and again.address == "10.0.0.22"
    assert token1 != token2
    assert store.device_by_token(token1) is None
    assert store.device_by_token(token2).id == first.id


def test_one_code_enrolls_one_server(store):
    code, _ = store.create_code()
    store.enroll(code, "node-2", "10.0.0.2")
    with pytest.raises(CodeRefused, match="another server"):
        store.enroll(code, "node-3", "10.0.0.3")


def test_a_code_expires(store, clock):
    code, _ = store.create_code(600)
    clock.now += 599
    store.enroll(code, "node-2", "10.0.0.2")
    clock.now += 1
    with pytest.raises(CodeRefused, match="expired"):
        store.enroll(code, "node-2", "10.0.0.2")


def test_unknown_and_malformed_codes_are_refused(store):
    store.create_code()
    with pytest.raises(CodeRefused, match="unknown"):
        store.enroll(codes.new_code(), "node-2", "10.0.0.2")
    with pytest.raises(CodeRefused, match="not an enrollment code"):
        store.enroll("AAAA-AAAA-AAAA-AAAB", "node-2", "10.0.0.2")  # wrong check character


def test_a_hostname_belongs_to_one_device(store):
    store.add_portal("s1", "10.0.0.1", "portalnode")
    with pytest.raises(HostnameTaken):
        store.enroll(store.create_code()[0], "s1", "10.0.0.9")
    code, _ = store.create_code()
    device, _ = store.enroll(code, "node-2", "10.0.0.2")
    store.mark_joined(device.id, "n2")
    with pytest.raises(HostnameTaken):
        store.enroll(store.create_code()[0], "Node-2", "10.0.0.3")


def test_a_server_that_never_joined_frees_its_name_when_its_code_expires(store, clock):
    code, _ = store.create_code(600)
    stale, _ = store.enroll(code, "node-2", "10.0.0.2")
    fresh = store.create_code(3600)[0]
    with pytest.raises(HostnameTaken):
        store.enroll(fresh, "node-2", "10.0.0.2")
    clock.now += 601
    device, _ = store.enroll(fresh, "node-2", "10.0.0.2")
    assert device.id != stale.id
    assert [d.hostname for d in store.devices()] == ["node-2"]


def test_joined_is_idempotent_and_the_portal_is_a_device(store):
    portal = store.add_portal("s1", "10.0.0.1", "pnode")
    assert portal.labels == {"io.dragonball.device-id": str(portal.id),
                             "io.dragonball.role": "portal",
                             "io.dragonball.enrolled": "true"}
    assert store.add_portal("s1", "10.0.0.1", "pnode").id == portal.id
    code, _ = store.create_code()
    device, _ = store.enroll(code, "node-2", "10.0.0.2")
    first = store.mark_joined(device.id, "n2")
    again = store.mark_joined(device.id, "n2")
    assert first == again and first.state == "joined"
    assert [(d.role, d.state) for d in store.devices()] == [("portal", "joined"),
                                                           ("device", "joined")]
    kinds = [e["kind"] for e in store.events()]
    assert kinds.count("device.joined") == 2  # the portal's and node-2's, not the repeat


def test_scrypt_hashes_verify_in_constant_time_with_a_salt_each():
    one, two = store_mod.hash_password("correct horse"), store_mod.hash_password("correct horse")
    assert one != two  # salted
    scheme, n, r, p, salt, key = one.split("$")
    assert (scheme, n, r, p) == ("scrypt", str(2 ** 14), "8", "1")
    assert store_mod.verify_password("correct horse", one)
    assert not store_mod.verify_password("correct horsE", one)
    assert not store_mod.verify_password("x", "garbage")


def test_the_admin_password_is_hashed_and_checked(store, tmp_path):
    password = "Very-Long-Passphrase-42"
    assert not store.has_admin()
    store.set_admin_password(password)
    assert store.has_admin()
    assert store.check_admin("admin", password)
    assert not store.check_admin("admin", password + "!")
    assert not store.check_admin("root", password)
    assert password.encode() not in _dump(tmp_path / "portal" / "portal.db")
    store.set_admin_password("Another-Passphrase-43")
    assert not store.check_admin("admin", password)


def test_checking_a_password_takes_scrypt_time_even_for_an_unknown_user(store):
    store.set_admin_password("Very-Long-Passphrase-42")
    began = time.perf_counter()
    store.check_admin("nobody", "whatever")
    assert time.perf_counter() - began > 0.005


def test_a_second_process_sees_codes_at_once(tmp_path, clock):
    path = str(tmp_path / "portal.db")
    one, two = Store.open(path, clock=clock), Store.open(path, clock=clock)
    code, _ = one.create_code()
    device, _ = two.enroll(code, "node-2", "10.0.0.2")
    assert one.device(device.id).hostname == "node-2"
    one.close()
    two.close()


def test_a_zero_ttl_is_refused(store):
    with pytest.raises(RequestInvalid, match="lifetime"):
        store.create_code(0)


def test_events_count_per_client_in_a_window(store, clock):
    store.record("enroll.refused", "anonymous", "10.0.0.9", {"reason": "unknown"})
    clock.now += 10
    store.record("enroll.refused", "anonymous", "10.0.0.9", {"reason": "unknown"})
    store.record("enroll.refused", "anonymous", "10.0.0.8", {"reason": "unknown"})
    assert store.count_events("enroll.refused", "10.0.0.9", clock.now - 600) == 2
    assert store.count_events("enroll.refused", "10.0.0.9", clock.now - 5) == 1
    assert store.oldest_event("enroll.refused", "10.0.0.9", clock.now - 600) == clock.now - 10


def test_an_unwritable_folder_is_a_store_error(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "portal.db").mkdir()  # a folder where the file should be
    with pytest.raises(StoreError, match="cannot open"):
        Store.open(str(folder / "portal.db"))
