"""The bounded load (tests/load.py) against a small notes-like API in this process, on
loopback: where it may send, its bounds, what the ledger makes of an outage and of a
store that forgets."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.ledger import Ledger
from tests.load import Http, Load, NotesWorkload, check_target


# --- where it may send ----------------------------------------------------------------------

@pytest.mark.parametrize("url, allowed", [
    ("http://127.0.0.1:8080", ()), ("http://localhost:8080/", ()),
    ("http://10.213.1.11:8080", ["10.213.1.0/24"]), ("http://[::1]:80", ())])
def test_loopback_and_the_lab_are_allowed(url, allowed):
    host, port = check_target(url, allowed)
    assert port in (80, 8080) and host


@pytest.mark.parametrize("url, allowed, message", [
    ("http://10.213.2.11:8080", ["10.213.1.0/24"], "neither loopback nor"),
    ("http://192.0.2.1/", (), "neither loopback nor"),
    ("http://example.invalid/", (), "give the load an IP address"),
    ("https://127.0.0.1/", (), "plain HTTP"),
    ("ftp://127.0.0.1/", (), "plain HTTP")])
def test_anything_else_is_refused_before_a_request(url, allowed, message):
    with pytest.raises(ValueError, match=message):
        check_target(url, allowed)
    with pytest.raises(ValueError):
        Load(url, NotesWorkload(), allowed=allowed)


# --- a notes-like API on loopback ----------------------------------------------------------------

class FakeNotes:
    """POST/GET /api/notes like examples/api, with switches: `down` answers 503 to all,
    `forget()` empties the store (and restarts its ids from 1, as a fresh redis would)."""

    def __init__(self, window: int = 100) -> None:
        self.notes: list[dict] = []
        self.next_id = 1
        self.down = False
        self.window = window
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                if fake.down:
                    return self.send(503, {"error": "the store is unavailable"})
                with fake.lock:
                    body = {"notes": fake.notes[-fake.window:], "total": len(fake.notes)}
                self.send(200, body)

            def do_POST(self):  # noqa: N802
                data = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if fake.down:
                    return self.send(503, {"error": "the store is unavailable"})
                with fake.lock:
                    note = {"id": fake.next_id, "text": data["text"]}
                    fake.next_id += 1
                    fake.notes.append(note)
                self.send(201, note)

            def send(self, status, body):
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def forget(self) -> None:
        with self.lock:
            self.notes, self.next_id = [], 1

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake():
    app = FakeNotes()
    yield app
    app.close()


def test_the_budget_and_the_rate_bound_the_load(fake):
    with Load(fake.url, NotesWorkload(), threads=3, rate=100, seconds=30, budget=40) as load:
        load.wait()
    attempts = load.ledger.attempts
    assert len(attempts) == 40
    assert {a.kind for a in attempts} == {"read", "write"}
    assert sum(a.kind == "read" for a in attempts) == 10          # every 4th
    assert load.stopped - load.started >= 39 / 100                 # paced, not bursting
    assert not load.ledger.failed
    assert load.ledger.lost(load.read_back(), total_before=0).lost == 0


def test_the_time_bound_stops_the_load(fake):
    began = time.monotonic()
    with Load(fake.url, NotesWorkload(), threads=2, rate=20, seconds=1.0) as load:
        load.wait()
    assert time.monotonic() - began < 3
    assert 10 <= len(load.ledger.attempts) <= 21


def test_an_outage_is_counted_and_the_recovery_timed(fake):
    load = Load(fake.url, NotesWorkload(), threads=2, rate=40, seconds=3.0).start()
    time.sleep(1.0)
    fault = time.monotonic()
    fake.down = True
    time.sleep(1.0)
    fake.down = False
    ended = time.monotonic()
    load.wait()
    ledger = load.ledger
    summary = ledger.summary(load.read_back(), fault=(fault, ended), total_before=0)
    assert summary["failed"] >= 20 and summary["failures"] == {"HTTP 503": summary["failed"]}
    assert 0.8 <= summary["longest_gap_s"] <= 2.5
    assert summary["first_good_after_fault_s"] is not None
    assert summary["first_good_after_fault_s"] < 1.5
    assert summary["writes_lost"] == 0 and summary["stale_reads"] == 0


def test_a_store_that_forgets_loses_acknowledged_writes_and_serves_stale_reads(fake):
    load = Load(fake.url, NotesWorkload(), threads=2, rate=50, seconds=2.0).start()
    time.sleep(1.0)
    fake.forget()                  # an empty store from here on; its ids start again at 1
    load.wait()
    readback = load.read_back()
    loss = load.ledger.lost(readback, total_before=0)
    assert loss.lost >= 20 and readback.complete
    assert load.ledger.stale_reads()
    assert load.ledger.summary(readback)["stale_reads_missed"]      # the writes they missed


def test_a_window_smaller_than_the_run_never_overcounts(fake):
    fake.window = 10
    with Load(fake.url, NotesWorkload(), threads=3, rate=100, seconds=30, budget=60) as load:
        load.wait()
    readback = load.read_back()
    assert not readback.complete and readback.suffix and len(readback.keys) == 10
    loss = load.ledger.lost(readback, total_before=0)
    assert loss.lost == 0 and loss.unverified


def test_no_answer_at_all_is_a_failure_with_its_reason():
    ledger = Ledger()
    http = Http("http://127.0.0.1:9", timeout=1)   # discard port: nothing listens
    answer = NotesWorkload().write(http, ledger.key(1))
    assert not answer.ok and answer.status == 0 and "refused" in answer.error.lower()
