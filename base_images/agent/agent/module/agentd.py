#!/usr/bin/env python3
"""The DragonBall node agent: HTTPS with mutual TLS on port 9443, one per server.

    python3 module/agentd.py serve     the server, in the foreground, until SIGTERM
    python3 module/agentd.py launch    `serve` in the background; wait until it answers
    python3 module/agentd.py status    GET /v1/health on the local health socket
    python3 module/agentd.py info      version, port, who may call it
    python3 module/agentd.py stop      SIGTERM, then wait for the server to end
    python3 module/agentd.py restart   stop, then launch (config_change)

API (docs/agent.md): `GET /v1/health`, `GET /v1/metrics` (node metrics from the host's
/proc, read-only at /host/proc). Every connection must present a client certificate
signed by the cluster CA (ssl.CERT_REQUIRED) whose common name is an allowed client
(the portal's, `dragonball-portal`); anything else gets no answer (no certificate, another
CA) or 403 (another name). The TLS material comes in as Docker Swarm secrets under
/run/secrets (agent.crt, agent.key, ca.crt): never from the environment or the image.

The health check (`run.sh status`, the image's HEALTHCHECK) cannot present a client
certificate, so the server also answers /v1/health, and nothing else, on a Unix socket
inside the container. Standard library only: this runs on the base image's python3.
"""

from __future__ import annotations

import dataclasses
import http.client
import http.server
import json
import os
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # procfs.py, beside this file
import procfs  # noqa: E402

VERSION = os.environ.get("DRAGONBALL_AGENT_VERSION", "0.0.0")
SCHEMA = 1
RUN_DIR = os.environ.get("AGENT_RUN_DIR", "/run/dragonball-agent")
PID_FILE = os.path.join(RUN_DIR, "agent.pid")
HANDSHAKE_TIMEOUT_S = 10   # a client that opens a connection and says nothing is dropped
IDLE_TIMEOUT_S = 30        # a kept-alive connection with no request for this long is closed
CPU_WINDOW_S = 0.25        # cpu and io rates: this window when no earlier sample is recent
MIN_WINDOW_S = 0.1         # an earlier sample closer than this is too short a window
READY_WITHIN_S = 30
STOP_WITHIN_S = 7          # inside the default stop grace of 10 s, less the supervisor's 2 s


def say(text: str) -> None:
    print(f"agent: {text}", flush=True)


# --- settings (pure) ------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Settings:
    port: int = 9443
    bind: str = "0.0.0.0"
    cert: str = "/run/secrets/agent.crt"
    key: str = "/run/secrets/agent.key"
    ca: str = "/run/secrets/ca.crt"
    proc_root: str = "/host/proc"
    allowed_clients: tuple = ("dragonball-portal",)
    health_socket: str = os.path.join(RUN_DIR, "health.sock")


def problems(p: dict) -> list[str]:
    """Every problem with the parameters (module/defaults.json and overrides) at once."""
    found = []
    port = p.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        found.append(f"port must be an integer 1-65535, got {port!r}")
    for key in ("bind", "secrets_dir", "tls_cert", "tls_key", "ca", "proc_root",
                "health_socket"):
        if not isinstance(p.get(key), str) or not p.get(key).strip():
            found.append(f"{key} must be a non-empty string, got {p.get(key)!r}")
    clients = p.get("allowed_clients")
    if not isinstance(clients, list) or not clients or \
            not all(isinstance(c, str) and c.strip() for c in clients):
        found.append(f"allowed_clients must be a non-empty list of names, got {clients!r}")
    return found


def settings_from(p: dict) -> Settings:
    """Settings from checked parameters: file names are relative to secrets_dir."""
    def secret(name: str) -> str:
        return os.path.join(p["secrets_dir"], p[name])
    return Settings(port=p["port"], bind=p["bind"], cert=secret("tls_cert"),
                    key=secret("tls_key"), ca=secret("ca"), proc_root=p["proc_root"],
                    allowed_clients=tuple(p["allowed_clients"]),
                    health_socket=p["health_socket"])


def load_settings() -> Settings:
    sys.path.insert(0, "/opt/dragon_ball/lib")  # the base image's library (dragonballbase)
    from dragonball.module import params
    p = params.load()
    found = problems(p)
    if found:
        raise SystemExit("agent: invalid parameters:\n" + "\n".join(f"  - {x}" for x in found))
    return settings_from(p)


def missing_files(settings: Settings) -> list[str]:
    return [f"{what}: {path} is not a readable file" for what, path in
            (("certificate", settings.cert), ("key", settings.key), ("CA", settings.ca))
            if not (os.path.isfile(path) and os.access(path, os.R_OK))]


# --- metrics (the /proc adapter) ---------------------------------------------------------------

class Collector:
    """Node metrics from the host's /proc at `proc_root`.

    CPU and io rates are deltas: since the previous call when it is at least 0.1 s old,
    else over a window of 0.25 s measured now (the first call, or calls close together).
    TCP connections are read from /proc/1/net: PID 1 is the host's init, so these are the
    host network namespace's connections (/proc/net is the reader's own namespace).
    """

    def __init__(self, proc_root: str, hostname: str | None = None, node_id: str = "",
                 clock=time.monotonic, sleep=time.sleep, window_s: float = CPU_WINDOW_S):
        self.proc_root, self.node_id = proc_root, node_id
        self.hostname = hostname or socket.gethostname()
        self.clock, self.sleep, self.window_s = clock, sleep, window_s
        self._last = None
        self._lock = threading.Lock()

    def read(self, name: str, missing_ok: bool = False) -> str:
        try:
            with open(os.path.join(self.proc_root, name), encoding="ascii",
                      errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            if missing_ok:  # no IPv6 on this host: no tcp6
                return ""
            raise

    def _sample(self):
        return (self.clock(), procfs.parse_stat(self.read("stat")),
                procfs.parse_diskstats(self.read("diskstats")))

    def _window(self):
        with self._lock:
            current = self._sample()
            before = self._last
            if before is None or current[0] - before[0] < MIN_WINDOW_S:
                before = current
                self.sleep(self.window_s)
                current = self._sample()
            self._last = current
        return before, current

    def metrics(self) -> dict:
        before, now = self._window()
        seconds = max(now[0] - before[0], 1e-9)
        return {
            "schema": SCHEMA, "hostname": self.hostname, "node_id": self.node_id,
            "time": round(time.time(), 3),
            "uptime_s": procfs.uptime(self.read("uptime")),
            "load": procfs.load(self.read("loadavg")),
            "cpu": {**procfs.cpu_usage(before[1], now[1]), "window_s": round(seconds, 3)},
            "memory": procfs.memory(procfs.parse_meminfo(self.read("meminfo"))),
            "io": {**procfs.io_summary(now[2], before[2], seconds),
                   "window_s": round(seconds, 3)},
            "connections": procfs.connections(self.read("1/net/tcp", missing_ok=True),
                                              self.read("1/net/tcp6", missing_ok=True)),
        }


# --- HTTP ------------------------------------------------------------------------------------

def common_name(peer_cert: dict | None) -> str | None:
    """The subject's CN of ssl.getpeercert()'s dict."""
    for rdn in (peer_cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


class Handler(http.server.BaseHTTPRequestHandler):
    """The API over mutual TLS: the TLS layer has verified the client's chain already."""

    server_version = "dragonball-agent/" + VERSION
    sys_version = ""
    protocol_version = "HTTP/1.1"
    routes = ("/v1/health", "/v1/metrics")

    def client(self) -> str | None:
        getpeercert = getattr(self.request, "getpeercert", None)
        return common_name(getpeercert()) if getpeercert else None

    def allowed(self) -> bool:
        return self.client() in self.server.agent.settings.allowed_clients

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        if not self.allowed():
            self.send_json(403, {"error": f"client {self.client()!r} may not call this agent "
                                          "(only the portal's certificate may)"})
        elif path not in self.routes:
            self.send_json(404, {"error": f"no such path: {path} (GET /v1/health, "
                                          "GET /v1/metrics)"})
        else:
            try:
                self.send_json(200, self.server.agent.answer(path))
            except (OSError, procfs.ProcError) as e:
                self.send_json(500, {"error": f"cannot read the host's /proc: {e}"})

    def do_POST(self) -> None:  # noqa: N802
        self.send_json(405, {"error": "this agent answers GET only"})

    do_PUT = do_DELETE = do_PATCH = do_POST

    def send_json(self, status: int, body: dict) -> None:
        data = json.dumps(body, sort_keys=True).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_request(self, code="-", size="-") -> None:
        if str(code).isdigit() and int(code) >= 400:
            say(f"{self.address_string()} ({self.client() or 'local'}) {self.command} "
                f"{self.path} -> {code}")

    def log_message(self, format, *args) -> None:  # noqa: A002 (http.server's signature)
        say(f"{self.address_string()}: {format % args}")


class HealthHandler(Handler):
    """The Unix socket inside the container: /v1/health only, no client certificate."""

    routes = ("/v1/health",)

    def allowed(self) -> bool:
        return True

    def address_string(self) -> str:
        return "health socket"


class TLSServer(http.server.ThreadingHTTPServer):
    """HTTPS whose TLS handshake happens in the connection's own thread, so a slow or
    silent client never holds up the accept loop."""

    daemon_threads = True

    def __init__(self, address, context: ssl.SSLContext, agent) -> None:
        self.context, self.agent = context, agent
        super().__init__(address, Handler)

    def finish_request(self, request, client_address) -> None:
        request.settimeout(HANDSHAKE_TIMEOUT_S)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            reason = getattr(e, "reason", None) or str(e) or type(e).__name__
            say(f"refused {client_address[0]}: TLS handshake failed ({reason})")
            return
        try:
            tls.settimeout(IDLE_TIMEOUT_S)
            self.RequestHandlerClass(tls, client_address, self)
        except (ssl.SSLError, OSError):
            pass  # the client went away mid-request
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address) -> None:
        say(f"error with {client_address[0] if client_address else 'a client'}: "
            f"{sys.exc_info()[1]!r}")


class HealthServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, agent) -> None:
        self.agent = agent
        super().__init__(path, HealthHandler)


def server_context(cert: str, key: str, ca: str) -> ssl.SSLContext:
    """TLS 1.2+ server context that requires a client certificate signed by `ca`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.load_verify_locations(cafile=ca)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class Agent:
    """The servers (mutual TLS on the port, health on the Unix socket) and what they answer."""

    def __init__(self, settings: Settings, collector: Collector | None = None) -> None:
        self.settings = settings
        self.collector = collector or Collector(settings.proc_root,
                                                node_id=os.environ.get("DRAGONBALL_NODE_ID", ""))
        self.started = time.time()
        self.tls = TLSServer((settings.bind, settings.port),
                             server_context(settings.cert, settings.key, settings.ca), self)
        self.health = None
        if settings.health_socket:
            os.makedirs(os.path.dirname(settings.health_socket), mode=0o700, exist_ok=True)
            if os.path.exists(settings.health_socket):
                os.unlink(settings.health_socket)  # a previous server's, gone with it
            self.health = HealthServer(settings.health_socket, self)
        self._threads: list = []

    @property
    def port(self) -> int:
        return self.tls.server_address[1]

    def answer(self, path: str) -> dict:
        if path == "/v1/health":
            return {"status": "ok", "version": VERSION, "hostname": self.collector.hostname,
                    "node_id": self.collector.node_id,
                    "uptime_s": round(time.time() - self.started, 1)}
        return self.collector.metrics()

    def start(self, poll_interval: float = 0.5) -> Agent:
        """Serve in background threads (tests, and `serve` below); `stop` takes up to
        `poll_interval` seconds."""
        for server in (self.tls, self.health):
            if server is not None:
                thread = threading.Thread(target=server.serve_forever, args=(poll_interval,),
                                          daemon=True)
                thread.start()
                self._threads.append(thread)
        return self

    def stop(self) -> None:
        servers = [s for s in (self.tls, self.health) if s is not None]
        stoppers = [threading.Thread(target=s.shutdown) for s in servers]  # at once: each
        for thread in stoppers:                                            # waits a poll
            thread.start()
        for thread in stoppers:
            thread.join()
        for server in servers:
            server.server_close()
        if self.health is not None and os.path.exists(self.settings.health_socket):
            os.unlink(self.settings.health_socket)


# --- commands ---------------------------------------------------------------------------------

def serve() -> int:
    settings = load_settings()
    missing = missing_files(settings)
    if missing:
        say("the TLS material is missing (the service mounts it as Swarm secrets under "
            "/run/secrets):")
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
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    say(f"DragonBall agent {VERSION} on {settings.bind}:{agent.port}, mutual TLS (clients: "
        f"{', '.join(settings.allowed_clients)}), host /proc at {settings.proc_root}")
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
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            ours = b"agentd.py" in f.read()
    except (OSError, IndexError):
        return False
    return state != "Z" and ours


def server_pid():
    try:
        with open(PID_FILE, encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def container_log():
    """PID 1's stdout (the container log) when it can be opened, else log/agent.log."""
    try:
        return open("/proc/1/fd/1", "ab", buffering=0)
    except OSError:
        folder = os.environ.get("DRAGONBALL_LOG_DIR", os.path.join(os.getcwd(), "log"))
        os.makedirs(folder, exist_ok=True)
        return open(os.path.join(folder, "agent.log"), "ab", buffering=0)


def launch() -> int:
    settings = load_settings()
    os.makedirs(RUN_DIR, mode=0o700, exist_ok=True)
    with container_log() as out:
        proc = subprocess.Popen([sys.executable, "-B", os.path.abspath(__file__), "serve"],
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
    print(f"agent: DragonBall node agent {VERSION}, port {settings.port}, mutual TLS with the "
          f"cluster CA, clients allowed: {', '.join(settings.allowed_clients)}")
    print(f"host /proc: {settings.proc_root}; node: {socket.gethostname()} "
          f"{os.environ.get('DRAGONBALL_NODE_ID', '')}".rstrip())
    return 0


def stop(kill: bool = False) -> int:
    pid = server_pid()
    if pid is None or not alive(pid):
        say("the server is not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WITHIN_S
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid) and kill:
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    if alive(pid):
        say(f"the server (pid {pid}) still runs {STOP_WITHIN_S} s after SIGTERM")
        return 1
    say(f"the server (pid {pid}) stopped")
    return 0


def main(argv: list[str]) -> int:
    commands = {"serve": serve, "launch": launch, "status": status, "info": info,
                "stop": stop, "restart": lambda: stop(kill=True) or launch()}
    if len(argv) != 1 or argv[0] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    return commands[argv[0]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
