"""The text of the web Service's nginx.conf (pure): upstreams, the /api/ location, the
digest location. render_conf.py resolves the backends, renders with this, tests the file
with `nginx -t` and puts it in force; its docstring says how none, one or many backend
addresses are treated.
"""

from __future__ import annotations

import hashlib
import json
import os

DIGEST_PATH = "/.dragonball/conf-digest"
TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
# Passive eviction when there are several backends: one failure takes a backend out for
# FAIL_TIMEOUT; the watcher or a notification removes it for good once its name stops resolving.
MAX_FAILS, FAIL_TIMEOUT = 1, "5s"
# A connect within a cluster takes milliseconds. A killed container sends no RST (on Swarm's
# overlay its address just stops answering), so every request sent to it before it is
# evicted waits the whole connect timeout, then goes to the next backend: 1 s keeps that
# cost small (measured on the lab: 2 s made those requests exceed a 2 s client timeout).
# A SYN dropped by a full listen queue is sent again after 1 s and then goes to another
# backend, not to the client. Retries are bounded in count and time, so a client never
# waits on a chain of dead backends.
CONNECT_TIMEOUT, PROXY_TRIES, PROXY_RETRY_WINDOW = "1s", 3, "5s"


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
            proxy_next_upstream_tries {PROXY_TRIES};
            proxy_next_upstream_timeout {PROXY_RETRY_WINDOW};
            proxy_connect_timeout {CONNECT_TIMEOUT};
            proxy_read_timeout 30s;
            proxy_set_header Host $http_host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            error_page 502 504 = @api_unavailable;
        }}

        location @api_unavailable {{
            default_type application/json;
            return 502 {body};
        }}"""


def upstream_mode(servers: list[dict]) -> str:
    """"none", "single" or "many": how the backends are balanced (module docstring)."""
    return {0: "none", 1: "single"}.get(len(servers), "many")


def upstream_block(servers: list[dict]) -> str:
    mode = upstream_mode(servers)
    if mode == "none":
        return ""
    if mode == "single":  # marking the only backend down would only lengthen an outage
        eviction, why = "max_fails=0", "the only backend: never marked down"
    else:
        eviction, why = f"max_fails={MAX_FAILS} fail_timeout={FAIL_TIMEOUT}", "evicted on failure"
    lines = [f"        server {s['server']} {eviction};  # {s['backend']}" for s in servers]
    return (f"    upstream notes_api {{\n        # {len(servers)} address(es), {why}\n"
            "        zone notes_api 64k;  # failure counts shared by the workers\n"
            + "\n".join(lines) + "\n    }\n")


def render(p: dict, servers: list[dict], missing: list[str], digest: str, run_dir: str,
           html: str) -> str:
    """nginx.conf for the parameters `p` and the resolved `servers` (`missing`: the
    backends that did not resolve); `digest` is served at DIGEST_PATH."""
    # Workers drop to www-data when the master runs as root (as in the container).
    user = "user www-data;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(f"    {name}_temp_path {run_dir}/tmp/{name};" for name in TEMP_DIRS)
    return f"""# Rendered by web/module/render_conf.py (nginx_conf.py) from the module's parameters at
# every start, config_change and backend address change. Edits here are lost.
daemon off;
{user}worker_processes 2;
pid {run_dir}/nginx.pid;
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
        root {html};
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
