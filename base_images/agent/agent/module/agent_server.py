"""The agent's servers: the API over mutual TLS on the port, /v1/health on the Unix socket,
and the Agent that runs both and answers them."""

from __future__ import annotations

import http.server
import json
import os
import socketserver
import ssl
import sys
import threading
import time
import urllib.parse

import procfs
from agent_api import ApiError, AppApi
from agent_config import VERSION, Settings, say
from agent_metrics import Collector
from agent_params import ParamsStore
from docker_api import Engine

HANDSHAKE_TIMEOUT_S = 10   # a client that opens a connection and says nothing is dropped
IDLE_TIMEOUT_S = 30        # a kept-alive connection with no request for this long is closed


def common_name(peer_cert: dict | None) -> str | None:
    """The subject's CN of ssl.getpeercert()'s dict."""
    for rdn in (peer_cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


MAX_BODY_BYTES = 1 << 20   # a request body (exec input, parameters) larger than this: 413


class Handler(http.server.BaseHTTPRequestHandler):
    """The API over mutual TLS: the TLS layer has verified the client's chain already."""

    server_version = "dragonball-agent/" + VERSION
    sys_version = ""
    protocol_version = "HTTP/1.1"
    paths = None   # every path the agent serves (HealthHandler: fewer)

    def client(self) -> str | None:
        getpeercert = getattr(self.request, "getpeercert", None)
        return common_name(getpeercert()) if getpeercert else None

    def allowed(self) -> bool:
        return self.client() in self.server.agent.settings.allowed_clients

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self.dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self.dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self.dispatch("DELETE")

    def do_PATCH(self) -> None:  # noqa: N802
        self.dispatch("PATCH")

    def dispatch(self, method: str) -> None:
        path, _, query = self.path.partition("?")
        if not self.allowed():
            self.send_json(403, {"error": f"client {self.client()!r} may not call this agent "
                                          "(only the portal's certificate may)"})
            return
        try:
            data = self.read_body()
            route = self.server.agent.route(method, path, self.paths)
            status, answer = route(urllib.parse.parse_qs(query), json_body(method, data))
        except ApiError as e:
            status, answer = e.status, e.answer()
        except (OSError, procfs.ProcError) as e:
            status, answer = 500, {"error": f"cannot read the host's /proc: {e}"}
        self.send_json(status, answer)

    def read_body(self) -> bytes:
        """The request's body, always read whole (the connection stays usable)."""
        length = self.headers.get("Content-Length") or "0"
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            self.close_connection = True  # the body is left unread
            raise ApiError(413 if length.isdigit() else 400,
                           f"Content-Length must be a number up to {MAX_BODY_BYTES}")
        return self.rfile.read(int(length)) if int(length) else b""

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


def json_body(method: str, data: bytes):
    """The JSON object of a POST or PUT; None for other methods."""
    if method not in ("POST", "PUT"):
        return None
    try:
        body = json.loads(data or b"null")
    except ValueError as e:
        raise ApiError(400, f"the body is not JSON: {e}") from e
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


class HealthHandler(Handler):
    """The Unix socket inside the container: /v1/health only, no client certificate."""

    paths = ("/v1/health",)

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

    def __init__(self, settings: Settings, collector: Collector | None = None,
                 engine: Engine | None = None) -> None:
        self.settings = settings
        self.collector = collector or Collector(settings.proc_root,
                                                node_id=os.environ.get("DRAGONBALL_NODE_ID", ""))
        self.app = AppApi(engine or Engine(settings.docker_socket),
                          ParamsStore(settings.params_dir))
        self.routes = {("GET", "/v1/health"): lambda query, body: (200, self.health_answer()),
                       ("GET", "/v1/metrics"): lambda query, body: (200,
                                                                    self.collector.metrics()),
                       **self.app.routes()}
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

    def health_answer(self) -> dict:
        return {"status": "ok", "version": VERSION, "hostname": self.collector.hostname,
                "node_id": self.collector.node_id,
                "uptime_s": round(time.time() - self.started, 1)}

    def route(self, method: str, path: str, paths=None):
        """The function (query, body) -> (status, answer) of a request; ApiError 404 or 405
        when there is none. `paths` limits what may be called (the health socket's)."""
        known = sorted({p for _, p in self.routes if paths is None or p in paths})
        route = self.routes.get((method, path))
        if path not in known:
            raise ApiError(404, f"no such path: {path} (paths: {', '.join(known)})")
        if route is None:
            allowed = sorted(m for m, p in self.routes if p == path)
            raise ApiError(405, f"{path} answers {', '.join(allowed)} only")
        return route

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

