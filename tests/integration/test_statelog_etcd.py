"""The portal's replicated state against a real etcd cluster: three members of the
dragonball/etcd image (built by builder.platform_images) as containers on the host network,
on loopback with ports of their own, TLS with certificates from dragonball.pki; two copies of
the store (two SQLite files) write and read through it.

Losing one member of three keeps writes going; losing two makes a write fail within seconds
with the quorum error and nothing changed; bringing them back resumes writes with no entry
lost. Leadership moves to another portal once its holder stops renewing. Every container is
labelled and removed at the end (conftest), and by this module's fixture.
"""

from __future__ import annotations

import socket
import time

import pytest

from builder.engine import Engine
from builder.pipeline import BuildEnv
from builder.platform_images import build_etcd_image
from builder.progress import Reporter
from dragonball import pki
from dragonball.errors import Category
from dragonball.etcd import Etcd
from dragonball.portal.leadership import Leadership
from dragonball.portal.settings import Settings
from dragonball.portal.statelog import open_store
from dragonball.portal.store import StoreError
from support import LABELS, RUN_ID

pytestmark = pytest.mark.integration
MEMBERS = ("m1", "m2", "m3")


def _free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="module")
def etcd_image(docker_client, base_image) -> str:
    engine = Engine()
    try:
        return build_etcd_image(BuildEnv(reporter=Reporter(), engine=engine))
    finally:
        engine.close()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("etcd-certs")
    ca = pki.create_ca("statelog test CA")
    pki.write_private(folder / "ca.crt", ca.cert_pem, 0o644)
    pki.write_pem_files(pki.issue_peer_cert(ca, "etcd", ips=["127.0.0.1"]),
                        folder / "server.crt", folder / "server.key")
    pki.write_pem_files(pki.issue_client_cert(ca, "portal"),
                        folder / "client.crt", folder / "client.key")
    for name in ("server.key", "client.key"):
        (folder / name).chmod(0o644)  # etcd runs as root in its container; the test's files
    return folder


@pytest.fixture(scope="module")
def cluster(docker_client, etcd_image, certs):
    """name -> (container, client URL) of a new 3-member cluster, healthy."""
    ports = _free_ports(6)
    client = {m: f"https://127.0.0.1:{ports[i]}" for i, m in enumerate(MEMBERS)}
    peer = {m: f"https://127.0.0.1:{ports[3 + i]}" for i, m in enumerate(MEMBERS)}
    initial = ",".join(f"{m}={peer[m]}" for m in MEMBERS)
    tls = ["--cert-file=/certs/server.crt", "--key-file=/certs/server.key",
           "--trusted-ca-file=/certs/ca.crt", "--client-cert-auth",
           "--peer-cert-file=/certs/server.crt", "--peer-key-file=/certs/server.key",
           "--peer-trusted-ca-file=/certs/ca.crt"]
    members = {}
    try:
        for m in MEMBERS:
            members[m] = (docker_client.containers.run(
                etcd_image, [f"--name={m}", "--data-dir=/var/lib/etcd",
                             f"--listen-client-urls={client[m]}",
                             f"--advertise-client-urls={client[m]}",
                             f"--listen-peer-urls={peer[m]}",
                             f"--initial-advertise-peer-urls={peer[m]}",
                             f"--initial-cluster={initial}", "--initial-cluster-state=new",
                             f"--initial-cluster-token=statelog-{RUN_ID}", *tls],
                name=f"dragonball-test-etcd-{m}-{RUN_ID}", labels=LABELS, detach=True,
                network_mode="host", volumes={str(certs): {"bind": "/certs", "mode": "ro"}}),
                client[m])
        for m in MEMBERS:
            _wait_healthy(members, m, certs)
        yield members
    finally:
        for container, _ in members.values():
            container.remove(force=True, v=True)


def _etcd(certs, urls: list[str], timeout: float = 8.0) -> Etcd:
    return Etcd(urls, str(certs / "ca.crt"), str(certs / "client.crt"),
                str(certs / "client.key"), timeout=timeout)


def _wait_healthy(members, m, certs, within: float = 60.0) -> None:
    with _etcd(certs, [members[m][1]], timeout=3.0) as etcd:
        deadline = time.monotonic() + within
        while not etcd.health():
            if time.monotonic() > deadline:
                container = members[m][0]
                container.reload()
                pytest.fail(f"etcd member {m} not healthy ({container.status}): "
                            f"{container.logs(tail=30).decode(errors='replace')}")
            time.sleep(0.5)


def _settings(tmp_path, certs, urls: list[str]) -> Settings:
    return Settings(address="127.0.0.1", tls_cert="", tls_key="", ca_cert="", registry="",
                    registry_credentials="", data_dir=str(tmp_path), state_endpoints=urls,
                    state_ca=str(certs / "ca.crt"), state_cert=str(certs / "client.crt"),
                    state_key=str(certs / "client.key"))


def test_the_state_survives_one_member_and_waits_for_two(cluster, certs, tmp_path):
    urls = [cluster[m][1] for m in MEMBERS]
    one = open_store(_settings(tmp_path / "one", certs, urls))
    two = open_store(_settings(tmp_path / "two", certs, list(reversed(urls))))
    try:
        one.set_admin_password("replicated-password")
        one.record("first", "admin")
        two.catch_up()
        assert two.check_admin("admin", "replicated-password")

        cluster["m1"][0].stop(timeout=2)  # one of three gone: one's first endpoint
        one.record("one-down", "admin")
        two.record("one-down-two", "admin")
        one.catch_up()

        cluster["m2"][0].stop(timeout=2)  # two of three gone: no quorum
        started = time.monotonic()
        with pytest.raises(StoreError) as caught:
            one.record("no-quorum", "admin")
        elapsed = time.monotonic() - started
        assert caught.value.category is Category.UNAVAILABLE
        assert "quorum" in caught.value.message and "Nothing changed" in caught.value.message
        assert elapsed < 20, f"the write took {elapsed:.1f} s to fail"
        assert "no-quorum" not in [e["kind"] for e in one.events()]

        for m in ("m1", "m2"):
            cluster[m][0].start()
        for m in MEMBERS:
            _wait_healthy(cluster, m, certs)
        one.record("back", "admin")
        two.catch_up()
        kinds = ["back", "one-down-two", "one-down", "first", "admin.password_set"]
        assert [e["kind"] for e in one.events()] == [e["kind"] for e in two.events()] == kinds
    finally:
        one.close()
        two.close()


def test_a_snapshot_replaces_the_log_and_a_new_copy_starts_from_it(cluster, certs, tmp_path):
    urls = [cluster[m][1] for m in MEMBERS]
    one = open_store(_settings(tmp_path / "one", certs, urls))
    try:
        one.replica.snapshot_every = 2
        for n in range(3):
            one.record(f"snap-{n}", "admin")
        index = one.replica.snapshot(one)
        assert index is not None and one.replica.fetch(0) == ([], index)
        one.record("after-snapshot", "admin")
        late = open_store(_settings(tmp_path / "late", certs, urls))
        assert [e["kind"] for e in late.events(5)] == [e["kind"] for e in one.events(5)]
        late.close()
    finally:
        one.close()


def test_leadership_moves_when_its_holder_stops_renewing(cluster, certs):
    urls = [cluster[m][1] for m in MEMBERS]
    with _etcd(certs, urls) as a, _etcd(certs, list(reversed(urls))) as b:
        first = Leadership(a, f"/dragonball-test-{RUN_ID}/leader", ttl_s=3, every_s=1.0,
                           name="first")
        second = Leadership(b, f"/dragonball-test-{RUN_ID}/leader", ttl_s=3, every_s=1.0,
                            name="second")
        assert first.step() is True
        assert first.step() is True  # a renewal keeps it
        assert second.step() is False
        deadline = time.monotonic() + 20
        while not second.step():  # first stops renewing (its server is gone)
            assert time.monotonic() < deadline, "the leadership did not move"
            time.sleep(0.5)
        assert not first.step() and not first.is_leader()
        second.resign()
