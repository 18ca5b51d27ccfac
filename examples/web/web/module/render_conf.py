#!/usr/bin/env python3
"""Render nginx.conf for the web Service from its parameters, test it, put it in force.

    render_conf.py render    validate the parameters in force, resolve the backends, write
                             $RUN_DIR/nginx.conf after `nginx -t` accepted it (a refused
                             config leaves the old one in place and exits 1)
    render_conf.py watch     every `resolve_interval` seconds, resolve the backends again and
                             reload nginx when their addresses changed (tasks.<name> in Swarm)

Backend names are resolved here, not by nginx: nginx refuses a whole config when one upstream
name does not resolve, which would take the site down for one missing backend. The state of
the last render (backends, addresses, digest) is kept in $RUN_DIR/state.json for the info and
reload scripts; the parameters rendered are kept in $RUN_DIR/params.json for the watcher.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, "/opt/dragon_ball/lib")  # the base image's library (dragonballbase)
from dragonball.module import params  # noqa: E402

MODULE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_DIR = os.environ.get("NOTES_WEB_RUN_DIR", "/run/notes-web")
CONF = os.path.join(RUN_DIR, "nginx.conf")
STATE = os.path.join(RUN_DIR, "state.json")
SNAPSHOT = os.path.join(RUN_DIR, "params.json")
LOCK = os.path.join(RUN_DIR, "render.lock")
HTML = os.path.join(MODULE_DIR, "module", "html")
DIGEST_PATH = "/.dragonball/conf-digest"
BACKEND = re.compile(r"^(?=.{1,253}:)[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?:([0-9]{1,5})$")
TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


class RenderError(Exception):
    """The parameters or the rendered config were refused; the old config stays."""


def problems(p: dict) -> list[str]:
    """Every problem with the parameters, not just the first."""
    found = []
    port = p.get("listen_port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        found.append(f"listen_port must be an integer 1-65535, got {port!r}")
    backends = p.get("backends")
    if not isinstance(backends, list):
        found.append(f'backends must be a list of "host:port" strings, got {backends!r}')
    else:
        for item in backends:
            match = BACKEND.match(item) if isinstance(item, str) else None
            if not match or not 1 <= int(match.group(2)) <= 65535:
                found.append(f'backends: {item!r} is not "host:port" (port 1-65535)')
    interval = p.get("resolve_interval")
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval < 0:
        found.append(f"resolve_interval must be a number of seconds >= 0 (0: off), got {interval!r}")
    return found


def resolve(backends: list[str]) -> tuple[list[dict], list[str]]:
    """([{"backend", "server"}...] sorted, [unresolvable backends]) for host:port strings."""
    servers, missing = {}, []
    for backend in dict.fromkeys(backends):  # unique, order kept
        host, port = backend.rsplit(":", 1)
        try:
            infos = socket.getaddrinfo(host, int(port), socket.AF_INET, socket.SOCK_STREAM)
        except OSError:
            missing.append(backend)
            continue
        for ip in sorted({info[4][0] for info in infos}):
            servers.setdefault(f"{ip}:{port}", backend)  # one line per address
    return [{"backend": b, "server": s} for s, b in servers.items()], missing


def json_for_nginx(body: dict) -> str:
    """A JSON body as a single-quoted nginx string."""
    return "'" + json.dumps(body).replace("\\", "\\\\").replace("'", "\\'") + "'"


def api_location(backends: list[str], servers: list[dict], missing: list[str]) -> str:
    if not servers:
        reason = ("no backend is configured" if not backends else
                  "no backend could be resolved: " + ", ".join(missing))
        body = json_for_nginx({"error": reason, "backends": backends})
        return f"""        location /api/ {{
            default_type application/json;
            return 503 {body};
        }}"""
    body = json_for_nginx({"error": "no api backend answered", "backends": backends})
    return f"""        location /api/ {{
            proxy_pass http://notes_api;
            proxy_next_upstream error timeout http_502 http_503;
            proxy_connect_timeout 2s;
            proxy_read_timeout 30s;
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            error_page 502 504 = @api_unavailable;
        }}

        location @api_unavailable {{
            default_type application/json;
            return 502 {body};
        }}"""


def upstream_block(servers: list[dict]) -> str:
    if not servers:
        return ""
    lines = [f"        server {s['server']} max_fails=1 fail_timeout=5s;  # {s['backend']}"
             for s in servers]
    return "    upstream notes_api {\n" + "\n".join(lines) + "\n    }\n"


def render(p: dict, servers: list[dict], missing: list[str], digest: str) -> str:
    # Workers drop to www-data when the master runs as root (as in the container).
    user = "user www-data;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(f"    {name}_temp_path {RUN_DIR}/tmp/{name};" for name in TEMP_DIRS)
    return f"""# Rendered by web/module/render_conf.py from the module's parameters at every start,
# config_change and backend address change. Edits here are lost.
daemon off;
{user}worker_processes 2;
pid {RUN_DIR}/nginx.pid;
error_log stderr warn;

events {{
    worker_connections 1024;
}}

http {{
    types {{
        text/html html;
        text/css css;
        application/javascript js;
        application/json json;
        image/svg+xml svg;
        image/x-icon ico;
        text/plain txt;
    }}
    default_type application/octet-stream;
    sendfile on;
    server_tokens off;
{temp}
    # Health probes come from loopback every few seconds: keep them out of the access log.
    map $remote_addr $notes_loggable {{
        127.0.0.1 0;
        default 1;
    }}
    access_log /dev/stdout combined if=$notes_loggable;

{upstream_block(servers)}
    server {{
        listen {p['listen_port']};
        root {HTML};
        index index.html;

        location / {{
            try_files $uri $uri/ =404;
        }}

{api_location(p['backends'], servers, missing)}

        # Lets the reload script see which config the workers serve.
        location = {DIGEST_PATH} {{
            allow 127.0.0.1;
            deny all;
            default_type text/plain;
            return 200 '{digest}';
        }}
    }}
}}
"""


def digest_of(p: dict, servers: list[dict], missing: list[str]) -> str:
    key = json.dumps([p["listen_port"], p["backends"], servers, missing], sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def nginx_test(path: str) -> None:
    """Raise RenderError with nginx's own words when it refuses the file."""
    done = subprocess.run(["nginx", "-t", "-q", "-c", path], capture_output=True, text=True)
    if done.returncode != 0:
        raise RenderError("nginx -t refused the new config:\n" + (done.stderr or done.stdout).strip())


def write_atomic(path: str, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def put_in_force(p: dict) -> dict:
    """Render, test, install; return the new state. Raises RenderError, changes nothing then."""
    found = problems(p)
    if found:
        raise RenderError("invalid parameters:\n" + "\n".join(f"  - {x}" for x in found))
    for name in TEMP_DIRS:
        os.makedirs(os.path.join(RUN_DIR, "tmp", name), exist_ok=True)
    servers, missing = resolve(p["backends"])
    digest = digest_of(p, servers, missing)
    candidate = CONF + ".new"
    write_atomic(candidate, render(p, servers, missing, digest))
    try:
        nginx_test(candidate)
    except RenderError:
        os.unlink(candidate)
        raise
    state = {"listen_port": p["listen_port"], "backends": p["backends"], "servers": servers,
             "missing": missing, "digest": digest, "rendered_at": time.time()}
    for path in (CONF, STATE, SNAPSHOT):  # keep the previous set, for a failed reload
        if os.path.exists(path):
            os.replace(path, path + ".prev")
    os.replace(candidate, CONF)
    write_atomic(STATE, json.dumps(state))
    write_atomic(SNAPSHOT, json.dumps(p))
    return state


def describe(state: dict) -> str:
    if not state["servers"]:
        if not state["backends"]:
            return "/api/ answers 503: no backend is configured"
        return f"/api/ answers 503: no backend could be resolved ({', '.join(state['missing'])})"
    where = ", ".join(f"{s['backend']} -> {s['server']}" for s in state["servers"])
    gone = f"; unresolved: {', '.join(state['missing'])}" if state["missing"] else ""
    return f"upstreams {where}{gone}"


class Locked:
    """One renderer at a time: config_change and the watcher share $RUN_DIR."""

    def __enter__(self):
        os.makedirs(RUN_DIR, exist_ok=True)
        self.f = open(LOCK, "w")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        self.f.close()


def cmd_render() -> int:
    try:
        p = params.load()
        with Locked():
            state = put_in_force(p)
    except (params.ParamError, RenderError) as e:
        print(f"web: {e}\nweb: the config in force is unchanged", file=sys.stderr)
        return 1
    print(f"web: rendered {CONF}: port {state['listen_port']}, {describe(state)}")
    return 0


def refresh_once() -> None:
    """Re-resolve the rendered parameters; reload nginx when the addresses changed."""
    with Locked():
        p = params.read_file(SNAPSHOT)
        with open(STATE, encoding="utf-8") as f:
            old = json.load(f)
        servers, missing = resolve(p["backends"])
        if digest_of(p, servers, missing) == old["digest"]:
            return
        state = put_in_force(p)
        done = subprocess.run(["nginx", "-s", "reload", "-c", CONF], capture_output=True, text=True)
    if done.returncode != 0:
        print(f"web: nginx -s reload failed: {done.stderr.strip()}", file=sys.stderr, flush=True)
    else:
        print(f"web: backend addresses changed, nginx reloaded: {describe(state)}", flush=True)


def cmd_watch() -> int:
    while True:
        try:
            interval = float(params.read_file(SNAPSHOT).get("resolve_interval", 5))
        except params.ParamError:
            interval = 5.0
        time.sleep(interval if interval > 0 else 5.0)
        if interval > 0:
            try:
                refresh_once()
            except (OSError, ValueError, KeyError, params.ParamError, RenderError) as e:
                print(f"web: backend refresh failed, config unchanged: {e}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    commands = {"render": cmd_render, "watch": cmd_watch}
    if len(argv) != 1 or argv[0] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    return commands[argv[0]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
