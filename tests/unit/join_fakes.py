"""Stand-ins for the join tests (tests/unit/test_join_*.py): a portal over real TLS and
a server whose programs answer from a script.

`FakePortal` speaks docs/enrollment.md's API on 127.0.0.1 with a certificate of its
own CA; `script(path, status, body)` makes one path answer something else. The
`portal` and `free_port` fixtures are imported by the test modules that use them.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import ssl
import tempfile
import threading

import pytest

from dragonball import agent_client, pki

CODE = "7K3M-Q9XD-2HBW-P4T3"
SSH_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDGQ1L2yxWQp3qE6mYSDzNTgb8S4tVRYF3sjGr8bBYHL "
           "root@portal")


def enrollment_document(ca: pki.KeyPair | None = None) -> dict:
    return {"device_id": "d-1", "device_token": "device-token-1",
            "ca_pem": (ca.cert_pem.decode() if ca else "PEM"),
            "swarm": {"join_token": "SWMTKN-1-secret", "manager_address": "10.0.0.11:2377",
                      "role": "worker"},
            "registry": {"address": "10.0.0.11:5000", "username": "dragonball",
                         "password": "registry-secret"},
            "portal_ssh_pubkey": SSH_KEY,
            "labels": {"io.dragonball.role": "device"}}


class FakePortal:
    """The portal's API on 127.0.0.1:<port> over TLS; what it was asked is kept."""

    def __init__(self) -> None:
        self.ca = pki.create_ca()
        self.fingerprint = "SHA256:" + pki.fingerprint(self.ca.cert_pem)
        self.requests: list[str] = []
        self.bodies: list[dict] = []
        self.auth: list[str | None] = []
        self.signed: list[tuple] = []  # (path, raw body, headers) of every call with a body
        self.scripted: dict[str, tuple[int, object]] = {}
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        self._wrap_tls()

    def script(self, path: str, status: int, body) -> None:
        self.scripted[path] = (status, body)

    def _wrap_tls(self) -> None:
        pair = pki.issue_server_cert(self.ca, "portal", ips=["127.0.0.1"])
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as folder:
            cert, key = os.path.join(folder, "c.pem"), os.path.join(folder, "k.pem")
            pki.write_pem_files(pair, cert, key)
            context.load_cert_chain(cert, key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)

    def _answer(self, path: str, body: dict | None):
        if path in self.scripted:
            return self.scripted[path]
        if path == "/api/v1/ca":
            return 200, self.ca.cert_pem
        if path == "/api/v1/enroll":
            document = enrollment_document(self.ca)
            if body and body.get("csr"):  # as the portal does: its names, the device's key
                document["agent_cert"] = agent_client.sign_agent_csr(
                    self.ca, body["csr"], body["address"], body["hostname"]).decode()
            return 200, document
        if path.startswith("/api/v1/devices/") and path.endswith("/joined"):
            return 200, {"status": "joined"}
        return 404, {"error": "not found"}

    def _handler(self):
        portal = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _serve(self) -> None:
                portal.requests.append(f"{self.command} {self.path}")
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if length else None
                if body is not None:
                    portal.bodies.append(body)
                    portal.auth.append(self.headers.get("Authorization"))
                    portal.signed.append((self.path, raw, dict(self.headers)))
                status, answer = portal._answer(self.path, body)
                data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve

        return Handler

    def __enter__(self) -> FakePortal:
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def portal():
    with FakePortal() as running:
        yield running


@pytest.fixture
def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeDocker:
    """The Docker engine of a server: its `docker` program as a Host runner (info, login,
    swarm leave) and its HTTP API as the Host's engine (the Swarm join).

    `calls` keeps each argv (without the program's folder), `stdins` what was piped,
    `joins` each join asked of the API as a dict. `pending_polls`: how many `docker info`
    answers say "pending" after a join (a join that goes on in the background); `join`:
    "ok", "background" (an error, joins all the same, as after the engine's own
    time-out), "refused" (an error, stays out) or "timeout" (no answer in time, stays out).
    """

    def __init__(self, state: str = "inactive", managers=(), pending_polls: int = 0,
                 join: str = "ok") -> None:
        self.state, self.managers = state, list(managers)
        self.node_id = "node-abc" if state == "active" else ""
        self.pending_polls, self.join = pending_polls, join
        self.calls: list[list[str]] = []
        self.stdins: list[bytes | None] = []
        self.envs: list[dict] = []
        self.joins: list[dict] = []

    def __call__(self, argv, env, timeout, stdin):
        from dragonball.installer.host import Completed
        args = [argv[0].rsplit("/", 1)[-1], *argv[1:]]
        self.calls.append(args)
        self.stdins.append(stdin)
        self.envs.append(dict(env))
        out, code = "", 0
        if args[1:4] == ["info", "--format", "{{json .Swarm}}"]:
            out = json.dumps(self._swarm())
        elif args[1:4] == ["info", "--format", "{{.Swarm.LocalNodeState}}"]:
            out = self._swarm()["LocalNodeState"] + "\n"
        elif args[1:3] == ["swarm", "leave"]:
            self.state, self.node_id, self.managers = "inactive", "", []
        return Completed(tuple(argv), code, out, "")

    def join_swarm(self, manager: str, token: str, advertise: str, timeout: float) -> None:
        """POST /swarm/join, as installer/engine/api.py's EngineApi answers it."""
        from dragonball.errors import InstallerError
        self.joins.append({"manager": manager, "token": token, "advertise": advertise,
                           "timeout": timeout})
        if self.join == "refused":  # the token echoed: the step must mask it
            raise InstallerError("the engine refused the Swarm join: rpc error: code = "
                                 f"Unavailable desc = connection refused ({token})")
        if self.join == "timeout":
            raise InstallerError(f"POST /swarm/join did not finish within {timeout:.0f} s")
        self.state, self.node_id, self.managers = "active", "node-abc", [manager]
        if self.join == "background":
            raise InstallerError("the engine refused the Swarm join: Timeout was reached "
                                 "before node joined.")

    def _swarm(self) -> dict:
        if self.state == "active" and self.pending_polls:
            self.pending_polls -= 1
            return {"LocalNodeState": "pending", "NodeID": ""}
        return {"LocalNodeState": self.state, "NodeID": self.node_id,
                "RemoteManagers": [{"NodeID": "m1", "Addr": a} for a in self.managers] or None}

    def commands(self) -> list[list[str]]:
        """The calls other than `docker info` (what changed something)."""
        return [c for c in self.calls if c[1] != "info"]
