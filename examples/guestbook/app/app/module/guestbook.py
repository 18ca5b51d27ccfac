#!/usr/bin/env python3
"""The guestbook: GET / (a page), GET /entries, POST /entries {"name", "text"}, GET /health.

    guestbook.py serve     the HTTP server (the start event runs it in the background)
    guestbook.py migrate   the schema (the one-shot job `migrate`: idempotent)
    guestbook.py check     exit 0 when the parameters are usable (config_change)

The parameters are read for every request (a new db_password is used at once, no restart);
one database connection per request: a connection made with an old password never lingers.
"""

from __future__ import annotations

import html
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2

sys.path.insert(0, "/opt/dragon_ball/lib")
from dragonball.module import params  # noqa: E402

# The job runs this file with its own command, outside the supervisor: the module's defaults
# are found from here.
os.environ.setdefault("DRAGONBALL_MODULE_DIR", os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

SCHEMA = """CREATE TABLE IF NOT EXISTS entries (
    id serial PRIMARY KEY,
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    text text NOT NULL CHECK (length(text) BETWEEN 1 AND 2000),
    at timestamptz NOT NULL DEFAULT now())"""
MAX_BODY = 8192


def connect(p: dict):
    return psycopg2.connect(host=p["db_host"], port=p["db_port"], dbname=p["db_name"],
                            user=p["db_user"], password=p["db_password"], connect_timeout=3)


class Handler(BaseHTTPRequestHandler):
    def send(self, status: int, body, kind: str = "application/json") -> None:
        data = (json.dumps(body) if kind == "application/json" else body).encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        p = params.load()
        try:
            with connect(p) as conn, conn.cursor() as cur:
                if self.path == "/health":
                    cur.execute("SELECT 1")
                    return self.send(200, {"ok": True})
                cur.execute("SELECT name, text, at FROM entries ORDER BY id DESC LIMIT 100")
                rows = [{"name": n, "text": t, "at": a.isoformat()} for n, t, a in cur]
        except psycopg2.Error as e:
            return self.send(503, {"error": f"database: {str(e).strip()}"})
        if self.path == "/entries":
            return self.send(200, {"entries": rows})
        if self.path == "/":
            items = "".join(f"<li><b>{html.escape(r['name'])}</b>: {html.escape(r['text'])}</li>"
                            for r in rows)
            return self.send(200, f"<!doctype html><title>{html.escape(p['title'])}</title>"
                             f"<h1>{html.escape(p['title'])}</h1><ul>{items}</ul>", "text/html")
        self.send(404, {"error": "no such page"})

    def do_POST(self) -> None:  # noqa: N802
        if self.path != "/entries":
            return self.send(404, {"error": "no such page"})
        size = int(self.headers.get("Content-Length") or 0)
        if not 0 < size <= MAX_BODY:
            return self.send(400, {"error": f"a body of 1 to {MAX_BODY} bytes is needed"})
        try:
            entry = json.loads(self.rfile.read(size))
            name, text = str(entry["name"]).strip(), str(entry["text"]).strip()
        except (ValueError, KeyError, TypeError):
            return self.send(400, {"error": 'send {"name": "...", "text": "..."}'})
        if not (0 < len(name) <= 100 and 0 < len(text) <= 2000):
            return self.send(400, {"error": "name: 1 to 100 characters, text: 1 to 2000"})
        try:
            with connect(params.load()) as conn, conn.cursor() as cur:
                cur.execute("INSERT INTO entries (name, text) VALUES (%s, %s)", (name, text))
        except psycopg2.Error as e:
            return self.send(503, {"error": f"database: {str(e).strip()}"})
        self.send(201, {"name": name, "text": text})

    def log_message(self, *args) -> None:
        pass


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    p = params.load()
    if command == "serve":
        ThreadingHTTPServer(("0.0.0.0", int(p["listen_port"])), Handler).serve_forever()
    if command == "migrate":
        with connect(p) as conn, conn.cursor() as cur:
            cur.execute(SCHEMA)
        print(f"guestbook: schema of {p['db_name']} on {p['db_host']} is current")
        return 0
    if command == "check":
        if not p.get("db_password"):
            print("guestbook: db_password is empty: set it (dragonball params set @shared "
                  "db_password=-)", file=sys.stderr)
            return 1
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
