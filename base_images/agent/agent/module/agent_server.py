"""The agent's servers: the API over mutual TLS on the port and /v1/health on a Unix socket,
served by hypercorn (Debian's python3-hypercorn, an ASGI server) with Starlette's routing
(python3-starlette); and the Agent that runs both in a thread of their own.

Who may call is decided in the TLS handshake (agent_tls): a client certificate signed by
the CA in `settings.ca` (the agents' clients CA, which signs only the controllers'
certificates) is required, anything else gets no answer. The handlers never see it.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
import urllib.parse

from hypercorn.asyncio import serve as hypercorn_serve
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agent_api import ApiError, AppApi, Download, Upload
from agent_config import VERSION, Settings, say
from agent_engine import Engine
from agent_firewall import FirewallApi, MembersFile
from agent_images import ImagesApi
from agent_metrics import Collector, MetricsError
from agent_networks import NetworksApi
from agent_params import ParamsStore
from agent_tls import ServerConfig, send_handshake_alerts, server_context
from agent_volumes import VolumesApi, staging_folder

HANDSHAKE_TIMEOUT_S = 10   # a client that opens a connection and says nothing is dropped
IDLE_TIMEOUT_S = 30        # a connection with no request for this long is closed
MAX_BODY_BYTES = 1 << 20   # a request body (exec input, parameters) larger than this: 413
STOP_GRACE_S = 2           # requests still running at stop get this long to answer
BODY_IDLE_S = 10           # a streamed body (a volume copy's piece) silent this long is gone


# --- the ASGI apps ----------------------------------------------------------------------------

class JSONAnswer(JSONResponse):
    """Sorted keys and a final newline (as curl users read it); never cached.

    One request per connection (Connection: close): hypercorn 0.13 (bookworm's) arms its
    idle timeout when a connection opens but never again after a request (its handle is
    not reset), so a kept-alive connection could idle forever. Closed after each answer,
    every connection idles at most IDLE_TIMEOUT_S: before its one request."""

    def __init__(self, content, status_code: int = 200, headers: dict | None = None) -> None:
        super().__init__(content, status_code, {"Cache-Control": "no-store",
                                                "Connection": "close", **(headers or {})})

    def render(self, content) -> bytes:
        return json.dumps(content, sort_keys=True).encode() + b"\n"


async def read_body(request: Request) -> bytes:
    """The request's body, at most MAX_BODY_BYTES (413; a larger one is not read)."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
        raise ApiError(413 if length.isdigit() else 400,
                       f"Content-Length must be a number up to {MAX_BODY_BYTES}")
    data = bytearray()
    async for chunk in request.stream():  # a chunked body has no Content-Length
        data += chunk
        if len(data) > MAX_BODY_BYTES:
            raise ApiError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    return bytes(data)


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


def log_error(request: Request, status: int) -> None:
    """Only errors are logged (status >= 400): who, what, the status."""
    if status >= 400:
        who = request.client.host if request.client else "health socket"
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        say(f"{who} {request.method} {target} -> {status}")


def endpoint(calls: dict):
    """The Starlette endpoint of one path: `calls` maps a method to a blocking function
    (query, body) -> (status, answer), run in a worker thread (docker, files, /proc), or to
    an Upload. The path's parameters ({id}) join the query."""
    async def answer(request: Request):
        method = "GET" if request.method == "HEAD" else request.method
        query = urllib.parse.parse_qs(request.url.query)
        query.update({key: [value] for key, value in request.path_params.items()})
        try:
            if isinstance(calls[method], Upload):
                status, content = await upload(calls[method], request, query)
                if content is None:
                    return NO_ANSWER
            else:
                body = json_body(method, await read_body(request))
                status, content = await run_in_threadpool(calls[method], query, body)
        except ApiError as e:
            status, content = e.status, e.answer()
        log_error(request, status)
        if isinstance(content, Download):
            return download(content, status)
        return JSONAnswer(content, status)
    return answer


async def upload(route: Upload, request: Request, query: dict) -> tuple:
    """The body written as it comes, chunk by chunk (never held whole). A client that goes
    away mid-body leaves what arrived written (the writer keeps it) and gets no answer;
    hypercorn 0.13 does not tell the application when a connection closes in the middle
    of a body (measured: a PUT cut after 2.5 MB waited for ever), so a body that sends
    nothing for BODY_IDLE_S counts as gone too, and the file is free again."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > route.limit):
        raise ApiError(413 if length.isdigit() else 400,
                       f"Content-Length must be a number up to {route.limit}")
    writer = await run_in_threadpool(route.open, query)
    try:
        while True:
            try:
                message = await asyncio.wait_for(request.receive(), BODY_IDLE_S)
            except asyncio.TimeoutError:
                message = {"type": "http.disconnect"}
            if message["type"] == "http.disconnect":
                say(f"{request.client.host if request.client else '?'} {request.method} "
                    f"{request.url.path}: the body stopped before its end (what came is kept)")
                return 400, None
            if message.get("body"):
                await run_in_threadpool(writer.write, message["body"])
            if not message.get("more_body", False):
                return await run_in_threadpool(writer.finish)
    finally:
        await run_in_threadpool(writer.close)


class NoAnswer(Response):
    """Nothing sent: the client went away (writing to its broken TLS connection would only
    raise in the server)."""

    def __init__(self) -> None:
        super().__init__(status_code=400)

    async def __call__(self, scope, receive, send) -> None:
        return None


NO_ANSWER = NoAnswer()


def download(content: Download, status: int) -> StreamingResponse:
    """Bytes from a worker thread, a chunk at a time; one request per connection too."""
    headers = {"Cache-Control": "no-store", "Connection": "close",
               "Content-Length": str(content.size), **content.headers}
    return StreamingResponse(content.chunks, status, headers,
                             media_type="application/octet-stream")


def asgi_app(routes: dict) -> Starlette:
    """Starlette over `routes` {(method, path): function}; 404 and 405 answer JSON too."""
    paths: dict = {}
    for (method, path), call in routes.items():
        paths.setdefault(path, {})[method] = call

    async def http_error(request: Request, exc: HTTPException) -> JSONAnswer:
        path = request.url.path
        message = {404: f"no such path: {path} (paths: {', '.join(sorted(paths))})",
                   405: f"{path} answers {', '.join(sorted(paths.get(path, ())))} only"}
        log_error(request, exc.status_code)
        return JSONAnswer({"error": message.get(exc.status_code, exc.detail)},
                          exc.status_code, getattr(exc, "headers", None))
    return Starlette(routes=[Route(path, endpoint(calls), methods=sorted(calls))
                             for path, calls in paths.items()],
                     exception_handlers={HTTPException: http_error})


# --- the agent ----------------------------------------------------------------------------------

def refused(peer, reason: str) -> None:
    """A client the TLS handshake refused (no certificate, another CA's...)."""
    say(f"refused {peer[0] if peer else 'a client'}: TLS handshake failed ({reason})")


def tcp_listener(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return socket.create_server((address, port), family=family)


def unix_listener(path: str) -> socket.socket:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)  # a previous server's, gone with it
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen()
    return sock


class Agent:
    """The servers (mutual TLS on the port, health on the Unix socket) and what they answer.
    Made: the sockets are bound and the TLS material loaded (OSError, ssl.SSLError)."""

    def __init__(self, settings: Settings, collector: Collector | None = None,
                 engine: Engine | None = None) -> None:
        self.settings = settings
        self.collector = collector or Collector(settings.proc_root,
                                                node_id=os.environ.get("DRAGONBALL_NODE_ID", ""))
        engine = engine or Engine(settings.docker_socket)
        self.app = AppApi(engine, ParamsStore(settings.params_dir))
        self.volumes = VolumesApi(engine, staging_folder(settings))
        self.images = ImagesApi(engine)
        self.networks = NetworksApi(engine)
        self.firewall = FirewallApi(MembersFile(settings.firewall_dir), ApiError)
        health = {("GET", "/v1/health"): lambda query, body: (200, self.health_answer())}
        self.routes = {**health, ("GET", "/v1/metrics"): self.metrics, **self.app.routes(),
                       **self.volumes.routes(), **self.images.routes(),
                       **self.networks.routes(), **self.firewall.routes()}
        self.started = time.time()
        context = server_context(settings.cert, settings.key, settings.ca)
        send_handshake_alerts(refused)
        listener = tcp_listener(settings.bind, settings.port)
        self.port = listener.getsockname()[1]
        self.servers = [(asgi_app(self.routes), self._config(listener, context))]
        if settings.health_socket:  # /v1/health only, no TLS: for the health check
            self.servers.append((asgi_app(health),
                                 self._config(unix_listener(settings.health_socket))))
        self._thread = self._loop = self._stopping = None

    @staticmethod
    def _config(sock: socket.socket, context=None) -> ServerConfig:
        return ServerConfig(sock, context, HANDSHAKE_TIMEOUT_S, IDLE_TIMEOUT_S, STOP_GRACE_S)

    def health_answer(self) -> dict:
        return {"status": "ok", "version": VERSION, "hostname": self.collector.hostname,
                "node_id": self.collector.node_id,
                "uptime_s": round(time.time() - self.started, 1)}

    def metrics(self, query: dict, body) -> tuple:
        try:
            return 200, self.collector.metrics()
        except MetricsError as e:
            raise ApiError(500, f"cannot read the host's /proc: {e}") from e

    def start(self) -> Agent:
        """Serve in a thread running an event loop (tests, and agentd's `serve`): signals
        stay the main thread's. The sockets already listen, so callers may connect now."""
        ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(ready),),
                                        name="agent-servers", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    async def _serve(self, ready: threading.Event) -> None:
        self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
        ready.set()
        try:
            await asyncio.gather(*(hypercorn_serve(app, config,
                                                   shutdown_trigger=self._stopping.wait)
                                   for app, config in self.servers))
        except asyncio.CancelledError:
            # hypercorn cancels the connections still open after the grace (a client that
            # went away mid-body leaves its TLS close waiting): stopped all the same
            say("connections still open at stop were dropped")

    def stop(self) -> None:
        """Stop both servers (requests still running get STOP_GRACE_S)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(STOP_GRACE_S + 3)
        if self.settings.health_socket and os.path.exists(self.settings.health_socket):
            os.unlink(self.settings.health_socket)
