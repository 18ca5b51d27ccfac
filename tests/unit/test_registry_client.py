"""The registry client's boundary (dragonball.registry.client) against a local TLS server.

A tiny HTTPS server on 127.0.0.1 with a certificate from our own CA stands in for the
registry: enough to prove the CA is the one given (whatever the environment says), that
credentials go as basic auth, and that every failure is a RegistryError with a hint.
"""

from __future__ import annotations

import base64
import http.server
import json
import socket
import ssl
import threading

import pytest

from dragonball import pki
from dragonball.registry import RegistryClient, RegistryError

USER, PASSWORD = "dragonball", pki.new_secret()


class FakeRegistry(http.server.BaseHTTPRequestHandler):
    bodies: list = []

    def log_message(self, *args) -> None:
        pass

    def _authorized(self) -> bool:
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if self.headers.get("Authorization") == f"Basic {token}":
            return True
        self._answer(401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]})
        return False

    def _answer(self, status: int, body: dict | None = None, headers: dict | None = None) -> None:
        data = json.dumps(body or {}).encode()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self):
        if not self._authorized():
            return
        if self.path.startswith("/v2/_catalog"):
            self._answer(200, {"repositories": ["dragonball/agent", "dragonball/registry"]})
        elif self.path == "/v2/dragonball/agent/tags/list":
            self._answer(200, {"name": "dragonball/agent", "tags": ["0.1.0", "latest"]})
        elif self.path.endswith("/tags/list"):
            self._answer(404, {"errors": [{"code": "NAME_UNKNOWN", "message": "unknown"}]})
        else:
            self._answer(200)

    def do_HEAD(self):
        if self._authorized():
            self._answer(404)

    def do_POST(self):
        if self._authorized():
            self._answer(202, headers={"Location": "/v2/x/blobs/uploads/u1?_state=abc"})

    def do_PUT(self):
        if not self._authorized():
            return
        FakeRegistry.bodies.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
        if "manifests" in self.path:
            self._answer(400, {"errors": [{"code": "MANIFEST_INVALID", "message": "manifest invalid"}]})
        else:
            self._answer(201)


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    ca = pki.create_ca()
    pki.write_pem_files(pki.issue_server_cert(ca, "registry", ips=["127.0.0.1"]),
                        folder / "server.crt", folder / "server.key")
    (folder / "ca.crt").write_bytes(ca.cert_pem)
    (folder / "other-ca.crt").write_bytes(pki.create_ca().cert_pem)
    return folder


@pytest.fixture(scope="module")
def registry(tls):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeRegistry)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls / "server.crt", tls / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def hostile_env(monkeypatch, tmp_path):
    """What this machine (and maybe a customer's) sets: other CA bundles, a proxy."""
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("not a certificate\n")
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.setenv(name, str(bundle))
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")


def test_our_ca_is_used_whatever_the_environment_says(registry, tls, hostile_env):
    with RegistryClient(registry, tls / "ca.crt", USER, PASSWORD) as client:
        client.ping()
        assert client.blob_exists("n/web", "sha256:00") is False


def test_blob_body_is_put_with_the_digest_on_the_upload_url(registry, tls):
    with RegistryClient(registry, tls / "ca.crt", USER, PASSWORD) as client:
        location = client.start_upload("n/web")
        assert location == f"https://{registry}/v2/x/blobs/uploads/u1?_state=abc"
        client.finish_upload(location, "sha256:ab", FakeBody(b"hello"), 5)
    path, body = FakeRegistry.bodies[-1]
    assert path == "/v2/x/blobs/uploads/u1?_state=abc&digest=sha256%3Aab"
    assert body == b"hello"


def test_the_catalog_and_tags(registry, tls):
    with RegistryClient(registry, tls / "ca.crt", USER, PASSWORD) as client:
        assert client.catalog() == ["dragonball/agent", "dragonball/registry"]
        assert client.tags("dragonball/agent") == ["0.1.0", "latest"]
        assert client.tags("dragonball/registry") == []


class FakeBody:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def read(self, n: int = -1) -> bytes:
        out, self.data = (self.data, b"") if n < 0 else (self.data[:n], self.data[n:])
        return out


def test_wrong_password_is_a_clear_error_without_the_password(registry, tls):
    with RegistryClient(registry, tls / "ca.crt", USER, "wrong-" + PASSWORD) as client:
        with pytest.raises(RegistryError) as caught:
            client.ping()
    text = str(caught.value)
    assert "refused the credentials of user 'dragonball'" in text and "--password-file" in text
    assert PASSWORD not in text and PASSWORD not in repr(client)


def test_another_ca_fails_tls_with_a_hint(registry, tls):
    with RegistryClient(registry, tls / "other-ca.crt", USER, PASSWORD) as client:
        with pytest.raises(RegistryError, match="TLS with 127.0.0.1") as caught:
            client.ping()
    assert "cluster CA" in caught.value.hint
    assert caught.value.__cause__ is not None


def test_nobody_listening_is_a_clear_error(tls):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with RegistryClient(f"127.0.0.1:{port}", tls / "ca.crt", USER, PASSWORD) as client:
        with pytest.raises(RegistryError, match=f"no registry answers at 127.0.0.1:{port}"):
            client.ping()


def test_registry_error_codes_are_shown(registry, tls):
    with RegistryClient(registry, tls / "ca.crt", USER, PASSWORD) as client:
        with pytest.raises(RegistryError, match="HTTP 400.*MANIFEST_INVALID: manifest invalid"):
            client.put_manifest("n/web", "1", b"{}")


def test_servers_are_given_the_pull_account_never_the_clients_own():
    client = RegistryClient("10.0.0.1:5000", "/ca.crt", "dragonball", "w",
                            pull=("pull", "r"))
    assert client.pull_auth() == {"username": "pull", "password": "r",
                                  "serveraddress": "10.0.0.1:5000"}
    alone = RegistryClient("10.0.0.1:5000", "/ca.crt", "dragonball", "w")
    assert alone.pull_auth()["username"] == "dragonball"  # a tool with one account
