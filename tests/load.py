"""A bounded load through an app's HTTP address, writing uniquely numbered records and
keeping a ledger of every answer (tests/ledger.py), for the chaos bench (bench/chaos.py)
and tests:

    workload = NotesWorkload()                       # or any object with write/read
    with Load("http://10.213.1.11:8080", workload, threads=4, rate=20, seconds=120,
              budget=5000, allowed=[lab.subnet]) as load:
        ...                                          # inject a fault; load.ledger.mark(...)
    readback = load.read_back()                      # the records the app lists at the end
    load.ledger.summary(readback, fault=(t0, t1))

Bounded: `threads` workers share `rate` requests per second (paced by ticket, not by
answers: a slow app does not pile requests up beyond `threads` in flight), stopping at
`budget` requests or after `seconds`, whichever first; each request has `timeout` seconds
and its own connection (Connection: close: a reload that closes idle keep-alive
connections is not counted as the app's failure). Every `read_every`-th request is a read,
the rest are writes.

Only this machine and the lab: the address must be on loopback or in one of `allowed`
(the lab's subnet); anything else is refused before a request is sent. No proxy is ever
used (the machine's proxy variables are ignored).

A workload is the app-specific part: `write(http, key) -> Answer` stores one record whose
text is `key` and says the app's id for it; `read(http, ledger) -> Answer` lists records
and says which of this run's keys it saw (a `Readback`). `NotesWorkload` is the notes
example's API (POST/GET /api/notes); another app gives its own.
"""

from __future__ import annotations

import dataclasses
import http.client
from http.client import HTTPException
import ipaddress
import json
import threading
import time
import urllib.parse
from collections.abc import Iterable
from typing import Protocol

from tests.ledger import Attempt, Ledger, Readback

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


# --- where requests may go ------------------------------------------------------------------

def check_target(url: str, allowed: Iterable = ()) -> tuple[str, int]:
    """(host, port) of `url` when it is plain HTTP to loopback or an `allowed` network;
    ValueError otherwise. Host names other than localhost are refused: a name could
    resolve anywhere."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"the load speaks plain HTTP to an address: not {url!r}")
    host = "127.0.0.1" if parts.hostname == "localhost" else parts.hostname
    try:
        address = ipaddress.ip_address(host)
    except ValueError as e:
        raise ValueError(f"give the load an IP address (the lab's or loopback), not "
                         f"{parts.hostname!r}") from e
    networks = list(LOOPBACK) + [ipaddress.ip_network(n, strict=False) for n in allowed]
    if not any(address in n for n in networks if n.version == address.version):
        raise ValueError(f"{address} is neither loopback nor in the lab's network "
                         f"({', '.join(map(str, networks[2:])) or 'none given'}): the load "
                         "talks to this machine and its lab only")
    return host, parts.port or 80


@dataclasses.dataclass(frozen=True)
class Answer:
    """What one request got: a good answer (`ok`), its status, the app's id of a written
    record (`ref`), what a read saw (`seen`), or what went wrong (`error`)."""

    ok: bool
    status: int = 0
    ref: str | None = None
    seen: Readback | None = None
    error: str = ""


class Http:
    """Plain HTTP/1.1 to one checked address, a new connection per request, no proxy."""

    def __init__(self, url: str, allowed: Iterable = (), timeout: float = 5.0) -> None:
        self.host, self.port = check_target(url, allowed)
        self.prefix = urllib.parse.urlsplit(url).path.rstrip("/")
        self.timeout = timeout

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, object]:
        """(status, parsed JSON body or None); raises OSError or http.client errors."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            data = json.dumps(body).encode() if body is not None else None
            headers = {"Connection": "close", "Accept": "application/json"}
            if data is not None:
                headers["Content-Type"] = "application/json"
            connection.request(method, self.prefix + path, body=data, headers=headers)
            answer = connection.getresponse()
            raw = answer.read()
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = None
            return answer.status, parsed
        finally:
            connection.close()


class Workload(Protocol):
    name: str

    def write(self, http: Http, key: str) -> Answer: ...

    def read(self, http: Http, ledger: Ledger) -> Answer: ...


class NotesWorkload:
    """The notes example (examples/api): POST /api/notes {"text": key} -> 201 {"id": ...};
    GET /api/notes -> {"notes": [...the latest 100, oldest first], "total": N}: a suffix
    of the records in write order (ledger.Readback)."""

    name = "notes"
    path = "/api/notes"

    def write(self, http: Http, key: str) -> Answer:
        status, body = _call(http, "POST", self.path, {"text": key})
        if isinstance(body, Answer):
            return body
        ref = body.get("id") if isinstance(body, dict) else None
        if 200 <= status < 300 and ref is not None:
            return Answer(True, status, ref=str(ref))
        return Answer(False, status, error=_excerpt(body))

    def read(self, http: Http, ledger: Ledger) -> Answer:
        status, body = _call(http, "GET", self.path)
        if isinstance(body, Answer):
            return body
        notes = body.get("notes") if isinstance(body, dict) else None
        if status != 200 or not isinstance(notes, list):
            return Answer(False, status, error=_excerpt(body))
        total = body.get("total")
        total = total if isinstance(total, int) else None
        texts = [n.get("text", "") for n in notes if isinstance(n, dict)]
        complete = total is not None and total <= len(notes)
        seen = Readback(ledger.keys_in(texts), complete=complete, suffix=not complete,
                        total=total)
        return Answer(True, status, seen=seen)


def _call(client: Http, method: str, path: str, body: dict | None = None):
    try:
        return client.call(method, path, body)
    except (OSError, HTTPException) as e:
        return 0, Answer(False, 0, error=f"{type(e).__name__}: {e}")


def _excerpt(body) -> str:
    text = json.dumps(body) if body is not None else "no JSON body"
    return text[:200]


# --- the load ----------------------------------------------------------------------------------

class Load:
    """Worker threads writing and reading through `url`, recording into `ledger`."""

    def __init__(self, url: str, workload: Workload, ledger: Ledger | None = None,
                 threads: int = 4, rate: float = 20.0, seconds: float = 60.0,
                 budget: int = 10_000, read_every: int = 4, timeout: float = 5.0,
                 allowed: Iterable = ()) -> None:
        if threads < 1 or rate <= 0 or seconds <= 0 or budget < 1 or read_every < 0:
            raise ValueError("threads, rate, seconds and budget must be positive")
        self.http = Http(url, allowed, timeout)
        self.url, self.workload = url, workload
        self.ledger = ledger or Ledger()
        self.threads, self.rate, self.seconds, self.budget = threads, rate, seconds, budget
        self.read_every = read_every
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._tickets = 0
        self._workers: list[threading.Thread] = []
        self.started: float | None = None
        self.stopped: float | None = None

    def start(self) -> Load:
        self.started = time.monotonic()
        self.ledger.mark("load started", self.started)
        self._workers = [threading.Thread(target=self._work, name=f"load-{i}", daemon=True)
                         for i in range(self.threads)]
        for worker in self._workers:
            worker.start()
        return self

    def stop(self) -> None:
        """Stop sending; wait for the requests in flight (at most `timeout` s)."""
        self._stop.set()
        for worker in self._workers:
            worker.join(self.http.timeout + 5)
        if self.stopped is None:
            self.stopped = time.monotonic()
            self.ledger.mark("load stopped", self.stopped)

    def wait(self) -> None:
        """Until the budget or the time is used up."""
        for worker in self._workers:
            worker.join()
        self.stop()

    @property
    def running(self) -> bool:
        return any(w.is_alive() for w in self._workers)

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _ticket(self) -> int | None:
        with self._lock:
            if self._tickets >= self.budget or self._stop.is_set():
                return None
            self._tickets += 1
            return self._tickets

    def _work(self) -> None:
        deadline = self.started + self.seconds
        while True:
            ticket = self._ticket()
            if ticket is None:
                return
            due = self.started + (ticket - 1) / self.rate
            if due >= deadline:
                return
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            self.one(ticket)

    def one(self, ticket: int) -> Attempt:
        """Send request `ticket` (a read every `read_every`-th, else the write of record
        `ticket`) and record it."""
        reading = self.read_every and ticket % self.read_every == 0
        sent = time.monotonic()
        if reading:
            answer = self.workload.read(self.http, self.ledger)
            attempt = Attempt("read", sent, time.monotonic(), answer.ok, answer.status,
                              answer.error, seen=answer.seen)
        else:
            answer = self.workload.write(self.http, self.ledger.key(ticket))
            attempt = Attempt("write", sent, time.monotonic(), answer.ok, answer.status,
                              answer.error, seq=ticket, ref=answer.ref)
        self.ledger.record(attempt)
        return attempt

    def read_back(self, timeout: float = 60.0, interval: float = 1.0) -> Readback | None:
        """A read after the load: the first good one within `timeout` s (None if none)."""
        deadline = time.monotonic() + timeout
        while True:
            answer = self.workload.read(self.http, self.ledger)
            if answer.ok and answer.seen is not None:
                return answer.seen
            if time.monotonic() >= deadline:
                return None
            time.sleep(interval)

    def total(self) -> int | None:
        """The app's own record count now (for `Ledger.lost`'s lower bound), if it says."""
        answer = self.workload.read(self.http, self.ledger)
        return answer.seen.total if answer.ok and answer.seen else None
