"""The built-in Service's parameters and the text of its nginx.conf (pure: no I/O).

render.py resolves the backends, renders with this, tests the file with `nginx -t` and puts it
in force; nginxctl.py reloads, checks and describes nginx. docs/service.md is the user's guide.

Parameters (module/defaults.json has the built-in values; an image built FROM
dragonballservice may put its own defaults.json over it, keys it leaves out keep these):

  listen_port      the port the Service serves on (HTTP, or HTTPS with tls_cert/tls_key)
  backends         ["host:port", ...]: the default upstream, load-balanced
  routes           ["/prefix/", "/other/=host:port host:port", ...]: a path prefix to the
                   default backends, or to backends of its own; the longest prefix wins
  static_root      a folder in the image served for paths no route takes ("" none: those
                   answer a JSON 404); a route "/" and a static_root exclude each other
  resolve_interval seconds between re-resolving the backends' names (0: notifications only)
  connect_timeout  how long to wait for a backend to accept ("1s"; nginx units ms, s, m)
  read_timeout     how long a backend may take to answer, and between two reads ("60s")
  body_size        the largest request body ("1m", "0": no limit)
  health_path      answered 200 by nginx itself: the Service's own health (status action)
  headers          ["Name: value", ...] sent to every backend; a name the Service sets
                   itself (Host, X-Forwarded-*) is replaced, never sent twice
  tls_cert         PEM certificate chain (secret parameter, e.g. params set NAME tls_cert=@F);
  tls_key          with tls_key, listen_port speaks TLS only (1.2 and 1.3)

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
import re
from dataclasses import dataclass

DEFAULTS = {
    "listen_port": 8080, "backends": [], "routes": ["/"], "static_root": "",
    "resolve_interval": 5, "connect_timeout": "1s", "read_timeout": "60s", "body_size": "1m",
    "health_path": "/.dragonball/health", "headers": [], "tls_cert": "", "tls_key": "",
}
DIGEST_PATH = "/.dragonball/conf-digest"
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
MAX_ROUTES, MAX_HEADERS = 64, 32

BACKEND = re.compile(r"^(?=.{1,253}:)[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?:([0-9]{1,5})$")
PREFIX = re.compile(r"^/[A-Za-z0-9._~/-]{0,200}$")
HEALTH = re.compile(r"^/[A-Za-z0-9._~/-]{1,200}$")
DURATION = re.compile(r"^[0-9]{1,6}(ms|s|m)?$")
SIZE = re.compile(r"^[0-9]{1,9}[kKmMgG]?$")
STATIC = re.compile(r"^/[A-Za-z0-9._/-]{1,200}$")
HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
HEADER_VALUE = re.compile(r"^[\x20-\x7e]{0,1024}$")  # printable ASCII; quoted, no variables
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


@dataclass(frozen=True)
class Route:
    """A path prefix and the backends it is balanced over ("default": the `backends`)."""

    prefix: str
    backends: tuple[str, ...]
    own: bool  # backends of its own ("/x/=a:1 b:2"), not the default ones


def settings(p: dict) -> dict:
    """The built-in defaults under the parameters in force (a key set to null is absent)."""
    return {**DEFAULTS, **{k: v for k, v in p.items() if v is not None}}


def _is_int(value, low: int, high: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and low <= value <= high


def _backend_problems(where: str, backends) -> list[str]:
    found = []
    for item in backends:
        match = BACKEND.match(item) if isinstance(item, str) else None
        if not match or not 1 <= int(match.group(2)) <= 65535:
            found.append(f'{where}: {item!r} is not "host:port" (port 1-65535)')
    return found


def parse_routes(p: dict) -> tuple[list[Route], list[str]]:
    """(routes, problems) of the `routes` parameter; the default backends from `backends`."""
    routes, found, seen = [], [], set()
    raw = p.get("routes")
    if not isinstance(raw, list) or len(raw) > MAX_ROUTES:
        return [], [f'routes must be a list of at most {MAX_ROUTES} "/prefix/" or '
                     f'"/prefix/=host:port ..." strings, got {raw!r}']
    default = tuple(dict.fromkeys(p["backends"])) if isinstance(p.get("backends"), list) else ()
    for item in raw:
        if not isinstance(item, str):
            found.append(f"routes: {item!r} is not a string")
            continue
        prefix, has_own, rest = item.partition("=")
        prefix = prefix.strip()
        if not PREFIX.match(prefix):
            found.append(f"routes: {item!r}: the prefix must start with / and hold only "
                         "letters, digits and . _ ~ / -")
            continue
        if prefix in seen:
            found.append(f"routes: the prefix {prefix!r} is given twice")
            continue
        seen.add(prefix)
        own = tuple(dict.fromkeys(rest.split())) if has_own else ()
        if has_own and not own:
            found.append(f"routes: {item!r} names no backend after '='")
            continue
        found += _backend_problems(f"routes {prefix}", own)
        routes.append(Route(prefix, own if has_own else default, has_own))
    return routes, found


def problems(p: dict) -> list[str]:
    """Every problem with the parameters (already merged with `settings`), not just the first."""
    found = []
    if not _is_int(p.get("listen_port"), 1, 65535):
        found.append(f"listen_port must be an integer 1-65535, got {p.get('listen_port')!r}")
    backends = p.get("backends")
    if not isinstance(backends, list):
        found.append(f'backends must be a list of "host:port" strings, got {backends!r}')
    else:
        found += _backend_problems("backends", backends)
    routes, route_problems = parse_routes(p)
    found += route_problems
    static = p.get("static_root")
    if not isinstance(static, str) or (static and (not STATIC.match(static) or ".." in static)):
        found.append(f"static_root must be an absolute folder in the image (letters, digits, "
                     f". _ / -) or \"\" for none, got {static!r}")
    elif static and any(r.prefix == "/" for r in routes):
        found.append('routes: "/" and static_root both take every path: give the backends a '
                     'prefix (routes: ["/api/"]) or set static_root to ""')
    interval = p.get("resolve_interval")
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval < 0:
        found.append("resolve_interval must be a number of seconds >= 0 (0: off), "
                     f"got {interval!r}")
    for key in ("connect_timeout", "read_timeout"):
        value = p.get(key)
        zero = isinstance(value, str) and not re.sub(r"\D", "", value).strip("0")
        if not isinstance(value, str) or not DURATION.match(value) or zero:
            found.append(f'{key} must be a duration such as "500ms", "30s" or "2m", got {value!r}')
    size = p.get("body_size")
    if not isinstance(size, str) or not SIZE.match(size):
        found.append('body_size must be a size such as "1m", "512k" or "0" (no limit), '
                     f"got {size!r}")
    health = p.get("health_path")
    if not isinstance(health, str) or not HEALTH.match(health) or health == DIGEST_PATH:
        found.append(f"health_path must be a path such as /healthz (letters, digits, . _ ~ / -), "
                     f"got {health!r}")
    found += _header_problems(p.get("headers"))
    found += _tls_problems(p.get("tls_cert"), p.get("tls_key"))
    return found


def _header_problems(headers) -> list[str]:
    if not isinstance(headers, list) or len(headers) > MAX_HEADERS:
        return [f'headers must be a list of at most {MAX_HEADERS} "Name: value" strings, '
                f'got {headers!r}']
    found = []
    for item in headers:
        name, colon, value = item.partition(":") if isinstance(item, str) else ("", "", "")
        if not colon or not HEADER_NAME.match(name.strip()):
            found.append(f'headers: {item!r} is not "Name: value" (a name of letters, digits, -)')
        elif not HEADER_VALUE.match(value.strip()) or any(c in value for c in "'\\$"):
            found.append(f"headers: the value of {name.strip()} must be printable ASCII "
                         "without ' \\ or $")
    return found


def _tls_problems(cert, key) -> list[str]:
    if not isinstance(cert, str) or not isinstance(key, str):
        return ["tls_cert and tls_key must be PEM text (strings)"]
    if bool(cert.strip()) != bool(key.strip()):
        return ["tls_cert and tls_key go together: set both (TLS on listen_port) or neither"]
    found = []
    if cert.strip() and "-----BEGIN CERTIFICATE-----" not in cert:
        found.append("tls_cert holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    if key.strip() and not re.search(r"-----BEGIN [A-Z ]*PRIVATE KEY-----", key):
        found.append("tls_key holds no PEM private key (-----BEGIN ... PRIVATE KEY-----)")
    return found


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
