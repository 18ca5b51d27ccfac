#!/usr/bin/env python3
"""notes-api: a small JSON HTTP API that keeps notes in the store (Redis), stdlib only.

    GET  /healthz      200 {"ok": true, "store": "up", ...}; 503 when the store does not answer
    GET  /api/notes    the latest notes, oldest first: {"notes": [...], "total": N}
    POST /api/notes    {"text": "..."} -> 201 and the stored note
    GET  /api/info     {"hostname", "version", "greeting", ...}

Parameters (module/defaults.json): store_host, store_port, store_password, store_sentinels,
store_master_name, store_wait_replicas, store_wait_timeout_ms, listen_port, greeting. SIGHUP
re-reads them from $DRAGONBALL_PARAMS_FILE (a new listen_port is bound before the old one is
closed; a bad set is refused and the old one kept). SIGTERM lets in-flight requests finish,
then exits 0.

A replicated store (store_sentinels set: its sentinels' host:port): the primary is asked of the
sentinels (the newest configuration epoch wins) and asked again when it stops answering as the
primary (refused connection, timeout, -READONLY, a ROLE that is not master). Every request runs
on the primary, reads included. A note is acknowledged (201) only once WAIT says
store_wait_replicas replicas hold it; otherwise the answer is 503 and says so.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import signal
import socket
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, "/opt/dragon_ball/lib")  # the base image's library (dragonballbase)
from dragonball.module import params  # noqa: E402

VERSION = "1.0.0"
MAX_BODY = 64 * 1024
MAX_TEXT = 10_000
LIST_LIMIT = 100
STORE_TIMEOUT = 3.0
# A replicated store: connecting to a primary, asking a sentinel (LAN: milliseconds).
CONNECT_TIMEOUT = 1.0
SENTINEL_TIMEOUT = 0.5
# Error replies after which nothing was written and the primary may have moved: ask again.
MOVED = ("READONLY", "MASTERDOWN", "LOADING", "NOREPLICAS")
HOST_PORT = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?):([0-9]{1,5})$")
MASTER_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def log(message: str) -> None:
    print(f"notes-api: {message}", file=sys.stderr, flush=True)


def problems(p: dict) -> list[str]:
    """Every problem with a parameter set, not just the first."""
    found = []
    for key in ("store_port", "listen_port"):
        value = p.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            found.append(f"{key} must be an integer 1-65535, got {value!r}")
    if not isinstance(p.get("store_host"), str) or not p.get("store_host"):
        found.append("store_host must be a non-empty host name or address")
    if not isinstance(p.get("store_password"), str):
        found.append("store_password must be a string (empty: no password)")
    if not isinstance(p.get("greeting"), str) or len(p.get("greeting", "")) > 200:
        found.append("greeting must be a string of at most 200 characters")
    sentinels = p.get("store_sentinels")
    if not isinstance(sentinels, list):
        found.append('store_sentinels must be a list of "host:port" (empty: store_host is the store)')
    else:
        for item in sentinels:
            m = HOST_PORT.match(item) if isinstance(item, str) else None
            if not m or not 1 <= int(m.group(3)) <= 65535:
                found.append(f'store_sentinels: {item!r} is not "host:port"')
    if not isinstance(p.get("store_master_name"), str) or not MASTER_NAME.match(p["store_master_name"]):
        found.append("store_master_name must be 1-64 letters, digits, '.', '_' or '-', "
                     f"got {p.get('store_master_name')!r}")
    replicas = p.get("store_wait_replicas")
    if isinstance(replicas, bool) or not isinstance(replicas, int) or not 1 <= replicas <= 16:
        found.append(f"store_wait_replicas must be an integer 1-16, got {replicas!r}")
    wait_ms = p.get("store_wait_timeout_ms")
    if isinstance(wait_ms, bool) or not isinstance(wait_ms, int) or not 10 <= wait_ms <= 60000:
        found.append(f"store_wait_timeout_ms must be an integer 10-60000, got {wait_ms!r}")
    return found


def resolve(host: str, port: int, timeout: float) -> tuple:
    """The first address of host:port, or StoreError after `timeout` seconds.

    A stopped slot's name leaves the app network's DNS and the engine forwards the question
    upstream, where it can take 5 s to fail (measured on the lab). The lookup runs in a daemon
    thread, so a request waits at most `timeout` for it.
    """
    result: list = []
    done = threading.Event()

    def lookup() -> None:
        try:
            result.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4])
        except OSError as e:
            result.append(e)
        done.set()

    threading.Thread(target=lookup, name=f"resolve-{host}", daemon=True).start()
    if not done.wait(timeout):
        raise StoreError(f"{host} did not resolve within {timeout:.1f} s")
    if isinstance(result[0], OSError):
        raise StoreError(f"cannot resolve {host}: {result[0]}")
    return result[0]


def host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


class StoreError(Exception):
    """The store did not answer, or answered with an error (`code`: its first word)."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class NotReplicated(StoreError):
    """The primary wrote the note but too few replicas confirmed it in time."""


class Resp:
    """A minimal RESP2 client: one connection, one command at a time."""

    def __init__(self, host: str, port: int, password: str, timeout: float = STORE_TIMEOUT,
                 what: str = "the store", bounded: bool = False) -> None:
        """`bounded`: the name's lookup too must take at most `timeout` (a replicated store)."""
        self.where = f"{host}:{port}"
        try:
            address = resolve(host, port, timeout) if bounded else (host, port)
            self.sock = socket.create_connection(address[:2], timeout)
        except OSError as e:
            raise StoreError(f"cannot reach {what} at {host}:{port}: {e}") from e
        self.sock.settimeout(STORE_TIMEOUT)
        self.reader = self.sock.makefile("rb")
        if password:
            try:
                self.call("AUTH", password)
            except StoreError:
                self.close()
                raise

    def __enter__(self) -> "Resp":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def call(self, *args):
        payload = b"*%d\r\n" % len(args)
        for arg in args:
            data = str(arg).encode("utf-8")
            payload += b"$%d\r\n%s\r\n" % (len(data), data)
        try:
            self.sock.sendall(payload)
            return self._reply()
        except OSError as e:
            raise StoreError(f"the store connection to {self.where} failed: {e}") from e

    def _reply(self):
        line = self.reader.readline()
        if not line.endswith(b"\r\n"):
            raise StoreError("the store closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            text = rest.decode(errors="replace")
            raise StoreError(f"the store at {self.where} answered: {text}", text.split(" ", 1)[0])
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self.reader.read(size + 2)[:-2].decode("utf-8")
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self._reply() for _ in range(size)]
        raise StoreError(f"unexpected reply from the store: {line[:40]!r}")


class Primary:
    """Where the store's primary is: store_host:store_port, or asked of the sentinels."""

    def __init__(self, p: dict) -> None:
        self.password = p["store_password"]
        self.fixed = (p["store_host"], p["store_port"])
        self.sentinels = [host_port(item) for item in p["store_sentinels"]]
        self.name = p["store_master_name"]
        self.wait_replicas = p["store_wait_replicas"]
        self.wait_timeout_ms = p["store_wait_timeout_ms"]
        self.cached: tuple[str, int] | None = None
        self.highest_total = 0  # the most notes seen: a replicated store never shrinks to 0

    @property
    def replicated(self) -> bool:
        return bool(self.sentinels)

    def label(self) -> str:
        if not self.replicated:
            return f"{self.fixed[0]}:{self.fixed[1]}"
        known = f"{self.cached[0]}:{self.cached[1]}" if self.cached else "not known yet"
        return (f"primary {known} (sentinels {','.join(f'{h}:{p}' for h, p in self.sentinels)},"
                f" master {self.name})")

    def forget(self, addr=None) -> None:
        if addr is None or self.cached == addr:
            self.cached = None

    def connect(self) -> Resp:
        """A connection to the primary; a replicated store's is checked with ROLE."""
        if not self.replicated:
            return Resp(*self.fixed, self.password)
        problem = None
        for _ in range(2):
            addr = self.cached or self.discover()
            try:
                r = Resp(*addr, self.password, CONNECT_TIMEOUT, bounded=True)
            except StoreError as e:
                problem = e
                self.forget(addr)
                continue
            try:
                role = r.call("ROLE")
            except StoreError as e:
                r.close()
                problem = e
                self.forget(addr)
                continue
            if isinstance(role, list) and role and role[0] == "master":
                if self.cached != addr:
                    log(f"the store's primary is {addr[0]}:{addr[1]}")
                self.cached = addr
                return r
            r.close()
            self.forget(addr)
            problem = StoreError(f"{addr[0]}:{addr[1]} is not the primary (it is a "
                                 f"{role[0] if isinstance(role, list) and role else role})")
        raise problem

    def ask(self, sentinel: tuple[str, int]) -> dict:
        with Resp(*sentinel, self.password, SENTINEL_TIMEOUT, "the sentinel", bounded=True) as s:
            reply = s.call("SENTINEL", "MASTER", self.name)
        return dict(zip(reply[::2], reply[1::2])) if isinstance(reply, list) else {}

    def discover(self) -> tuple[str, int]:
        """The primary the sentinels name: the newest configuration epoch, not down for all."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(self.sentinels)) as pool:
            futures = [(s, pool.submit(self.ask, s)) for s in self.sentinels]
        views, problems = [], []
        for (host, port), future in futures:
            try:
                m = future.result()
                views.append((int(m.get("config-epoch", 0)), m["ip"], int(m["port"]),
                              set(m.get("flags", "").split(","))))
            except (StoreError, KeyError, ValueError) as e:
                problems.append(f"{host}:{port}: {e}")
        if not views:
            raise StoreError(f"no sentinel of the store answers: {'; '.join(problems)}")
        newest = max(epoch for epoch, *_ in views)
        named = [(host, port) for epoch, host, port, _ in views if epoch == newest]
        host, port = max(set(named), key=named.count)  # sentinels agree; if not, the most
        flags = set().union(*(f for e, h, pt, f in views if (e, h, pt) == (newest, host, port)))
        if "o_down" in flags:
            raise StoreError(f"the sentinels find the primary {host}:{port} down and are "
                             "choosing a new one")
        return host, port


class Notes:
    """Notes in the store: a list of JSON documents, ids from a counter."""

    def __init__(self, primary: Primary) -> None:
        self.primary = primary

    def _attempts(self):
        """One try, or for a replicated store two: the second after asking the sentinels."""
        return (1, 2) if self.primary.replicated else (1,)

    def ping(self) -> None:
        with self.primary.connect() as r:
            r.call("PING")

    def add(self, text: str, by: str) -> dict:
        for attempt in self._attempts():
            r = self.primary.connect()
            try:
                note_id = r.call("INCR", "notes:next_id")
            except StoreError as e:
                r.close()
                if e.code in MOVED and attempt == 1 and self.primary.replicated:
                    self.primary.forget()  # refused: nothing was written, try the new primary
                    continue
                raise
            with r:
                note = {"id": note_id, "text": text, "by": by,
                        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
                r.call("RPUSH", "notes", json.dumps(note))
                if self.primary.replicated:
                    self.confirm(r, note_id)
            return note
        raise StoreError("the store refused the write twice")  # not reached

    def confirm(self, r: Resp, note_id: int) -> None:
        """WAIT until enough replicas hold the note; NotReplicated if they do not in time."""
        p = self.primary
        r.sock.settimeout(p.wait_timeout_ms / 1000 + STORE_TIMEOUT)
        confirmed = r.call("WAIT", p.wait_replicas, p.wait_timeout_ms)
        if confirmed < p.wait_replicas:
            raise NotReplicated(f"note {note_id} was written on the primary {r.where} but "
                                f"{confirmed} of the {p.wait_replicas} replica(s) required "
                                f"confirmed it within {p.wait_timeout_ms} ms: it is not "
                                "acknowledged (it may still appear); retry")

    def latest(self, limit: int = LIST_LIMIT) -> tuple[list, int]:
        for attempt in self._attempts():
            try:
                with self.primary.connect() as r:
                    total = r.call("LLEN", "notes")
                    items = r.call("LRANGE", "notes", -limit, -1)
                break
            except StoreError:
                if attempt == len(self._attempts()):
                    raise
                self.primary.forget()
        if self.primary.replicated:
            if total == 0 and self.primary.highest_total > 0:
                raise StoreError(f"the primary {r.where} holds no notes, but this api saw "
                                 f"{self.primary.highest_total}: an empty store is not served")
            self.primary.highest_total = max(self.primary.highest_total, total)
        return [json.loads(item) for item in items], total


class App:
    """What the handlers share: the parameters in force and the reload record."""

    def __init__(self, p: dict) -> None:
        self.params = p
        self.primary = Primary(p)
        self.generation = 1
        self.last_reload = "ok"
        self.started = time.time()
        self.hostname = socket.gethostname()

    def notes(self) -> Notes:
        return Notes(self.primary)


class Handler(BaseHTTPRequestHandler):
    server_version = f"notes-api/{VERSION}"
    timeout = 5  # seconds a client may take to send its request

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        route = {"/healthz": self.healthz, "/api/notes": self.list_notes,
                 "/api/info": self.info}.get(self.path.split("?", 1)[0])
        if route is None:
            return self.send_json(404, {"error": f"no such resource: {self.path}"})
        route()

    def do_POST(self) -> None:  # noqa: N802
        if self.path.split("?", 1)[0] != "/api/notes":
            return self.send_json(405 if self.path.startswith("/api/info") else 404,
                                  {"error": f"cannot POST {self.path}"})
        self.add_note()

    @property
    def app(self) -> App:
        return self.server.app

    def healthz(self) -> None:
        body = {"ok": True, "store": "up", "generation": self.app.generation,
                "last_reload": self.app.last_reload, "pid": os.getpid()}
        try:
            self.app.notes().ping()
        except StoreError as e:
            body.update(ok=False, store="down", error=str(e))
        if self.app.primary.replicated:
            cached = self.app.primary.cached
            body["primary"] = f"{cached[0]}:{cached[1]}" if cached else None
        self.send_json(200 if body["ok"] else 503, body)

    def list_notes(self) -> None:
        try:
            notes, total = self.app.notes().latest()
        except StoreError as e:
            return self.send_json(503, {"error": f"the store is unavailable: {e}"})
        self.send_json(200, {"notes": notes, "total": total, "served_by": self.app.hostname})

    def add_note(self) -> None:
        text, error = self.read_text()
        if error:
            return self.send_json(400, {"error": error})
        try:
            note = self.app.notes().add(text, self.app.hostname)
        except NotReplicated as e:
            return self.send_json(503, {"error": str(e), "acknowledged": False})
        except StoreError as e:
            return self.send_json(503, {"error": f"the store is unavailable: {e}"})
        self.send_json(201, note)

    def read_text(self) -> tuple[str, str]:
        """The note text from a JSON body, or an error message for the client."""
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY:
            return "", f"send a JSON body of 1 to {MAX_BODY} bytes"
        try:
            data = json.loads(self.rfile.read(length))
        except ValueError:
            return "", "the body is not valid JSON"
        text = data.get("text") if isinstance(data, dict) else None
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
            return "", f'send {{"text": "..."}} with 1 to {MAX_TEXT} characters'
        return text, ""

    def info(self) -> None:
        p = self.app.params
        self.send_json(200, {"hostname": self.app.hostname, "version": VERSION,
                             "greeting": p["greeting"], "store": self.app.primary.label(),
                             "listen_port": p["listen_port"], "generation": self.app.generation,
                             "uptime_s": round(time.time() - self.app.started)})

    def send_json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt: str, *args) -> None:
        if not self.path.startswith("/healthz"):  # health probes every few seconds: not news
            log(f"{self.client_address[0]} {fmt % args}")


class NotesServer(ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for in-flight requests
    allow_reuse_address = True
    # socketserver's default backlog is 5: under 16 concurrent clients the kernel drops
    # SYNs, nginx sees timeouts and evicts healthy backends (measured in test_service_lb)
    request_queue_size = 128

    def __init__(self, app: App, port: int) -> None:
        super().__init__(("0.0.0.0", port), Handler)
        self.app = app


class Runner:
    """Owns the listening server; reloads on SIGHUP, stops on SIGTERM."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.server = self.serve(app.params["listen_port"])
        self.wake = threading.Event()
        self.reload_wanted = self.stop_wanted = False

    def serve(self, port: int) -> NotesServer:
        server = NotesServer(self.app, port)
        threading.Thread(target=server.serve_forever, name=f"http-{port}", daemon=True).start()
        return server

    def on_signal(self, signum, _frame) -> None:
        if signum == signal.SIGHUP:
            self.reload_wanted = True
        else:
            self.stop_wanted = True
        self.wake.set()

    def run(self) -> int:
        for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self.on_signal)
        log(f"version {VERSION} listening on :{self.app.params['listen_port']}, store "
            f"{self.app.primary.label()}")
        while not self.stop_wanted:
            self.wake.wait(1.0)
            self.wake.clear()
            if self.reload_wanted:
                self.reload_wanted = False
                self.reload()
        self.server.shutdown()
        self.server.server_close()
        log("stopped")
        return 0

    def reload(self) -> None:
        old = self.app.params
        try:
            new = params.load()
            found = problems(new)
            if found:
                raise ValueError("; ".join(found))
            if new["listen_port"] != old["listen_port"]:
                fresh = self.serve(new["listen_port"])  # bind first: a failure keeps the old
                self.server.shutdown()
                self.server.server_close()
                self.server = fresh
            self.app.params = new
            self.app.primary = Primary(new)
            self.app.last_reload = "ok"
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            log(f"reloaded parameters (generation {self.app.generation + 1}); "
                f"changed: {', '.join(changed) or 'nothing'}")
        except (params.ParamError, ValueError, OSError) as e:
            self.app.last_reload = f"failed: {e}"
            log(f"reload refused, the old parameters stay in force: {e}")
        self.app.generation += 1


def main() -> int:
    try:
        p = params.load()
    except params.ParamError as e:
        log(str(e))
        return 2
    found = problems(p)
    if found:
        log("invalid parameters: " + "; ".join(found))
        return 2
    try:
        runner = Runner(App(p))
    except OSError as e:
        log(f"cannot listen on port {p['listen_port']}: {e}")
        return 1
    return runner.run()


if __name__ == "__main__":
    sys.exit(main())
