"""The `dragonball` CLI from "another machine": `dragonball portal serve` for real over HTTPS
on 127.0.0.1 (a CA and certificate from pki, a store on disk, no Docker engine), and
`dragonball login/status/devices/enroll/logout --json` run as subprocesses with stdin a
pipe (no terminal), a HOME of their own, and the environment's CA variables pointing
elsewhere (the CA must be pinned anyway: MACHINE.md, "Environment traps")."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import requests

from dragonball import pki
from support import ROOT
from tests.portal_lab import free_port, serve, stop, write_portal

ADMIN_PASSWORD = "Remote-Cli-Passphrase-73"


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    folder = tmp_path_factory.mktemp("portal-cli")
    settings = write_portal(folder, ADMIN_PASSWORD, "portal-cli", "plant-a",
                            enrolled=[("node-2", "127.0.0.2", "127.0.0.2")],
                            bin_name="DragonBall-0.1.0.bin")
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
    assert answer["portal_url"] == url and answer["code"] == answer["answers"]["enrollment_code"]
    assert answer["ca_fingerprint"] == "SHA256:" + pki.fingerprint(
        open(settings.ca_cert, "rb").read())

    log = (folder / "portal.log").read_text()
    for secret in (ADMIN_PASSWORD, token, answer["code"]):
        assert secret not in log

    status, answer = cli("logout", "--json")
    assert status == 0 and answer["token_ended"], answer
    status, answer = cli("devices", "--json")
    assert status == 6 and "not logged in" in answer["error"]  # DENIED
    session = requests.Session()
    session.trust_env = False
    assert session.get(url + "/api/v1/devices", verify=settings.ca_cert, headers={
        "Authorization": f"Bearer {token}"}).status_code == 401


def test_wrong_password_no_terminal_and_another_ca(portal, cli, tmp_path):
    url, settings, _ = portal
    where = ["--portal", f"127.0.0.1:{_port(url)}"]
    status, answer = cli("login", *where, "--ca", settings.ca_cert, "--password-stdin",
                         "--json", stdin="not-it\n")
    assert status == 6 and answer["error"] == "wrong user name or password"  # DENIED
    status, answer = cli("login", *where, "--ca", settings.ca_cert, "--json",
                         stdin=ADMIN_PASSWORD + "\n")
    assert status == 2 and "--password-stdin" in answer["hint"]
    other = tmp_path / "other-ca.crt"
    other.write_bytes(pki.create_ca().cert_pem)
    status, answer = cli("login", *where, "--ca", str(other), "--password-stdin", "--json",
                         stdin=ADMIN_PASSWORD + "\n")
    assert status == 5 and "TLS with" in answer["error"], answer  # UNAVAILABLE
    status, answer = cli("login", "--portal", f"127.0.0.1:{free_port()}", "--ca",
                         settings.ca_cert, "--password-stdin", "--json",
                         stdin=ADMIN_PASSWORD + "\n")
    assert status == 5 and "cannot reach the portal" in answer["error"]  # UNAVAILABLE
    assert not (cli.home / ".config" / "dragonball" / "portal.json").exists()
