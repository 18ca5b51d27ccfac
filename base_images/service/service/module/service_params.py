"""The built-in Service's parameters: their defaults and every rule they must follow (pure).

service_conf.py turns parameters that passed `problems` into nginx.conf; render.py runs both.
docs/service.md is the user's guide.

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
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULTS = {
    "listen_port": 8080, "backends": [], "routes": ["/"], "static_root": "",
    "resolve_interval": 5, "connect_timeout": "1s", "read_timeout": "60s", "body_size": "1m",
    "health_path": "/.dragonball/health", "headers": [], "tls_cert": "", "tls_key": "",
}
# A path the Service keeps for itself (the reload checks which config the workers serve).
DIGEST_PATH = "/.dragonball/conf-digest"
MAX_ROUTES, MAX_HEADERS = 64, 32
BACKEND = re.compile(r"^(?=.{1,253}:)[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?:([0-9]{1,5})$")
PREFIX = re.compile(r"^/[A-Za-z0-9._~/-]{0,200}$")
HEALTH = re.compile(r"^/[A-Za-z0-9._~/-]{1,200}$")
DURATION = re.compile(r"^[0-9]{1,6}(ms|s|m)?$")
SIZE = re.compile(r"^[0-9]{1,9}[kKmMgG]?$")
STATIC = re.compile(r"^/[A-Za-z0-9._/-]{1,200}$")
HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
HEADER_VALUE = re.compile(r"^[\x20-\x7e]{0,1024}$")  # printable ASCII; quoted, no variables


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
