"""`dragonball portal standby` (installer/standby.py): whom it asks, what a bundle becomes
on disk, and the loop: a worker waits, a manager becomes a portal once, then serves."""

from __future__ import annotations

import dataclasses
import json
import types

from dragonball import agent_client, pki
from dragonball.etcd import Member
from dragonball.installer import standby
from dragonball.installer.host import Host
from dragonball.portal import managers
from dragonball.portal import settings as settings_mod


def test_the_enrolling_portal_is_asked_first_then_the_other_managers():
    enrollment = {"swarm": {"manager_address": "10.0.0.1:2377"}}
    assert standby.portal_candidates(enrollment, ["10.0.0.3", "10.0.0.1", "10.0.0.2"],
                                     "10.0.0.2") == ["10.0.0.1:8443", "10.0.0.3:8443"]
    assert standby.portal_candidates({}, ["10.0.0.3"], "10.0.0.2") == ["10.0.0.3:8443"]


def _bundle() -> dict:
    ca, clients = pki.create_ca(), pki.create_ca("clients")
    sources = managers.Sources(ca, clients, agent_client.issue_client_cert(clients),
                               '{"username": "dragonball", "password": "pw"}', "ssh-ed25519 A")
    portal = settings_mod.Settings(
        address="10.0.0.1", tls_cert="/x/server.crt", tls_key="/x/server.key",
        ca_cert="/x/ca.crt", registry="10.0.0.1:5000", registry_credentials="/x/r.json",
        hostname="s1", cluster_name="plant", data_dir="/elsewhere",
        state_endpoints=[managers.LOCAL_ENDPOINT], state_ca="/x/a", state_cert="/x/b",
        state_key="/x/c")
    members = [Member("1", "s1", ("https://10.0.0.1:2380",), ("https://10.0.0.1:2379",)),
               Member("2", "", ("https://10.0.0.2:2380",), (), True)]
    return managers.make_bundle(sources, portal, "s2", "10.0.0.2", members)


def test_a_bundle_becomes_the_portals_files_keys_0600_and_settings_of_its_own():
    bundle = _bundle()
    files = {path: mode for path, _, mode in standby.bundle_files(bundle)}
    assert files["/etc/dragonball/ca/ca.key"] == files["/etc/dragonball/etcd/member.key"] == \
        files["/etc/dragonball/portal/registry.json"] == 0o600
    assert all(mode == 0o600 for path, mode in files.items() if path.endswith(".key"))
    assert {"/etc/dragonball/portal/server.crt", "/etc/dragonball/ca/agent-clients.crt",
            "/etc/dragonball/etcd/clients-ca.crt", "/etc/dragonball/portal/agent-client.crt",
            "/etc/dragonball/portal/ssh/id_ed25519.pub"} <= set(files)
    settings = standby.bundle_settings(bundle, "/var/lib/dragonball")
    assert (settings.address, settings.hostname, settings.cluster_name, settings.registry) == \
        ("10.0.0.2", "s2", "plant", "10.0.0.1:5000")
    assert settings.data_dir == "/var/lib/dragonball"          # this server's, not the portal's
    assert settings.tls_cert == "/etc/dragonball/portal/server.crt"
    assert settings.state_endpoints == ["https://127.0.0.1:2379", "https://10.0.0.1:2379"]
    assert settings_mod.parse(settings.to_yaml()) == settings


def test_a_worker_waits_a_manager_becomes_a_portal_once_then_serves(tmp_path, monkeypatch):
    host = Host(str(tmp_path))
    config = "/etc/dragonball/portal/portal.yaml"
    roles = iter([{}, {"LocalNodeState": "active", "ControlAvailable": False},
                  {"LocalNodeState": "active", "ControlAvailable": True, "NodeAddr": "10.0.0.2"},
                  {"LocalNodeState": "active", "ControlAvailable": True, "NodeAddr": "10.0.0.2"}])
    monkeypatch.setattr(standby, "swarm_info", lambda host: next(roles))
    became, served, slept = [], [], []
    settings = standby.bundle_settings(_bundle(), "/var/lib/dragonball")

    def become(host, own, data_dir, progress, config):
        became.append(own)
        if len(became) == 1:
            raise standby.StandbyError("no portal answered", "asked again")
        host.make_dirs("/etc/dragonball/portal")
        host.write_text(config, settings.to_yaml(), 0o600)
        return settings
    monkeypatch.setattr(standby, "become_manager", become)
    standby.run(config, host=host, serve=served.append, sleep=slept.append)
    assert became == ["10.0.0.2", "10.0.0.2"] and len(slept) == 3
    assert served == [settings]
    # settings there: it just serves
    standby.run(config, host=host, serve=served.append, sleep=slept.append)
    assert len(served) == 2 and len(became) == 2


def test_a_bad_bundle_is_refused_whole_before_anything_is_written(tmp_path, monkeypatch):
    host = Host(str(tmp_path))
    host.make_dirs("/etc/dragonball")
    host.write_text(standby.ENROLLMENT, json.dumps({
        "device_id": 2, "device_token": "t", "swarm": {"manager_address": "10.0.0.1:2377"}}))
    bundle = _bundle()
    bundle["etcd"] = dict(bundle["etcd"], initial_cluster="s1=https://10.0.0.1:2380")
    monkeypatch.setattr(standby, "manager_addresses", lambda host: [])
    monkeypatch.setattr(standby, "fetch_bundle", lambda *a: bundle)
    progress = types.SimpleNamespace(update=lambda m: None)
    try:
        standby.become_manager(host, "10.0.0.2", "/var/lib/dragonball", progress)
        raise AssertionError("accepted")
    except standby.StandbyError as e:
        assert "the initial cluster does not name this member" in e.message
    assert sorted(p.name for p in (tmp_path / "etc/dragonball").iterdir()) == \
        ["enrollment.json"]
    assert dataclasses.is_dataclass(standby.bundle_settings(_bundle(), "/d"))
