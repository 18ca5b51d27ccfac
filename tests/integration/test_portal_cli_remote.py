"""The `dragonball` CLI from "another machine": `dragonball portal serve` for real over HTTPS
on 127.0.0.1 (a CA and certificate from pki, a store on disk, no Docker engine), and
`dragonball login/status/devices/enroll/logout --json` run as subprocesses with stdin a
pipe (no terminal), a HOME of their own, and the environment's CA variables pointing
elsewhere (the CA must be pinned anyway: MACHINE.md, "Environment traps")."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest
import requests

from dragonball import pki
from dragonball.portal import settings as settings_mod
from dragonball.portal.store import Store
from support import ROOT, wait_for

ADMIN_PASSWORD = "Remote-Cli-Passphrase-73"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_portal(folder, password: str = ADMIN_PASSWORD) -> settings_mod.Settings:
    """A portal's files under `folder`: CA, server certificate, settings, a store with the
    admin, the portal itself (joined) and one enrolled device."""
    ca = pki.create_ca()
    server = pki.issue_server_cert(ca, "portal", ips=["127.0.0.1"], dns_names=["localhost"])
    pki.write_pem_files(ca, folder / "ca.crt", folder / "ca.key")
    pki.write_pem_files(server, folder / "server.crt", folder / "server.key")
    pki.write_private(folder / "registry.json", json.dumps(
        {"username": "dragonball", "password": pki.new_secret()}).encode())
    settings = settings_mod.Settings(
        address="127.0.0.1", port=free_port(), hostname="portal-cli", cluster_name="plant-a",
        data_dir=str(folder / "data"), tls_cert=str(folder / "server.crt"),
        tls_key=str(folder / "server.key"), ca_cert=str(folder / "ca.crt"),
        registry="127.0.0.1:5000", registry_credentials=str(folder / "registry.json"),
        docker_socket=str(folder / "no-engine.sock"), bin_name="DragonBall-0.1.0.bin")
    (folder / "portal.yaml").write_text(settings.to_yaml())
    store = Store.open(settings.db_path)
    store.set_admin_password(password)
    store.add_portal("portal-cli", "127.0.0.1", "portalnode")
    code, _ = store.create_code(actor="test")
    store.enroll(code, "node-2", "127.0.0.2", "127.0.0.2")
    store.close()
    return settings


def serve(folder, settings):
    """Start `dragonball portal serve`; (process, URL) once /healthz answers."""
    log_path = folder / "portal.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "payload")}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "dragonball", "portal", "serve",
                                 "--config", str(folder / "portal.yaml")], cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"https://127.0.0.1:{settings.port}"
    session = requests.Session()
    session.trust_env = False

    def healthy():
        assert proc.poll() is None, log_path.read_text()
        try:
            return session.get(url + "/healthz", timeout=2, verify=settings.ca_cert).ok
        except requests.ConnectionError:
            return False
    try:
        wait_for(healthy, 30, log_path.read_text)
    except BaseException:
        stop(proc)
        raise
    return proc, url


def stop(proc) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    folder = tmp_path_factory.mktemp("portal-cli")
    settings = write_portal(folder)
    proc, url = serve(folder, settings)
    yield url, settings, folder
    stop(proc)


@pytest.fixture
def cli(tmp_path):
    """Run `dragonball ARGS` as another user of another machine would: its own HOME, no
    terminal, the environment's CA bundle set to something else. (exit status, JSON)."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env.update(HOME=str(home), PYTHONPATH=str(ROOT / "payload"),
               REQUESTS_CA_BUNDLE="/etc/ssl/certs/ca-certificates.crt",
               SSL_CERT_FILE="/etc/ssl/certs/ca-certificates.crt")

    def run(*args, stdin: str = ""):
        done = subprocess.run([sys.executable, "-m", "dragonball", *args], input=stdin,
                              capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
        try:
            return done.returncode, json.loads(done.stdout)
        except ValueError:
            return done.returncode, {"stdout": done.stdout, "stderr": done.stderr}
    run.home = home
    return run


def _port(url: str) -> str:
    return url.rsplit(":", 1)[1]


def test_login_status_devices_enroll_logout(portal, cli):
    url, settings, folder = portal
    status, answer = cli("login", "--portal", f"127.0.0.1:{_port(url)}", "--ca",
                         settings.ca_cert, "--password-stdin", "--json",
                         stdin=ADMIN_PASSWORD + "\n")
    assert status == 0, answer
    assert answer["portal"] == url
    saved = cli.home / ".config" / "dragonball" / "portal.json"
    assert oct(saved.stat().st_mode & 0o777) == "0o600"
    token = json.loads(saved.read_text())["token"]

    status, answer = cli("devices", "--json")
    assert status == 0, answer
    assert [(d["hostname"], d["state"]) for d in answer["devices"]] == \
        [("portal-cli", "joined"), ("node-2", "enrolled")]
    status, answer = cli("status", "--json")
    assert status == 0, answer
    assert answer["devices"] == {"total": 2, "by_state": {"enrolled": 1, "joined": 1}}
    status, answer = cli("enroll", "--remote", "--ttl", "1h", "--json")
    assert status == 0, answer
    assert answer["portal_url"] == url and answer["code"] in answer["command_line"]
    assert answer["ca_fingerprint"] == "SHA256:" + pki.fingerprint(
        open(settings.ca_cert, "rb").read())

    log = (folder / "portal.log").read_text()
    for secret in (ADMIN_PASSWORD, token, answer["code"]):
        assert secret not in log

    status, answer = cli("logout", "--json")
    assert status == 0 and answer["token_ended"], answer
    status, answer = cli("devices", "--json")
    assert status == 3 and "not logged in" in answer["error"]
    session = requests.Session()
    session.trust_env = False
    assert session.get(url + "/api/v1/devices", verify=settings.ca_cert, headers={
        "Authorization": f"Bearer {token}"}).status_code == 401


def test_wrong_password_no_terminal_and_another_ca(portal, cli, tmp_path):
    url, settings, _ = portal
    where = ["--portal", f"127.0.0.1:{_port(url)}"]
    status, answer = cli("login", *where, "--ca", settings.ca_cert, "--password-stdin",
                         "--json", stdin="not-it\n")
    assert status == 3 and answer["error"] == "wrong user name or password"
    status, answer = cli("login", *where, "--ca", settings.ca_cert, "--json",
                         stdin=ADMIN_PASSWORD + "\n")
    assert status == 2 and "--password-stdin" in answer["hint"]
    other = tmp_path / "other-ca.crt"
    other.write_bytes(pki.create_ca().cert_pem)
    status, answer = cli("login", *where, "--ca", str(other), "--password-stdin", "--json",
                         stdin=ADMIN_PASSWORD + "\n")
    assert status == 3 and "TLS with" in answer["error"], answer
    status, answer = cli("login", "--portal", f"127.0.0.1:{free_port()}", "--ca",
                         settings.ca_cert, "--password-stdin", "--json",
                         stdin=ADMIN_PASSWORD + "\n")
    assert status == 3 and "cannot reach the portal" in answer["error"]
    assert not (cli.home / ".config" / "dragonball" / "portal.json").exists()
