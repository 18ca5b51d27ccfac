"""A portal app for web tests: a real store (temporary), fake data sources, a fake Swarm."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from dragonball import pki
from dragonball.errors import DragonBallError
from dragonball.portal import settings as settings_mod
from dragonball.portal.api import create_app
from dragonball.portal.enrollment import join_instructions
from dragonball.portal.store import Store
from dragonball.portal.web.sources import SourceError

ADMIN_PASSWORD = "Web-Test-Passphrase-31"
METRICS = {
    "schema": 1, "hostname": "s1",
    "cpu": {"cores": 2, "busy_percent": 26.9},
    "memory": {"total_bytes": 8 * 2 ** 30, "used_bytes": 2 * 2 ** 30, "used_percent": 25.0},
    "io": {"read_bytes_per_s": 1024.0, "written_bytes_per_s": 980128.5},
    "connections": {"total": 20, "established": 6},
    "load": {"1m": 0.31},
}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class FakeSources:
    """What the pages read, in memory; `store` gives devices, events and codes for real."""

    def __init__(self, store: Store, settings) -> None:
        self.store, self.settings = store, settings
        self.metrics_by_address: dict = {}
        self.catalog: dict | None = {"dragonball/agent": ["0.1.0"],
                                     "dragonball/registry": ["0.1.0", "latest"]}
        self.asked: list = []
        self.holdings: dict | None = {}   # hostname -> images row; None: cannot be read
        self.swarm_nodes: list | None = []  # the Swarm's nodes (their labels); None: down

    def image_holdings(self):
        if self.holdings is None:
            raise SourceError("the images per server cannot be read: the engine does not "
                              "answer", "is it running?")
        return self.holdings

    def devices(self):
        return self.store.devices()

    def metrics(self, addresses):
        self.asked.append(list(addresses))
        return {a: self.metrics_by_address.get(a, DragonBallError("connection refused"))
                for a in addresses}

    def images(self):
        if self.catalog is None:
            raise SourceError("no registry answers at 10.0.0.1:5000", "is it running?")
        return self.catalog

    def events(self, before_id, limit, kind_prefix=""):
        return self.store.events_before(before_id, limit, kind_prefix)

    def nodes(self):
        if self.swarm_nodes is None:
            raise SourceError("the servers' versions cannot be read: the engine does not "
                              "answer", "is it running?")
        return self.swarm_nodes

    def services(self):
        return []

    def certificates(self):
        return self.certificate_report

    certificate_report: dict = {"certificates": [], "warnings": []}

    def new_enrollment(self, ttl_s, actor, client):
        code, record = self.store.create_code(ttl_s, actor=actor, client=client)
        return join_instructions(self.settings, code, record.expires, "SHA256:" + "ab" * 32)


def make_settings(tmp_path) -> settings_mod.Settings:
    etc = tmp_path / "etc"
    ca = pki.create_ca()
    pki.write_private(etc / "ca.crt", ca.cert_pem, 0o644)
    pki.write_private(etc / "registry.json", json.dumps(
        {"username": "dragonball", "password": pki.new_secret()}).encode())
    return settings_mod.Settings(
        address="10.0.0.1", tls_cert=str(etc / "server.crt"), tls_key=str(etc / "server.key"),
        ca_cert=str(etc / "ca.crt"), registry="10.0.0.1:5000",
        registry_credentials=str(etc / "registry.json"), hostname="s1", cluster_name="plant",
        data_dir=str(tmp_path / "data"), bin_name="DragonBall-0.1.0.bin")


def make_client(store: Store, settings, cluster) -> tuple[TestClient, FakeSources]:
    """A TestClient over HTTPS (the session cookie is Secure) and the app's fake sources."""
    app = create_app(store, settings, cluster)
    fake = FakeSources(store, settings)
    app.state.sources = fake
    return TestClient(app, base_url="https://testserver"), fake


def login(client: TestClient, password: str = ADMIN_PASSWORD, next: str = "/"):
    return client.post("/login", data={"username": "admin", "password": password,
                                       "next": next}, follow_redirects=False)


def csrf_of(html: str) -> str:
    """The CSRF token a page carries (its logout form's hidden field)."""
    marker = 'name="csrf_token" value="'
    start = html.index(marker) + len(marker)
    return html[start:html.index('"', start)]
