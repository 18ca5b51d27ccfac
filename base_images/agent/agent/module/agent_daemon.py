"""The commands behind the action scripts: serve in the foreground; launch, probe, stop the
server process in the background (its pid in RUN_DIR); info."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, "/opt/dragon_ball/lib")  # the base image's library (dragonballbase)
from dragonball.module import daemon  # noqa: E402

from agent_config import RUN_DIR, VERSION, load_settings, missing_files, say

PID_FILE = os.path.join(RUN_DIR, "agent.pid")
AGENTD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "agentd.py")
READY_WITHIN_S = 30
STOP_WITHIN_S = 7          # inside the default stop grace of 10 s, less the supervisor's 2 s


def serve() -> int:
    # Imported here: the libraries take a moment to load, and status, info and stop (run
    # by the health check every few seconds) do not need them.
    from agent_server import Agent
    settings = load_settings()
    missing = missing_files(settings)
    if missing:
        say("the TLS material is missing (the service mounts this server's identity at "
            "/host/identity and the clients' CA as a Swarm secret under /run/secrets):")
        for line in missing:
            print(f"  - {line}", flush=True)
        return 1
    try:
        agent = Agent(settings).start()
    except ssl.SSLError as e:
        say(f"cannot use the certificate, key or CA: {e}")
        return 1
    except OSError as e:
        say(f"cannot listen on {settings.bind}:{settings.port}: {e.strerror or e}")
        return 1
    try:
        agent.volumes.resume_left_paused()
    except Exception as e:  # noqa: BLE001 - the agent serves anyway; said in its log
        say(f"could not look for containers an export left paused: {e}")
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    say(f"DragonBall agent {VERSION} on {settings.bind}:{agent.port}, mutual TLS (clients "
        f"of the CA in {settings.ca} only), host /proc at {settings.proc_root}")
    stopping.wait()
    agent.stop()
    say("stopped")
    return 0


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 5.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


def probe(path: str, timeout: float = 5.0) -> tuple:
    """(HTTP status of GET /v1/health on the health socket, body or why not)."""
    try:
        conn = UnixHTTPConnection(path, timeout)
        try:
            conn.request("GET", "/v1/health")
            answer = conn.getresponse()
            return answer.status, answer.read().decode(errors="replace").strip()
        finally:
            conn.close()
    except (OSError, http.client.HTTPException) as e:
        return None, str(e) or type(e).__name__


def alive(pid) -> bool:
    return daemon.alive(pid, b"agentd.py")


def server_pid():
    return daemon.read_pid(PID_FILE)


def container_log():
    """PID 1's stdout (the container log) when it can be opened, else log/agent.log."""
    return daemon.container_log("agent.log")


def launch() -> int:
    settings = load_settings()
    os.makedirs(RUN_DIR, mode=0o700, exist_ok=True)
    with container_log() as out:
        proc = subprocess.Popen([sys.executable, "-B", AGENTD, "serve"],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    with open(PID_FILE, "w", encoding="ascii") as f:
        f.write(f"{proc.pid}\n")
    deadline, detail = time.monotonic() + READY_WITHIN_S, ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            say(f"the server exited with status {proc.returncode} during start (its "
                "messages are in the container log)")
            return 1
        status, detail = probe(settings.health_socket, timeout=2)
        if status == 200:
            say(f"ready: mutual TLS on port {settings.port} (pid {proc.pid})")
            return 0
        time.sleep(0.2)
    say(f"the server did not answer within {READY_WITHIN_S} s: {detail}")
    return 1


def status() -> int:
    settings = load_settings()
    code, body = probe(settings.health_socket)
    if code == 200:
        print(body)
        return 0
    say(f"unhealthy: GET /v1/health on {settings.health_socket}: {body or f'HTTP {code}'}")
    return 1


def info() -> int:
    settings = load_settings()
    print(f"agent: DragonBall node agent {VERSION}, port {settings.port}, mutual TLS: "
          f"clients of the CA in {settings.ca} only (the controllers')")
    print(f"host /proc: {settings.proc_root}; node: {socket.gethostname()} "
          f"{os.environ.get('DRAGONBALL_NODE_ID', '')}".rstrip())
    return 0


def stop(kill: bool = False) -> int:
    pid = server_pid()
    outcome = daemon.terminate(pid, b"agentd.py", STOP_WITHIN_S, kill)
    if outcome == "not running":
        say("the server is not running")
        return 0
    if outcome == "still running":
        say(f"the server (pid {pid}) still runs {STOP_WITHIN_S} s after SIGTERM")
        return 1
    say(f"the server (pid {pid}) stopped")
    return 0
