#!/usr/bin/env python3
"""Control side of the notes API, for the module's action scripts.

    apictl.py check              validate the parameters in force ($DRAGONBALL_PARAMS_FILE)
    apictl.py snapshot           write them, complete, to $RUN_DIR/params.json (0600): the file
                                 the server reads at start and on SIGHUP
    apictl.py wait-ready SECS    wait until the server answers /healthz (store up or down)
    apictl.py status             exit 0 when /healthz says the server and the store are up
    apictl.py info               describe the running server
    apictl.py reload             config_change: snapshot the new parameters, SIGHUP the
                                 server, wait until it applied them (or restore the old ones)

The password is never printed: only the names of the parameters that changed are.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import notes_api  # noqa: E402
from dragonball.module import params  # noqa: E402  (the base image library, see notes_api)

RUN_DIR = os.environ.get("NOTES_API_RUN_DIR", "/run/notes-api")
SNAPSHOT = os.path.join(RUN_DIR, "params.json")
PID_FILE = os.path.join(RUN_DIR, "notes_api.pid")
SERVER_USER = "nobody"
# Talk to our own loopback only, whatever proxy variables the environment carries.
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def say(message: str) -> None:
    print(f"api: {message}", flush=True)


def get(port: int, path: str, timeout: float = 3.0) -> tuple[int, dict]:
    """(status, JSON body) of GET http://127.0.0.1:PORT/PATH; (0, {"error": ...}) if no answer."""
    try:
        with HTTP.open(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read())
        except ValueError:
            return e.code, {"error": f"HTTP {e.code}"}
    except (OSError, ValueError) as e:
        return 0, {"error": str(e)}


def server_pid() -> int | None:
    try:
        with open(PID_FILE, encoding="ascii") as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def load_checked(path: str | None = None) -> dict:
    """The parameters, validated; exits 1 listing every problem."""
    try:
        p = params.load(path)
    except params.ParamError as e:
        say(str(e))
        sys.exit(1)
    found = notes_api.problems(p)
    if found:
        say("invalid parameters:")
        for problem in found:
            print(f"  - {problem}")
        sys.exit(1)
    return p


def write_snapshot(p: dict) -> None:
    """Atomically, 0600, owned by the user that runs the server."""
    os.makedirs(RUN_DIR, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=RUN_DIR, prefix=".params.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(p, f)
    if os.geteuid() == 0:
        try:
            os.chown(tmp, pwd.getpwnam(SERVER_USER).pw_uid, -1)
        except KeyError:
            pass
    os.replace(tmp, SNAPSHOT)


def check() -> int:
    load_checked()
    say("parameters valid")
    return 0


def snapshot() -> int:
    write_snapshot(load_checked())
    return 0


def wait_ready(seconds: float) -> int:
    p = load_checked()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server_pid() is None:
            say("the server process exited during start; its log lines are above")
            return 1
        code, body = get(p["listen_port"], "/healthz", timeout=1.0)
        if code:
            say(f"notes-api answers on port {p['listen_port']} (store {body.get('store')})")
            return 0
        time.sleep(0.3)
    say(f"notes-api did not answer on port {p['listen_port']} within {seconds:.0f} s")
    return 1


def status() -> int:
    p = load_checked()
    code, body = get(p["listen_port"], "/healthz")
    store = f"{p['store_host']}:{p['store_port']}"
    if p["store_sentinels"]:
        store = f"primary {body.get('primary') or '?'} (via sentinels {','.join(p['store_sentinels'])})"
    if code == 200 and body.get("ok"):
        say(f"healthy: server up on port {p['listen_port']}, store {store} up")
        return 0
    if code == 0:
        say(f"unhealthy: no answer on port {p['listen_port']}: {body['error']}")
    else:
        say(f"unhealthy: store {store} down: {body.get('error', code)}")
    return 1


def info() -> int:
    p = load_checked()
    code, body = get(p["listen_port"], "/api/info")
    if code != 200:
        say(f"no answer from /api/info on port {p['listen_port']}: {body.get('error', code)}")
        return 1
    _, health = get(p["listen_port"], "/healthz")
    say(f"notes-api {body['version']} on {body['hostname']}, port {body['listen_port']}, "
        f"pid {server_pid()}, up {body['uptime_s']} s")
    print(f"store: {body['store']} ({health.get('store', 'unknown')}), password "
          f"{'set' if p['store_password'] else 'not set'}")
    print(f"greeting: {body['greeting']}")
    print(f"parameters: generation {body['generation']}, last reload {health.get('last_reload')}")
    return 0


def reload() -> int:
    new = load_checked()
    pid = server_pid()
    if pid is None:
        say("the server is not running; nothing to reload")
        return 1
    try:
        old = params.read_file(SNAPSHOT)
    except params.ParamError as e:
        say(f"cannot tell what the server runs with: {e}")
        return 1
    code, before = get(old["listen_port"], "/healthz")
    if not code:
        say(f"the server does not answer on port {old['listen_port']}: {before['error']}")
        return 1
    write_snapshot(new)
    result = signal_and_wait(pid, before["generation"], (new["listen_port"], old["listen_port"]))
    if result == "ok":
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        say(f"parameters applied without restart; changed: {', '.join(changed) or 'nothing'}")
        return 0
    write_snapshot(old)
    signal_and_wait(pid, before["generation"] + 1, (old["listen_port"], new["listen_port"]))
    say(f"the server refused the new parameters, old ones restored: {result}")
    return 1


def signal_and_wait(pid: int, generation: int, ports: tuple, seconds: float = 10.0) -> str:
    """SIGHUP the server; its last_reload once its generation passes `generation`."""
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for port in ports:
            code, body = get(port, "/healthz", timeout=1.0)
            if code and body.get("generation", 0) > generation:
                return body.get("last_reload", "unknown")
        time.sleep(0.2)
    return f"no answer with a new generation within {seconds:.0f} s"


def main(argv: list[str]) -> int:
    commands = {"check": check, "snapshot": snapshot, "status": status, "info": info,
                "reload": reload}
    if argv[:1] == ["wait-ready"] and len(argv) == 2:
        return wait_ready(float(argv[1]))
    if len(argv) != 1 or argv[0] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    return commands[argv[0]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
