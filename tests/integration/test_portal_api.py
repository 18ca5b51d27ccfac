"""`dragonball portal serve` for real: HTTPS with a certificate from our CA on 127.0.0.1 and a
random port, a real Swarm behind it, and docs/enrollment.md's contract spoken with requests
(trust_env False, verify = the CA), the fingerprint pinning flow first.

The Swarm is a second dockerd of its own inside a network namespace of its own (a bridge
with no port, on TEST-NET-1, never routed): swarm init there touches neither the host
engine nor the host's interfaces (docker_gwbridge and docker0 live and die in that
namespace).
The portal reaches it through its unix socket, as on a real portal.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pathlib
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import warnings

import pytest
import requests
import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import dragonball
from dragonball import pki
from dragonball.portal import settings as settings_mod
from dragonball.portal.store import Store
from dragonball.shared import codes
from support import ROOT, RUN_ID, wait_for

DOCKER, DOCKERD = "/usr/bin/docker", "/usr/sbin/dockerd"
ADMIN_PASSWORD = "Integration-Passphrase-77"
SWARM_ADDRESS = "192.0.2.1"  # TEST-NET-1, inside the namespace only


def _run(argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60, **kw)


@pytest.fixture(scope="module")
def swarm_socket():
    """unix://… of a fresh dockerd, a Swarm manager, in a network namespace of its own."""
    netns = f"dbportal-{RUN_ID}"
    root = pathlib.Path(tempfile.mkdtemp(prefix="dbportal-engine-", dir="/var/tmp"))
    sock = root / "docker.sock"
    _run(["ip", "netns", "add", netns])
    proc = None
    try:
        inside = ["ip", "netns", "exec", netns]
        _run([*inside, "ip", "link", "set", "lo", "up"])
        _run([*inside, "ip", "link", "add", "swarm0", "type", "bridge"])
        _run([*inside, "ip", "addr", "add", f"{SWARM_ADDRESS}/24", "dev", "swarm0"])
        _run([*inside, "ip", "link", "set", "swarm0", "up"])
        log = open(root / "dockerd.log", "wb")
        # nsenter, not `ip netns exec`: that one remounts /sys, and dockerd then finds no
        # cgroup v1 hierarchy ("Devices cgroup isn't mounted").
        proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{netns}", DOCKERD, "--data-root", str(root / "data"),
                                 "--exec-root", str(root / "exec"), "--pidfile",
                                 str(root / "dockerd.pid"), "-H", f"unix://{sock}",
                                 "--iptables=false", "--ip-masq=false"],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"unix://{sock}"

        def answers():
            assert proc.poll() is None, (root / "dockerd.log").read_text()
            return subprocess.run([DOCKER, "-H", url, "info"], capture_output=True).returncode == 0
        wait_for(answers, 60, lambda: (root / "dockerd.log").read_text()[-2000:])
        _run([DOCKER, "-H", url, "swarm", "init", "--advertise-addr", SWARM_ADDRESS])
        yield sock
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        subprocess.run(["umount", "-R", str(root / "exec")], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def portal(tmp_path_factory, swarm_socket):
    """(base URL, settings, config path, CA pair, server log path) of a running portal."""
    etc = tmp_path_factory.mktemp("portal-etc")
    ca = pki.create_ca()
    server = pki.issue_server_cert(ca, "portal", ips=["127.0.0.1"], dns_names=["localhost"])
    pki.write_pem_files(ca, etc / "ca.crt", etc / "ca.key")
    pki.write_pem_files(server, etc / "server.crt", etc / "server.key")
    registry_password = pki.new_secret()
    pki.write_private(etc / "registry.json", json.dumps(
        {"username": "dragonball", "password": registry_password}).encode())
    settings = settings_mod.Settings(
        address="127.0.0.1", port=_free_port(), hostname="portal-test",
        data_dir=str(etc / "data"), tls_cert=str(etc / "server.crt"),
        tls_key=str(etc / "server.key"), ca_cert=str(etc / "ca.crt"),
        registry="127.0.0.1:5000", registry_credentials=str(etc / "registry.json"),
        docker_socket=str(swarm_socket), bin_name="DragonBall-test.bin")
    config = etc / "portal.yaml"
    config.write_text(settings.to_yaml())
    store = Store.open(settings.db_path)
    store.set_admin_password(ADMIN_PASSWORD)
    store.add_portal("portal-test", "127.0.0.1", None)
    store.close()
    log_path = etc / "portal.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "dragonball", "portal", "serve",
                                 "--config", str(config)], cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT, env=_env())
    url = f"https://127.0.0.1:{settings.port}"
    try:
        def healthy():
            assert proc.poll() is None, log_path.read_text()
            try:
                return _session(etc / "ca.crt").get(url + "/healthz", timeout=2).ok
            except requests.ConnectionError:
                return False
        wait_for(healthy, 30, lambda: log_path.read_text())
        yield {"url": url, "settings": settings, "config": config, "ca": ca, "etc": etc,
               "log": log_path, "proc": proc, "registry_password": registry_password}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "payload")  # this tree's package, whichever is installed
    return env


def _session(ca_file) -> requests.Session:
    """A session that trusts `ca_file` only: the machine's REQUESTS_CA_BUNDLE is ignored."""
    session = requests.Session()
    session.trust_env = False
    session.verify = str(ca_file)
    return session


def _enroll_code(portal, ttl: str = "1h") -> dict:
    done = subprocess.run([sys.executable, "-m", "dragonball", "enroll", "--config",
                           str(portal["config"]), "--ttl", ttl, "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env=_env())
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _pinned_session(portal, fingerprint: str, tmp_path) -> requests.Session:
    """What a joining server does: fetch the CA unverified, compare, then trust only it."""
    unverified = requests.Session()
    unverified.trust_env = False
    with warnings.catch_warnings():  # unverified on purpose: the fingerprint decides
        warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
        answer = unverified.get(portal["url"] + "/api/v1/ca", verify=False, timeout=5)
    assert answer.status_code == 200
    der = x509.load_pem_x509_certificate(answer.content).public_bytes(serialization.Encoding.DER)
    assert "SHA256:" + hashlib.sha256(der).hexdigest() == fingerprint
    (tmp_path / "ca.crt").write_bytes(answer.content)
    return _session(tmp_path / "ca.crt")


def _swarm(portal, *args) -> str:
    sock = portal["settings"].docker_socket
    return _run([DOCKER, "-H", f"unix://{sock}", *args]).stdout.strip()


def test_a_server_joins_by_the_contract(portal, tmp_path):
    info = _enroll_code(portal)
    session = _pinned_session(portal, info["ca_fingerprint"], tmp_path)
    assert info["command"][-2:] == ["--ca-fingerprint", info["ca_fingerprint"]]
    answer = session.post(portal["url"] + "/api/v1/enroll", timeout=10, json={
        "code": info["code"], "hostname": "node-2", "address": "127.0.0.2"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["ca_pem"].encode() == portal["ca"].cert_pem
    assert body["swarm"]["join_token"] == _swarm(portal, "swarm", "join-token", "-q", "worker")
    assert body["swarm"]["manager_address"] == "127.0.0.1:2377"
    assert body["registry"] == {"address": "127.0.0.1:5000", "username": "dragonball",
                                "password": portal["registry_password"]}
    node_id = _swarm(portal, "info", "-f", "{{.Swarm.NodeID}}")

    def labels() -> dict:
        return json.loads(_swarm(portal, "node", "inspect", "-f", "{{json .Spec.Labels}}",
                                 node_id)) or {}
    # the portal labels its own node with its version when it starts (here, the same node
    # the "device" reports: wait for that first, so the report's labels are the last)
    wait_for(lambda: labels().get("io.dragonball.version") == dragonball.__version__, 30)
    joined = session.post(f"{portal['url']}/api/v1/devices/{body['device_id']}/joined",
                          json={"node_id": node_id, "version": "0.0.9",
                                "release": {"name": "notes", "version": "0.2.0"}},
                          timeout=10,
                          headers={"Authorization": f"Bearer {body['device_token']}"})
    assert joined.status_code == 200, joined.text
    assert labels() == {**body["labels"], "io.dragonball.version": "0.0.9",
                        "io.dragonball.release": "notes 0.2.0"}
    again = session.post(portal["url"] + "/api/v1/enroll", timeout=10, json={
        "code": info["code"], "hostname": "node-2", "address": "127.0.0.2"})
    assert again.status_code == 401 and "used already" in again.json()["error"]
    devices = session.get(portal["url"] + "/api/v1/devices", timeout=10,
                          auth=("admin", ADMIN_PASSWORD))
    assert devices.status_code == 200
    assert [(d["hostname"], d["state"]) for d in devices.json()["devices"]] == [
        ("portal-test", "joined"), ("node-2", "joined")]
    # the portal's row has no node here (add_portal without one): its versions unknown
    assert [(d["version"], d["release"]) for d in devices.json()["devices"]] == [
        (None, None), ("0.0.9", {"name": "notes", "version": "0.2.0"})]


def test_statuses_over_https(portal, tmp_path):
    session = _session(portal["etc"] / "ca.crt")
    url = portal["url"]
    assert session.get(url + "/healthz", timeout=5).json() == {"status": "ok"}
    taken = session.post(url + "/api/v1/enroll", timeout=10, json={
        "code": _enroll_code(portal)["code"], "hostname": "portal-test", "address": "127.0.0.3"})
    assert taken.status_code == 409
    bad = session.post(url + "/api/v1/enroll", json={"code": "x"}, timeout=10)
    assert bad.status_code == 422
    assert session.post(url + "/api/v1/devices/1/joined", json={"node_id": "x"},
                        timeout=10).status_code == 401
    assert session.get(url + "/api/v1/devices", timeout=10).status_code == 401


def test_the_certificate_is_the_portals_from_our_ca_only(portal):
    other = pki.create_ca()
    path = portal["etc"] / "other-ca.crt"
    path.write_bytes(other.cert_pem)
    with pytest.raises(requests.exceptions.SSLError):
        _session(path).get(portal["url"] + "/healthz", timeout=5)
    context = ssl.create_default_context(cafile=str(portal["etc"] / "ca.crt"))
    with socket.create_connection(("127.0.0.1", portal["settings"].port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_a_held_port_is_a_clear_error(portal):
    done = subprocess.run([sys.executable, "-m", "dragonball", "portal", "serve", "--config",
                           str(portal["config"])], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env=_env())
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{portal['settings'].port}" in done.stderr


def test_zz_failed_codes_are_limited_then_the_log_holds_no_secret(portal):
    """Last: it leaves 127.0.0.1 rate-limited for ten minutes."""
    session = _session(portal["etc"] / "ca.crt")
    good = _enroll_code(portal)["code"]
    store = Store.open(portal["settings"].db_path)
    earlier = store.count_events("enroll.refused", "127.0.0.1", 0)  # the used code above
    store.close()
    statuses = [session.post(portal["url"] + "/api/v1/enroll", timeout=10, json={
        "code": codes.new_code(), "hostname": "node-9", "address": "127.0.0.9"}).status_code
        for _ in range(10 - earlier)]
    assert statuses == [401] * (10 - earlier)
    limited = session.post(portal["url"] + "/api/v1/enroll", timeout=10, json={
        "code": good, "hostname": "node-9", "address": "127.0.0.9"})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    began = time.monotonic()
    portal["proc"].send_signal(signal.SIGTERM)  # the session's connection is still open
    # uvicorn shuts down, then dies of the signal it caught (systemd counts that as clean).
    assert portal["proc"].wait(timeout=30) in (0, -signal.SIGTERM)
    assert time.monotonic() - began < 10
    log = portal["log"].read_text()
    assert "POST /api/v1/enroll" in log and "429" in log
    secrets = [good, portal["registry_password"], ADMIN_PASSWORD,
               _swarm(portal, "swarm", "join-token", "-q", "worker")]
    for secret in secrets:
        assert secret not in log
    assert base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode() not in log
