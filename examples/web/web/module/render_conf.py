#!/usr/bin/env python3
"""Render nginx.conf for the web Service from its parameters, test it, put it in force.

    render_conf.py render    validate the parameters in force, resolve the backends, write
                             $RUN_DIR/nginx.conf after `nginx -t` accepted it (a refused
                             config leaves the old one in place and exits 1)
    render_conf.py refresh   resolve the rendered backends again now and put a new config in
                             force when their addresses changed (a notification: a backend
                             became healthy, unhealthy, stopped or was scaled); no reload
    render_conf.py watch     every `resolve_interval` seconds, resolve the backends again and
                             reload nginx when their addresses changed (tasks.<name> in Swarm)

How many addresses the backends resolve to decides how nginx treats them:
  none   /api/ answers a JSON 503 naming the reason (none configured, or none resolved)
  one    `max_fails=0`: the only backend is never marked down, so when it restarts only the
         requests made while it is down fail (the JSON 502), and it serves again at once
  many   passive eviction, `max_fails=1 fail_timeout=5s` (shared by the workers: `zone`), and
         a failed attempt (`error timeout http_502 http_503`) is retried on the next backend,
         at most PROXY_TRIES tries within PROXY_RETRY_WINDOW (nginx_conf.py)

Backend names are resolved here, not by nginx: nginx refuses a whole config when one upstream
name does not resolve, which would take the site down for one missing backend. The state of
the last render (backends, addresses, digest) is kept in $RUN_DIR/state.json for the info and
reload scripts; the parameters rendered are kept in $RUN_DIR/params.json for the watcher.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, "/opt/dragon_ball/lib")  # the base image's library (dragonballbase)
from dragonball.module import params  # noqa: E402

import nginx_conf  # noqa: E402  (this folder: the config's text)

MODULE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_DIR = os.environ.get("NOTES_WEB_RUN_DIR", "/run/notes-web")
CONF = os.path.join(RUN_DIR, "nginx.conf")
STATE = os.path.join(RUN_DIR, "state.json")
SNAPSHOT = os.path.join(RUN_DIR, "params.json")
LOCK = os.path.join(RUN_DIR, "render.lock")
HTML = os.path.join(MODULE_DIR, "module", "html")
BACKEND = re.compile(r"^(?=.{1,253}:)[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?:([0-9]{1,5})$")
DIGEST_PATH = nginx_conf.DIGEST_PATH


class RenderError(Exception):
    """The parameters or the rendered config were refused; the old config stays."""


class ResolveUnsure(OSError):
    """A backend name could not be looked up for now (DNS unreachable): not proof it is gone."""


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
    for name in nginx_conf.TEMP_DIRS:
        os.makedirs(os.path.join(RUN_DIR, "tmp", name), exist_ok=True)
    servers, missing = resolve(p["backends"])
    digest = nginx_conf.digest_of(p, servers, missing)
    candidate = CONF + ".new"
    write_atomic(candidate, nginx_conf.render(p, servers, missing, digest, RUN_DIR, HTML))
    try:
        nginx_test(candidate)
    except RenderError:
        os.unlink(candidate)
        raise
    state = {"listen_port": p["listen_port"], "backends": p["backends"], "servers": servers,
             "missing": missing, "mode": nginx_conf.upstream_mode(servers), "digest": digest,
             "rendered_at": time.time()}
    for path in (CONF, STATE, SNAPSHOT):  # the previous set, for a failed reload (copied:
        if os.path.exists(path):          # a reader never finds the file missing)
            shutil.copyfile(path, path + ".prev")
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
    how = ("the only one, never marked down" if len(state["servers"]) == 1 else
           f"{len(state['servers'])} balanced, a failing one evicted for {nginx_conf.FAIL_TIMEOUT}")
    return f"upstreams {where} ({how}){gone}"


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


def refresh() -> dict | None:
    """Re-resolve the parameters last rendered; the new state when the addresses changed and
    the new config is in force (not yet loaded by nginx), None when nothing changed.

    Raises ResolveUnsure (nothing changed then) when DNS cannot answer for now.
    """
    p = params.read_file(SNAPSHOT)
    with open(STATE, encoding="utf-8") as f:
        old = json.load(f)
    servers, missing = resolve(p["backends"], strict=True)
    if nginx_conf.digest_of(p, servers, missing) == old["digest"]:
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
    print(f"web: notified ({note}); resolving the backends again")
    try:
        with Locked():
            state = refresh()
    except (OSError, ValueError, KeyError, params.ParamError, RenderError) as e:
        print(f"web: cannot re-resolve the backends ({e}); the config in force is unchanged",
              file=sys.stderr)
        return 1
    if state is None:
        print("web: backend addresses unchanged")
    else:
        print(f"web: backend addresses changed, rendered {CONF}: {describe(state)}")
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
        print(f"web: nginx -s reload failed: {done.stderr.strip()}", file=sys.stderr, flush=True)
    else:
        print(f"web: backend addresses changed, nginx reloaded: {describe(state)}", flush=True)


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
            print(f"web: backend refresh failed, config unchanged: {e}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    commands = {"render": cmd_render, "refresh": cmd_refresh, "watch": cmd_watch}
    if len(argv) != 1 or argv[0] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    return commands[argv[0]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
