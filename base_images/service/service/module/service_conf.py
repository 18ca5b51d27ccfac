"""The text of the built-in Service's nginx.conf (pure: no I/O), from parameters that passed
service_params.problems.

render.py resolves the backends, renders with this, tests the file with `nginx -t` and puts it
in force; nginxctl.py reloads, checks and describes nginx. docs/service.md is the user's guide.

How many addresses a route's backends resolve to decides how nginx treats them:
  none   the route answers a JSON 503 naming the reason (none configured, or none resolved)
  one    `max_fails=0`: the only backend is never marked down, so when it restarts only the
         requests made while it is down fail (the JSON 502), and it serves again at once
  many   passive eviction, `max_fails=1 fail_timeout=5s` (shared by the workers: `zone`), and
         a failed attempt (`error timeout http_502 http_503`) is retried on the next backend,
         at most PROXY_TRIES tries within PROXY_RETRY_WINDOW
"""

from __future__ import annotations

import hashlib
import json
import os

from service_params import DIGEST_PATH, Route, parse_routes

TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
# Passive eviction when there are several backends: one failure takes a backend out for
# FAIL_TIMEOUT; the watcher or a notification removes it for good once its name stops resolving.
MAX_FAILS, FAIL_TIMEOUT = 1, "5s"
# A killed container sends no RST (on Swarm's overlay its address just stops answering), so
# every request sent to it before it is evicted waits the whole connect timeout, then goes to
# the next backend: 1 s keeps that cost small (measured on the lab: 2 s made those requests
# exceed a 2 s client timeout). Retries are bounded in count and time, so a client never
# waits on a chain of dead backends.
PROXY_TRIES, PROXY_RETRY_WINDOW = 3, "5s"

# What every backend is told about the request. $dragonball_host is the Host the client sent,
# port and all ("wiki.site:8080": Debian's nginx `$host` drops the port, which broke an app's
# redirects), or host:port when the client sent none.
BUILT_IN_HEADERS = {
    "Host": "$dragonball_host",
    "X-Real-IP": "$remote_addr",
    "X-Forwarded-For": "$proxy_add_x_forwarded_for",
    "X-Forwarded-Proto": "$scheme",
    "X-Forwarded-Host": "$dragonball_host",
    "X-Forwarded-Port": "$server_port",
    "Upgrade": "$http_upgrade",                # WebSocket and other upgrades pass through
    "Connection": "$dragonball_connection",
}


def headers_for(p: dict) -> dict[str, str]:
    """Header name -> nginx value sent to the backends: built-in ones, replaced by `headers`."""
    chosen = dict(BUILT_IN_HEADERS)
    for item in p.get("headers") or []:
        name, _, value = item.partition(":")
        for existing in [k for k in chosen if k.lower() == name.strip().lower()]:
            del chosen[existing]
        chosen[name.strip()] = quote(value.strip())
    return chosen


def quote(text: str) -> str:
    """`text` as a single-quoted nginx string."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def json_for_nginx(body: dict) -> str:
    return quote(json.dumps(body))


def route_servers(route: Route, servers: list[dict], missing: list[str]):
    """(the servers, the missing backends) of one route from the resolution of every name."""
    mine = set(route.backends)
    return ([s for s in servers if s["backend"] in mine],
            [b for b in route.backends if b in missing])


def upstream_mode(servers: list[dict]) -> str:
    """"none", "single" or "many": how a route's backends are balanced (module docstring)."""
    return {0: "none", 1: "single"}.get(len(servers), "many")


def upstream_names(routes: list[Route]) -> dict[tuple[str, ...], str]:
    """One upstream per distinct set of backends, named in route order."""
    names: dict[tuple[str, ...], str] = {}
    for route in routes:
        names.setdefault(route.backends, f"backends_{len(names)}")
    return names


def upstream_block(name: str, servers: list[dict]) -> str:
    mode = upstream_mode(servers)
    if mode == "none":
        return ""
    if mode == "single":  # marking the only backend down would only lengthen an outage
        eviction, why = "max_fails=0", "the only backend: never marked down"
    else:
        eviction, why = f"max_fails={MAX_FAILS} fail_timeout={FAIL_TIMEOUT}", "evicted on failure"
    lines = [f"        server {s['server']} {eviction};  # {s['backend']}" for s in servers]
    return (f"    upstream {name} {{\n        # {len(servers)} address(es), {why}\n"
            f"        zone {name} 64k;  # failure counts shared by the workers\n"
            + "\n".join(lines) + "\n    }\n")


def route_location(p: dict, route: Route, upstream: str, servers: list[dict],
                   missing: list[str]) -> str:
    if not servers:
        reason = ("no backend is configured" if not route.backends else
                  "no backend could be resolved: " + ", ".join(missing))
        body = json_for_nginx({"error": reason, "backends": list(route.backends)})
        return f"""        location {route.prefix} {{
            default_type application/json;
            return 503 {body};
        }}"""
    body = json_for_nginx({"error": "no backend answered", "route": route.prefix,
                           "backends": list(route.backends)})
    named = "@unavailable_" + hashlib.sha256(route.prefix.encode()).hexdigest()[:8]
    headers = "\n".join(f"            proxy_set_header {name} {value};"
                        for name, value in headers_for(p).items())
    return f"""        location {route.prefix} {{
            proxy_pass http://{upstream};
            proxy_http_version 1.1;
            proxy_next_upstream error timeout http_502 http_503;
            proxy_next_upstream_tries {PROXY_TRIES};
            proxy_next_upstream_timeout {PROXY_RETRY_WINDOW};
            proxy_connect_timeout {p['connect_timeout']};
            proxy_read_timeout {p['read_timeout']};
            proxy_send_timeout {p['read_timeout']};
{headers}
            error_page 502 504 = {named};
        }}

        location {named} {{
            default_type application/json;
            return 502 {body};
        }}"""


def root_location(p: dict, routes: list[Route]) -> str:
    """Paths no route takes: the static files, or a JSON 404 naming the routes."""
    if any(r.prefix == "/" for r in routes):
        return ""
    if p["static_root"]:
        return f"""        location / {{
            root {p['static_root']};
            index index.html;
            try_files $uri $uri/ =404;
        }}"""
    body = json_for_nginx({"error": "no route takes this path",
                           "routes": [r.prefix for r in routes]})
    return f"""        location / {{
            default_type application/json;
            return 404 {body};
        }}"""


def listen_lines(p: dict, tls: tuple[str, str] | None) -> str:
    if tls is None:
        return f"        listen {p['listen_port']};"
    cert, key = tls
    return f"""        listen {p['listen_port']} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:dragonball_tls:1m;"""


def render(p: dict, servers: list[dict], missing: list[str], digest: str, run_dir: str,
           tls: tuple[str, str] | None = None) -> str:
    """nginx.conf for the parameters `p` (merged, checked) and the resolved `servers` (one
    {"backend", "server"} per address; `missing`: the backends that did not resolve); `tls`:
    the certificate's and key's files; `digest` is served at DIGEST_PATH."""
    routes, _ = parse_routes(p)
    names = upstream_names(routes)
    upstreams = "".join(upstream_block(name, route_servers(Route("", key, True), servers,
                                                            missing)[0])
                        for key, name in names.items())
    locations = "\n\n".join(
        route_location(p, r, names[r.backends], *route_servers(r, servers, missing))
        for r in sorted(routes, key=lambda r: r.prefix))
    # Workers drop to www-data when the master runs as root (as in the container).
    user = "user www-data;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(f"    {name}_temp_path {run_dir}/tmp/{name};" for name in TEMP_DIRS)
    return f"""# Rendered by the Service's module/render.py (service_conf.py) from its parameters at
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
        image/png png;
        image/x-icon ico;
        text/plain txt;
    }}
    default_type application/octet-stream;
    sendfile on;
    server_tokens off;
    client_max_body_size {p['body_size']};
{temp}
    # Health probes come from loopback every few seconds: keep them out of the access log.
    map $remote_addr $dragonball_loggable {{
        127.0.0.1 0;
        default 1;
    }}
    map $http_host $dragonball_host {{
        "" $host:$server_port;
        default $http_host;
    }}
    map $http_upgrade $dragonball_connection {{
        default upgrade;
        "" close;
    }}
    access_log /dev/stdout combined if=$dragonball_loggable;

{upstreams}
    server {{
{listen_lines(p, tls)}

{root_location(p, routes)}

{locations}

        location = {p['health_path']} {{
            access_log off;
            default_type text/plain;
            return 200 "ok\\n";
        }}

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
    """What the config in force depends on: the parameters (TLS material by its hash) and the
    addresses the backends resolved to."""
    shown = {k: v for k, v in p.items() if k not in ("tls_cert", "tls_key")}
    tls = hashlib.sha256(f"{p.get('tls_cert')}\0{p.get('tls_key')}".encode()).hexdigest()
    key = json.dumps([shown, tls, servers, missing], sort_keys=True, default=str)
    return hashlib.sha256(key.encode()).hexdigest()[:16]
