"""`dragonball portal serve` for real on 127.0.0.1 over HTTPS, for the integration tests and
the benches (`from tests.portal_lab import ...`): a throw-away CA and server certificate,
the settings file, a store on disk with the admin, no Docker engine (the agents and the
Swarm do not answer, as on a portal whose devices are down).

Stdlib, requests and dragonball only (no pytest): bench/ runs it outside pytest.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import requests

from dragonball import pki
from dragonball.portal import settings as settings_mod
from dragonball.portal.store import Store

ROOT = pathlib.Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_portal(folder: pathlib.Path, password: str, hostname: str, cluster_name: str,
                 enrolled=(), actor: str = "test", **extra) -> settings_mod.Settings:
    """A portal's files under `folder`: CA (ca.crt), server certificate for 127.0.0.1,
    registry credentials, portal.yaml (`extra` are more Settings fields), and a store with
    the admin, the portal itself (`hostname`, joined) and each (hostname, address, client)
    of `enrolled` enrolled with a code made by `actor`."""
    ca = pki.create_ca()
    server = pki.issue_server_cert(ca, "portal", ips=["127.0.0.1"], dns_names=["localhost"])
    pki.write_pem_files(ca, folder / "ca.crt", folder / "ca.key")
    pki.write_pem_files(server, folder / "server.crt", folder / "server.key")
    pki.write_private(folder / "registry.json", json.dumps(
        {"username": "dragonball", "password": pki.new_secret(),
         "pull": {"username": "pull", "password": pki.new_secret()}}).encode())
    settings = settings_mod.Settings(
        address="127.0.0.1", port=free_port(), hostname=hostname, cluster_name=cluster_name,
        data_dir=str(folder / "data"), tls_cert=str(folder / "server.crt"),
        tls_key=str(folder / "server.key"), ca_cert=str(folder / "ca.crt"),
        registry="127.0.0.1:5000", registry_credentials=str(folder / "registry.json"),
        docker_socket=str(folder / "no-engine.sock"), **extra)
    (folder / "portal.yaml").write_text(settings.to_yaml())
    store = Store.open(settings.db_path)
    store.set_admin_password(password)
    store.add_portal(hostname, "127.0.0.1", "portalnode")
    for device, address, client in enrolled:
        code, _ = store.create_code(actor=actor)
        store.enroll(code, device, address, client)
    store.close()
    return settings


def serve(folder: pathlib.Path, settings, timeout: float = 30) -> tuple[subprocess.Popen, str]:
    """Start `dragonball portal serve --config folder/portal.yaml`, its output in
    folder/portal.log; (process, URL) once /healthz answers. Stopped again, and
    RuntimeError with the log, when it ends or does not answer within `timeout` s."""
    log_path = folder / "portal.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "payload")}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "dragonball", "portal", "serve",
                                 "--config", str(folder / "portal.yaml")], cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"https://127.0.0.1:{settings.port}"
    session = requests.Session()
    session.trust_env = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if session.get(url + "/healthz", timeout=2, verify=settings.ca_cert).ok:
                return proc, url
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    ended = proc.poll() is not None
    stop(proc)
    raise RuntimeError(("the portal ended" if ended else
                        f"the portal did not answer /healthz within {timeout:.0f} s") +
                       f":\n{log_path.read_text()}")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, as systemd stops it; wait for the end."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
