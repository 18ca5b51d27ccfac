"""The portal's web UI in a real headless Chromium (Debian's, driven by Playwright) against
`dragonball portal serve` for real: HTTPS on 127.0.0.1, a store on disk, a registry
stand-in over TLS. Logs in, opens every page, adds a device (a one-time code and the
command), sees the device appear when it joins, logs out. A screenshot of each page goes
to docs/screenshots/ (docs/portal.md shows them) when its file is missing or with
DRAGONBALL_SCREENSHOTS=1 (`DRAGONBALL_SCREENSHOTS=1 pytest ...` after a page changed), so
a run leaves a clone's tree clean.

No Docker engine is needed: the pages read the store, the agents (none answer here: the
portal has no agent client certificate, which the Devices page shows) and the registry.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading

import pytest
import requests

from dragonball import pki
from dragonball.portal import settings as settings_mod
from dragonball.portal.store import Store
from support import ROOT, wait_for
from tests.browser import CHROMIUM, CHROMIUM_ARGS, NEEDS_CHROMIUM, shot

ADMIN_PASSWORD = "Browser-Passphrase-58"
REGISTRY_USER, REGISTRY_PASSWORD = "dragonball", pki.new_secret()
CATALOG = {"dragonball/agent": ["0.1.0"], "dragonball/registry": ["0.1.0"],
           "dragonballbase": ["bookworm"], "plant/web": ["1.4.2", "1.5.0"]}

pytestmark = [
    NEEDS_CHROMIUM,
]
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is missing: pip install -e '.[dev]'")


class Registry(http.server.BaseHTTPRequestHandler):
    """The registry API v2's catalog and tags, basic auth, nothing else."""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self):
        token = base64.b64encode(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}".encode()).decode()
        if self.headers.get("Authorization") != f"Basic {token}":
            return self._answer(401, {"errors": [{"code": "UNAUTHORIZED"}]})
        if self.path.startswith("/v2/_catalog"):
            return self._answer(200, {"repositories": sorted(CATALOG)})
        name = self.path[len("/v2/"):-len("/tags/list")]
        if name in CATALOG:
            return self._answer(200, {"name": name, "tags": CATALOG[name]})
        self._answer(404, {"errors": [{"code": "NAME_UNKNOWN"}]})

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def etc(tmp_path_factory):
    folder = tmp_path_factory.mktemp("portal-web")
    ca = pki.create_ca()
    server = pki.issue_server_cert(ca, "portal", ips=["127.0.0.1"], dns_names=["localhost"])
    pki.write_pem_files(ca, folder / "ca.crt", folder / "ca.key")
    pki.write_pem_files(server, folder / "server.crt", folder / "server.key")
    pki.write_private(folder / "registry.json", json.dumps(
        {"username": REGISTRY_USER, "password": REGISTRY_PASSWORD}).encode())
    return folder


@pytest.fixture(scope="module")
def registry(etc):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(etc / "server.crt", etc / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def portal(etc, registry):
    """(URL, settings) of `dragonball portal serve` with two devices in its store."""
    settings = settings_mod.Settings(
        address="127.0.0.1", port=_free_port(), hostname="portal-web", cluster_name="plant-a",
        data_dir=str(etc / "data"), tls_cert=str(etc / "server.crt"),
        tls_key=str(etc / "server.key"), ca_cert=str(etc / "ca.crt"), registry=registry,
        registry_credentials=str(etc / "registry.json"),
        docker_socket=str(etc / "no-engine.sock"), bin_name="DragonBall-0.1.0.bin")
    (etc / "portal.yaml").write_text(settings.to_yaml())
    store = Store.open(settings.db_path)
    store.set_admin_password(ADMIN_PASSWORD)
    store.add_portal("portal-web", "127.0.0.1", "portalnode")
    code, _ = store.create_code(actor="test")
    device, _ = store.enroll(code, "node-2", "127.0.0.2", "127.0.0.2")
    store.mark_joined(device.id, "node2", "127.0.0.2")
    store.close()
    log_path = etc / "portal.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "payload")}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "dragonball", "portal", "serve",
                                 "--config", str(etc / "portal.yaml")], cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT, env=env)
    url = f"https://127.0.0.1:{settings.port}"
    session = requests.Session()
    session.trust_env = False

    def healthy():
        assert proc.poll() is None, log_path.read_text()
        try:
            return session.get(url + "/healthz", timeout=2, verify=str(etc / "ca.crt")).ok
        except requests.ConnectionError:
            return False
    try:
        wait_for(healthy, 30, log_path.read_text)
        yield url, settings, log_path
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


@pytest.fixture
def page():
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # The portal's CA is not in Chromium's store; TLS itself is test_portal_api's.
        context = browser.new_context(ignore_https_errors=True,
                                      viewport={"width": 1280, "height": 800})
        tab = context.new_page()
        tab.set_default_timeout(15_000)
        problems: list[str] = []
        tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: problems.append(str(e)))
        tab.problems = problems
        try:
            yield tab
        finally:
            browser.close()


def test_log_in_open_every_page_add_a_device_log_out(portal, page):
    url, settings, log_path = portal
    page.goto(url + "/devices")
    assert page.url == url + "/login?next=%2Fdevices"
    page.fill("input[name=password]", "not-the-password")
    page.click("button[type=submit]")
    assert "wrong user name or password" in page.inner_text(".flash.error")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    shot(page, "login")
    page.click("button[type=submit]")
    page.wait_for_url(url + "/devices")
    assert [p for p in page.problems if "401" not in p] == []  # the refused login's 401
    page.problems.clear()

    for path, name, heading in [("/", "dashboard", "Dashboard"), ("/services", "services",
                                "Services"), ("/placement", "placement", "Placement"),
                                ("/images", "images", "Images"), ("/events", "events",
                                "Events")]:
        page.click(f"header nav a[href='{path}']")
        page.wait_for_url(url + path)
        assert page.inner_text("main h1") == heading
        assert page.get_attribute(f"header nav a[href='{path}']", "aria-current") == "page"
        shot(page, name)
        if path == "/":
            assert "its agent does not answer" in page.inner_text("#health")
            # no engine here: the servers' versions are unknown, said, and nothing breaks
            assert "unknown" in page.inner_text("#release")
            assert "node-2" in page.inner_text("#versions-silent")
        if path == "/images":
            assert "plant/web" in page.inner_text("main table")
        if path == "/events":
            assert "session.created" in page.inner_text("main table")
            page.click("#event-filters a[href='/events?kind=upgrade']")
            page.wait_for_url(url + "/events?kind=upgrade")
            assert "No upgrade events" in page.inner_text("main")
            page.click("#event-filters a[href='/events']")
            page.wait_for_url(url + "/events")

    page.click("header nav a[href='/devices']")
    assert page.locator("tr[data-hostname='node-2']").count() == 1
    assert "DragonBall unknown" in page.inner_text("tr[data-hostname='node-2'] td.release")
    shot(page, "devices")
    page.select_option("select[name=ttl]", "1h")
    page.click("#add-device")
    code = page.inner_text("#enrollment-code")
    command = page.inner_text("#enrollment-command")
    with open(settings.ca_cert, "rb") as f:
        fingerprint = "SHA256:" + pki.fingerprint(f.read())
    assert command == (f"sudo ./DragonBall-0.1.0.bin install --role device --portal 127.0.0.1:"
                       f"{settings.port} --ca-fingerprint {fingerprint}")
    shot(page, "devices-add")

    # The new server runs the command: its enroll and joined land in the store; the table,
    # which htmx polls every 5 s, shows it without a reload.
    store = Store.open(settings.db_path)
    try:
        device, _ = store.enroll(code, "node-3", "127.0.0.3", "127.0.0.3")
        store.mark_joined(device.id, "node3", "127.0.0.3")
    finally:
        store.close()
    page.wait_for_selector("tr[data-hostname='node-3']", timeout=15_000)
    assert page.inner_text("#enrollment-code") == code  # the table refreshed, not the page
    assert re.search(r"joined", page.inner_text("tr[data-hostname='node-3']"))

    page.click("text=Log out")
    page.wait_for_url(url + "/login")
    page.goto(url + "/events")
    assert page.url == url + "/login?next=%2Fevents"
    assert page.problems == []  # no script error, no CSP violation
    log = log_path.read_text()
    assert ADMIN_PASSWORD not in log and code not in log
