#!/usr/bin/env python3
"""Render the Service's nginx.conf from its parameters, test it, put it in force.

    render.py render    validate the parameters in force, resolve the backends, write
                        $RUN_DIR/nginx.conf after `nginx -t` accepted it (a refused
                        config leaves the old one in place and exits 1)
    render.py refresh   resolve the rendered backends again now and put a new config in
                        force when their addresses changed (a notification: a backend
                        became healthy, unhealthy, stopped or was scaled); no reload
    render.py watch     every `resolve_interval` seconds, resolve the backends again and
                        reload nginx when their addresses changed (tasks.<name> in Swarm)

The parameters and their rules: service_params.py; how none, one or many backend addresses
are treated: service_conf.py.
Backend names are resolved here, not by nginx: nginx refuses a whole config when one upstream
name does not resolve, which would take the site down for one missing backend. The state of
the last render (routes, addresses, digest) is kept in $RUN_DIR/state.json for the info and
reload scripts; the parameters rendered are kept in $RUN_DIR/params.json (0600: it may hold
the TLS key) for the watcher. TLS material goes to $RUN_DIR/tls/ (0700), named by its hash.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, "/opt/dragon_ball/lib")  # the base image's library (dragonballbase)
from dragonball.module import params  # noqa: E402

import service_conf as conf  # noqa: E402  (this folder: the config's text)
import service_params as rules  # noqa: E402  (this folder: the parameters' defaults and rules)

RUN_DIR = os.environ.get("DRAGONBALL_SERVICE_RUN_DIR", "/run/dragonball-service")
CONF = os.path.join(RUN_DIR, "nginx.conf")
STATE = os.path.join(RUN_DIR, "state.json")
SNAPSHOT = os.path.join(RUN_DIR, "params.json")
LOCK = os.path.join(RUN_DIR, "render.lock")
TLS_DIR = os.path.join(RUN_DIR, "tls")
DIGEST_PATH = conf.DIGEST_PATH
NAME = os.environ.get("DRAGONBALL_MODULE") or "service"


class RenderError(Exception):
    """The parameters or the rendered config were refused; the old config stays."""


class ResolveUnsure(OSError):
    """A backend name could not be looked up for now (DNS unreachable): not proof it is gone."""


def resolve(backends: list[str], strict: bool = False) -> tuple[list[dict], list[str]]:
    """([{"backend", "server"}...] sorted, [unresolvable backends]) for host:port strings.

    `strict`: a temporary lookup failure raises ResolveUnsure instead of counting the backend
    as missing (the watcher then keeps the config in force rather than drop a live backend).
    """
    servers, missing = {}, []
    for backend in dict.fromkeys(backends):  # unique, order kept
        host, port = backend.rsplit(":", 1)
        try:
            infos = socket.getaddrinfo(host, int(port), socket.AF_INET, socket.SOCK_STREAM)
        except OSError as e:
            if strict and getattr(e, "errno", None) == socket.EAI_AGAIN:
                raise ResolveUnsure(f"cannot look up {host} for now: {e}") from e
            missing.append(backend)
            continue
        for ip in sorted({info[4][0] for info in infos}):
            servers.setdefault(f"{ip}:{port}", backend)  # one line per address
    return [{"backend": b, "server": s} for s, b in servers.items()], missing


def nginx_test(path: str) -> None:
    """Raise RenderError with nginx's own words when it refuses the file."""
    done = subprocess.run(["nginx", "-t", "-q", "-c", path], capture_output=True, text=True)
    if done.returncode != 0:
        raise RenderError("nginx -t refused the new config:\n" +
                          (done.stderr or done.stdout).strip())


def write_atomic(path: str, text: str, mode: int = 0o644) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp.")
    os.fchmod(fd, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def all_backends(p: dict) -> list[str]:
    """Every backend name the routes use, once each, in order."""
    routes, _ = rules.parse_routes(p)
    return list(dict.fromkeys(b for r in routes for b in r.backends))


def write_tls(p: dict) -> tuple[str, str] | None:
    """The certificate and key as files under TLS_DIR named by their hash (so the config in
    force keeps its own files until the new one is accepted); None without TLS."""
    if not p["tls_cert"].strip():
        return None
    os.makedirs(TLS_DIR, mode=0o700, exist_ok=True)
    os.chmod(TLS_DIR, 0o700)
    name = hashlib.sha256(f"{p['tls_cert']}\0{p['tls_key']}".encode()).hexdigest()[:16]
    paths = (os.path.join(TLS_DIR, f"{name}.crt"), os.path.join(TLS_DIR, f"{name}.key"))
    for path, text in zip(paths, (p["tls_cert"], p["tls_key"])):
        write_atomic(path, text.strip() + "\n", mode=0o600)
    return paths


def forget_old_tls() -> None:
    """Remove TLS files neither the config in force nor the previous one names."""
    keep = ""
    for path in (CONF, CONF + ".prev"):
        try:
            with open(path, encoding="utf-8") as f:
                keep += f.read()
        except OSError:
            pass
    for entry in os.listdir(TLS_DIR) if os.path.isdir(TLS_DIR) else ():
        if os.path.join(TLS_DIR, entry) not in keep:
            os.unlink(os.path.join(TLS_DIR, entry))


def route_states(p: dict, servers: list[dict], missing: list[str]) -> list[dict]:
    routes, _ = rules.parse_routes(p)
    found = []
    for route in sorted(routes, key=lambda r: r.prefix):
        mine, gone = conf.route_servers(route, servers, missing)
        found.append({"prefix": route.prefix, "backends": list(route.backends),
                      "servers": mine, "missing": gone, "mode": conf.upstream_mode(mine)})
    return found


def put_in_force(p: dict) -> dict:
    """Render, test, install; return the new state. Raises RenderError, changes nothing then."""
    p = rules.settings(p)
    found = rules.problems(p)
    if found:
        raise RenderError("invalid parameters:\n" + "\n".join(f"  - {x}" for x in found))
    for name in conf.TEMP_DIRS:
        os.makedirs(os.path.join(RUN_DIR, "tmp", name), exist_ok=True)
    servers, missing = resolve(all_backends(p))
    digest = conf.digest_of(p, servers, missing)
    candidate = CONF + ".new"
    write_atomic(candidate, conf.render(p, servers, missing, digest, RUN_DIR, write_tls(p)))
    try:
        nginx_test(candidate)
    except RenderError:
        os.unlink(candidate)
        forget_old_tls()
        raise
    default = [s for s in servers if s["backend"] in set(p["backends"])]
    state = {"listen_port": p["listen_port"], "backends": p["backends"], "servers": default,
             "missing": [b for b in p["backends"] if b in missing],
             "mode": conf.upstream_mode(default), "routes": route_states(p, servers, missing),
             "tls": bool(p["tls_cert"].strip()), "health_path": p["health_path"],
             "static_root": p["static_root"], "digest": digest, "rendered_at": time.time()}
    for path in (CONF, STATE, SNAPSHOT):  # the previous set, for a failed reload (copied:
        if os.path.exists(path):          # a reader never finds the file missing)
            shutil.copyfile(path, path + ".prev")
    os.replace(candidate, CONF)
    write_atomic(STATE, json.dumps(state))
    write_atomic(SNAPSHOT, json.dumps(p), mode=0o600)
    forget_old_tls()
    return state


def describe_route(route: dict) -> str:
    where = route["prefix"]
    if not route["servers"]:
        if not route["backends"]:
            return f"{where} answers 503: no backend is configured"
        return f"{where} answers 503: no backend could be resolved ({', '.join(route['missing'])})"
    to = ", ".join(f"{s['backend']} -> {s['server']}" for s in route["servers"])
    gone = f"; unresolved: {', '.join(route['missing'])}" if route["missing"] else ""
    how = ("the only one, never marked down" if len(route["servers"]) == 1 else
           f"{len(route['servers'])} balanced, a failing one evicted for {conf.FAIL_TIMEOUT}")
    return f"{where}: upstreams {to} ({how}){gone}"


def describe(state: dict) -> str:
    return "; ".join(describe_route(r) for r in state.get("routes", [])) or "no route"


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
        print(f"{NAME}: {e}\n{NAME}: the config in force is unchanged", file=sys.stderr)
        return 1
    print(f"{NAME}: rendered {CONF}: port {state['listen_port']}, {describe(state)}")
    return 0


def refresh() -> dict | None:
    """Re-resolve the parameters last rendered; the new state when the addresses changed and
    the new config is in force (not yet loaded by nginx), None when nothing changed.

    Raises ResolveUnsure (nothing changed then) when DNS cannot answer for now.
    """
    p = params.read_file(SNAPSHOT)
    with open(STATE, encoding="utf-8") as f:
        old = json.load(f)
    servers, missing = resolve(all_backends(p), strict=True)
    if conf.digest_of(p, servers, missing) == old["digest"]:
        return None
    return put_in_force(p)


def notification_summary(path: str | None) -> str:
    """One line about the notification that triggered a refresh, for the log only: its
    content never changes what is rendered (a backend's state is read from DNS)."""
    try:
        with open(path or "", encoding="utf-8") as f:
            n = json.load(f)
        replicas = n.get("replicas") or {}
        return (f"seq {n.get('seq')}: {n.get('service')} {n.get('event')}, running "
                f"{replicas.get('running')} of {replicas.get('desired')} desired")
    except (OSError, ValueError, AttributeError) as e:
        return f"no readable notification ({e})"


def cmd_refresh() -> int:
    """The notify event: the parameters are unchanged; only the addresses may have moved."""
    note = notification_summary(os.environ.get("DRAGONBALL_NOTIFICATION_FILE"))
    print(f"{NAME}: notified ({note}); resolving the backends again")
    try:
        with Locked():
            state = refresh()
    except (OSError, ValueError, KeyError, params.ParamError, RenderError) as e:
        print(f"{NAME}: cannot re-resolve the backends ({e}); the config in force is unchanged",
              file=sys.stderr)
        return 1
    if state is None:
        print(f"{NAME}: backend addresses unchanged")
    else:
        print(f"{NAME}: backend addresses changed, rendered {CONF}: {describe(state)}")
    return 0


def refresh_once() -> None:
    """Re-resolve the rendered parameters; reload nginx when the addresses changed."""
    with Locked():
        if resolve_interval() <= 0:  # switched off by a config_change since the last round
            return
        state = refresh()
        if state is None:
            return
        done = subprocess.run(["nginx", "-s", "reload", "-c", CONF], capture_output=True, text=True)
    if done.returncode != 0:
        print(f"{NAME}: nginx -s reload failed: {done.stderr.strip()}", file=sys.stderr, flush=True)
    else:
        print(f"{NAME}: backend addresses changed, nginx reloaded: {describe(state)}", flush=True)


def resolve_interval() -> float:
    """The interval in force now (0: off); read each round, so a config_change applies."""
    try:
        return float(params.read_file(SNAPSHOT).get("resolve_interval", 5))
    except (params.ParamError, ValueError, TypeError):
        return 5.0


def cmd_watch() -> int:
    while True:
        interval = resolve_interval()
        time.sleep(interval if interval > 0 else 1.0)
        try:
            refresh_once()
        except (OSError, ValueError, KeyError, params.ParamError, RenderError) as e:
            print(f"{NAME}: backend refresh failed, config unchanged: {e}", file=sys.stderr,
                  flush=True)


def main(argv: list[str]) -> int:
    commands = {"render": cmd_render, "refresh": cmd_refresh, "watch": cmd_watch}
    if len(argv) != 1 or argv[0] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    return commands[argv[0]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
