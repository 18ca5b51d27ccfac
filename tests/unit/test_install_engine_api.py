"""The engine's HTTP API adapter (dragonball.installer.engine.api) against a fake engine:
an HTTP server on a unix socket in a temporary folder, no Docker.

The Swarm join goes there so that its token is in a request's body, never in a program's
argv; what the engine says on a refusal, an absent socket or no answer becomes an
InstallerError without the token.
"""

from __future__ import annotations

import http.server
import json
import os
import socketserver
import tempfile
import threading

import pytest

from dragonball.errors import InstallerError
from dragonball.installer.engine.api import LISTEN_ADDR, EngineApi
from dragonball.installer.host import Host

TOKEN = "SWMTKN-1-0123456789abcdefghijklmnopqrstuvwxyz-secret"


class FakeEngine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """POST answers (status, JSON) from `answer`; each request kept as (method, path, body).
    `hold`: requests wait for `release` (an engine that does not answer in time)."""

    daemon_threads = True

    def __init__(self, path: str) -> None:
        self.requests: list[tuple[str, str, dict]] = []
        self.answer: tuple[int, dict | None] = (200, None)
        self.hold, self.release = False, threading.Event()
        super().__init__(path, self._handler())

    def _handler(self):
        engine = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                engine.requests.append(("POST", self.path, json.loads(self.rfile.read(length))))
                if engine.hold:
                    engine.release.wait(10)
                status, body = engine.answer
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


@pytest.fixture
def folder():
    """A short folder: a unix socket's path holds at most 107 bytes."""
    with tempfile.TemporaryDirectory(prefix="db-engine-") as path:
        yield path


@pytest.fixture
def engine(folder):
    server = FakeEngine(os.path.join(folder, "docker.sock"))
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def join(socket_path: str, timeout: float = 5) -> None:
    EngineApi(socket_path).join_swarm("10.0.0.11:2377", TOKEN, "10.0.0.12", timeout=timeout)


def test_the_join_token_is_in_the_body_with_docker_swarm_joins_defaults(engine):
    join(engine.server_address)
    [(method, path, body)] = engine.requests
    assert (method, path) == ("POST", "/v1.41/swarm/join")
    assert body == {"RemoteAddrs": ["10.0.0.11:2377"], "JoinToken": TOKEN,
                    "AdvertiseAddr": "10.0.0.12", "ListenAddr": "0.0.0.0:2377"}
    assert LISTEN_ADDR == "0.0.0.0:2377"  # `docker swarm join`'s --listen-addr default


def test_a_refused_join_says_what_the_engine_said_without_the_token(engine):
    engine.answer = (503, {"message": "rpc error: code = Unavailable desc = connection "
                                      "refused"})
    with pytest.raises(InstallerError) as err:
        join(engine.server_address)
    assert err.value.message == ("the engine refused the Swarm join: rpc error: code = "
                                 "Unavailable desc = connection refused")
    assert TOKEN not in str(err.value) and "docker info" in err.value.hint


def test_an_engine_that_does_not_answer_in_time(engine):
    engine.hold = True
    with pytest.raises(InstallerError) as err:
        join(engine.server_address, timeout=0.3)
    assert err.value.message.startswith("POST /swarm/join did not finish within ")
    assert TOKEN not in str(err.value)


def test_no_engine_at_the_socket(folder):
    path = os.path.join(folder, "docker.sock")
    with pytest.raises(InstallerError) as err:
        join(path)
    assert err.value.message.startswith(f"cannot reach the engine at {path}: ")
    assert TOKEN not in str(err.value)


def test_the_host_talks_to_the_engine_on_its_roots_socket(tmp_path):
    assert Host(str(tmp_path)).engine.socket_path == str(tmp_path / "var/run/docker.sock")
    assert Host().engine.socket_path == "/var/run/docker.sock"
    fake = object()
    assert Host(str(tmp_path), engine=fake).engine is fake
