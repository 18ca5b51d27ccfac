#!/usr/bin/env python3
"""notes-api: a small JSON HTTP API that keeps notes in the store (Redis), stdlib only.

    GET  /healthz      200 {"ok": true, "store": "up", ...}; 503 when the store does not answer
    GET  /api/notes    the latest notes, oldest first: {"notes": [...], "total": N}
    POST /api/notes    {"text": "..."} -> 201 and the stored note
    GET  /api/info     {"hostname", "version", "greeting", ...}

Parameters (module/defaults.json): store_host, store_port, store_password, listen_port,
greeting. SIGHUP re-reads them from $DRAGONBALL_PARAMS_FILE (a new listen_port is bound before
the old one is closed; a bad set is refused and the old one kept). SIGTERM lets in-flight
requests finish, then exits 0.
"""

from __future__ import annotations

import json
import os
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
    return found


class StoreError(Exception):
    """The store did not answer, or answered with an error."""


class Resp:
    """A minimal RESP2 client: one connection, one command at a time."""

    def __init__(self, host: str, port: int, password: str) -> None:
        try:
            self.sock = socket.create_connection((host, port), STORE_TIMEOUT)
        except OSError as e:
            raise StoreError(f"cannot reach the store at {host}:{port}: {e}") from e
        self.reader = self.sock.makefile("rb")
        if password:
            self.call("AUTH", password)

    def __enter__(self) -> "Resp":
        return self

    def __exit__(self, *exc) -> None:
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
            raise StoreError(f"the store connection failed: {e}") from e

    def _reply(self):
        line = self.reader.readline()
        if not line.endswith(b"\r\n"):
            raise StoreError("the store closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise StoreError(f"the store answered: {rest.decode(errors='replace')}")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self.reader.read(size + 2)[:-2].decode("utf-8")
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self._reply() for _ in range(size)]
        raise StoreError(f"unexpected reply from the store: {line[:40]!r}")


class Notes:
    """Notes in the store: a list of JSON documents, ids from a counter."""

    def __init__(self, p: dict) -> None:
        self.address = (p["store_host"], p["store_port"], p["store_password"])

    def ping(self) -> None:
        with Resp(*self.address) as r:
            r.call("PING")

    def add(self, text: str, by: str) -> dict:
        with Resp(*self.address) as r:
            note = {"id": r.call("INCR", "notes:next_id"), "text": text, "by": by,
                    "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            r.call("RPUSH", "notes", json.dumps(note))
        return note

    def latest(self, limit: int = LIST_LIMIT) -> tuple[list, int]:
        with Resp(*self.address) as r:
            total = r.call("LLEN", "notes")
            items = r.call("LRANGE", "notes", -limit, -1)
        return [json.loads(item) for item in items], total


class App:
    """What the handlers share: the parameters in force and the reload record."""

    def __init__(self, p: dict) -> None:
        self.params = p
        self.generation = 1
        self.last_reload = "ok"
        self.started = time.time()
        self.hostname = socket.gethostname()

    def notes(self) -> Notes:
        return Notes(self.params)


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
                             "greeting": p["greeting"], "store": f"{p['store_host']}:{p['store_port']}",
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
            f"{self.app.params['store_host']}:{self.app.params['store_port']}")
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
