#!/usr/bin/env python3
"""Control side of the Service's nginx, for the module's action scripts.

    nginxctl.py wait-ready SECS   wait until the master runs and serves the rendered config
    nginxctl.py reload            nginx -s reload, then wait until the workers serve the new
                                  config (its digest); on failure put the previous one back;
                                  nothing to do when they serve it already
    nginxctl.py status            exit 0 when the master is alive and its health_path
                                  answers 200
    nginxctl.py info              describe nginx, its port, its routes and upstreams
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import render as rc  # noqa: E402

PID_FILE = os.path.join(rc.RUN_DIR, "nginx.pid")
# Talk to our own loopback only, whatever proxy variables the environment carries. Over TLS
# the certificate is not checked: it is our own nginx on 127.0.0.1, named for the clients.
_LOOPBACK_TLS = ssl.create_default_context()
_LOOPBACK_TLS.check_hostname, _LOOPBACK_TLS.verify_mode = False, ssl.CERT_NONE
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                   urllib.request.HTTPSHandler(context=_LOOPBACK_TLS))


def say(message: str) -> None:
    print(f"{rc.NAME}: {message}", flush=True)


def get(port: int, path: str, timeout: float = 3.0) -> tuple[int, str]:
    """(status, body) of GET http(s)://127.0.0.1:PORT/PATH (https when the config in force
    speaks TLS); (0, error text) without an answer."""
    try:
        scheme = "https" if state().get("tls") else "http"
    except (OSError, ValueError):
        scheme = "http"
    try:
        with HTTP.open(f"{scheme}://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except OSError as e:
        return 0, str(e)


def state() -> dict:
    with open(rc.STATE, encoding="utf-8") as f:
        return json.load(f)


def master_pid() -> int | None:
    """The nginx master's pid when it is alive (a zombie is not)."""
    try:
        with open(PID_FILE, encoding="ascii") as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            alive = f.read().rsplit(")", 1)[1].split()[0] != "Z"
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            is_nginx = b"nginx" in f.read()
        return pid if alive and is_nginx else None
    except (OSError, ValueError, IndexError):
        return None


def accepting_workers(master: int) -> set[int]:
    """Pids of the master's workers that accept connections (not those shutting down)."""
    found = set()
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                title = f.read().rstrip(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == master and title == b"nginx: worker process":
            found.add(int(entry))
    return found


def wait_digest(port: int, digest: str, seconds: float, old_workers=frozenset(), master=0) -> bool:
    """Wait until the workers serve `digest` and none of `old_workers` still accepts."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (get(port, rc.DIGEST_PATH, timeout=1.0) == (200, digest)
                and not accepting_workers(master) & old_workers):
            return True
        time.sleep(0.2)
    return False


def wait_ready(seconds: float) -> int:
    s = state()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pid = master_pid()
        if pid and wait_digest(s["listen_port"], s["digest"], 0.5):
            say(f"nginx serving on port {s['listen_port']} (master pid {pid}); {rc.describe(s)}")
            return 0
        time.sleep(0.2)
    say(f"nginx did not serve on port {s['listen_port']} within {seconds:.0f} s; "
        "its log lines are above")
    return 1


def signal_reload() -> str:
    done = subprocess.run(["nginx", "-s", "reload", "-c", rc.CONF], capture_output=True, text=True)
    return "" if done.returncode == 0 else (done.stderr or done.stdout).strip()


def reload() -> int:
    if master_pid() is None:
        say("nginx is not running; nothing to reload")
        return 1
    s = state()
    master = master_pid()
    if get(s["listen_port"], rc.DIGEST_PATH, timeout=1.0) == (200, s["digest"]):
        say(f"nginx already serves this config: {rc.describe(s)}")
        return 0
    # Until an old worker gets its QUIT it still accepts on the shared sockets, old config and
    # all: "reloaded" means no old worker accepts any more.
    old_workers = accepting_workers(master)
    error = signal_reload()
    if not error and wait_digest(s["listen_port"], s["digest"], 10, old_workers, master):
        say(f"nginx reloaded: port {s['listen_port']}, {rc.describe(s)}")
        return 0
    say(f"nginx did not take the new config ({error or 'not served within 10 s'}); "
        "putting the previous one back")
    with rc.Locked():
        for path in (rc.CONF, rc.STATE, rc.SNAPSHOT):
            if os.path.exists(path + ".prev"):
                os.replace(path + ".prev", path)
    signal_reload()
    return 1


def status() -> int:
    pid = master_pid()
    if pid is None:
        say("unhealthy: the nginx master is not running")
        return 1
    s = state()
    port, path = s["listen_port"], s.get("health_path", "/")
    code, body = get(port, path)
    if code != 200:
        say(f"unhealthy: GET {path} on port {port} answered {code or body}")
        return 1
    say(f"healthy: nginx master pid {pid}, GET {path} on port {port} -> 200")
    return 0


def info() -> int:
    version = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    s = state()
    say(f"{version.replace('nginx version: ', '')}, master pid {master_pid()}, "
        f"port {s['listen_port']} ({'HTTPS' if s.get('tls') else 'HTTP'})")
    print(f"backends: {', '.join(s['backends']) or 'none'}")
    for route in s.get("routes", []):
        print(f"route {rc.describe_route(route)} [{route['mode']}]")
    print(f"static files: {s.get('static_root') or 'none'}; health: {s.get('health_path')}")
    print(f"config: {rc.CONF} (digest {s['digest']})")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["wait-ready"] and len(argv) == 2:
        return wait_ready(float(argv[1]))
    commands = {"reload": reload, "status": status, "info": info}
    if len(argv) != 1 or argv[0] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        return commands[argv[0]]()
    except (OSError, ValueError, KeyError) as e:
        say(f"cannot read the rendered state ({e}); was the start event run?")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
