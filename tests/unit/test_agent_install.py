"""The node agent's install steps (payload/dragonball/installer/agent.py) on a played server:
a root folder with the portal's CA and registry credentials, a runner playing docker's
secret and service commands. Then the same steps again, a new certificate, and reset."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import stat
import types

import pytest
from cryptography import x509

from dragonball import agent_client, pki
from dragonball.errors import InstallerError
from dragonball.installer import agent as agent_mod
from dragonball.installer import plan, roles
from dragonball.installer.portal import registry as portal_registry
from dragonball.installer.host import Completed, Host
from dragonball.installer.journal import Journal
from dragonball.installer.steps import run_steps
from dragonball.installer.undo import undo_all
from dragonball.release.archive import ArchivedImage
from dragonball.wizard.model import Answers

AGENT_ID = "sha256:" + "3" * 64
PASSWORD = "registry-secret-0123456789"


class PlayedSwarm:
    """docker secret and docker service, played; every argv and stdin recorded."""

    def __init__(self, root: pathlib.Path) -> None:
        self.root, self.calls, self.secrets, self.service = root, [], {}, None
        path = root / "usr/bin/docker"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)

    def host(self) -> Host:
        return Host(str(self.root), runner=self, environ={})

    def __call__(self, argv, env, timeout, stdin) -> Completed:
        assert all(isinstance(a, str) for a in argv), argv
        args = list(argv[1:])
        self.calls.append((args, stdin))
        code, out, err = self.play(args, stdin)
        return Completed(tuple(argv), code, out, err)

    def play(self, args, stdin):
        if args[:2] == ["secret", "inspect"]:
            return (0, "[{}]", "") if args[2] in self.secrets else (1, "", "no such secret")
        if args[:2] == ["secret", "create"]:
            assert args[-1] == "-" and args[2:4] == ["--label", "io.dragonball.role=agent"]
            self.secrets[args[-2]] = stdin
            return 0, "id\n", ""
        if args[:2] == ["secret", "ls"]:
            return 0, "".join(f"{n}\n" for n in self.secrets), ""
        if args[:2] == ["secret", "rm"]:
            self.secrets.pop(args[2], None)
            return 0, "", ""
        if args[:2] == ["service", "inspect"]:
            return (0, json.dumps([self.service]), "") if self.service else (1, "", "no such")
        if args[:2] == ["service", "create"]:
            labels = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--label")
            self.service = {"Spec": {"Labels": labels}, "argv": args}
            return 0, "serviceid\n", ""
        if args[:2] == ["service", "rm"]:
            self.service = None
            return 0, "", ""
        if args[:2] == ["service", "ps"]:
            return 0, "s1 Running", ""
        raise AssertionError(f"unexpected docker {args}")

    def ran(self, *prefix) -> list:
        return [args for args, _ in self.calls if args[:len(prefix)] == list(prefix)]


class FakeArchive:
    images = [ArchivedImage("dragonball/registry:9.9.9", "dragonball/registry", "9.9.9",
                            {"digest": "sha256:" + "a" * 64, "size": 10},
                            {"digest": "sha256:" + "1" * 64, "size": 20}, []),
              ArchivedImage("dragonball/agent:9.9.9", "dragonball/agent", "9.9.9",
                            {"digest": "sha256:" + "b" * 64, "size": 10},
                            {"digest": AGENT_ID, "size": 20}, [])]


@pytest.fixture
def played(tmp_path, monkeypatch):
    server = PlayedSwarm(tmp_path / "root")
    etc = server.root / "etc/dragonball"
    ca = pki.create_ca()
    pki.write_pem_files(ca, etc / "ca/ca.crt", etc / "ca/ca.key")
    pki.write_private(etc / "portal/registry.json",
                      json.dumps({"username": "dragonball", "password": PASSWORD}).encode())
    server.ca = ca
    server.waits = []

    @contextlib.contextmanager
    def archive(environ=None):
        yield FakeArchive()
    monkeypatch.setattr(portal_registry, "release_archive", archive)
    monkeypatch.setattr(agent_mod, "wait_agent",
                        lambda host, address: server.waits.append(address))
    return server


def _context(server: PlayedSwarm, tmp_path, role: str = "portal"):
    journal = Journal.load(str(tmp_path / "journal"))
    journal.begin("digest")
    answers = Answers(role=role, address="10.0.0.1", data_dir="/var/lib/dragonball",
                      hostname="s1", admin_password="x" * 20)
    facts = types.SimpleNamespace(hostname="s1", init={"systemd": True})
    return plan.InstallContext(answers=answers, facts=facts, journal=journal,
                               host=server.host())


def _cert(root: pathlib.Path, path: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((root / path.lstrip("/")).read_bytes())


def test_the_agent_steps_run_after_the_portals_service_and_before_its_first_code(
        monkeypatch, tmp_path, played):
    monkeypatch.setattr(roles.osprep, "os_preps", lambda facts, consent=False: [])
    monkeypatch.setattr(roles.engine_apply, "engine_steps", lambda ctx: [])
    monkeypatch.setattr(roles.osprep, "firewall_prep", lambda facts, role: types.SimpleNamespace(
        id="os.firewall", title="firewall", changes=[]))
    ids = [s.id for s in plan.build_plan(_context(played, tmp_path), roles.STEPS)]
    assert ids[ids.index("portal.images"):] == [
        "portal.images", "portal.runtime", "portal.etcd", "portal.config", "portal.store",
        "portal.service", "agent.params", "agent.pki", "agent.service", "portal.first_code"]
    device = [s.id for s in plan.build_plan(_context(played, tmp_path / "d", role="device"),
                                            roles.STEPS)]
    assert [i for i in device if i.startswith("agent.")] == ["agent.params", "agent.ready"]
    assert device.index("agent.params") == device.index("join.swarm") - 1  # before the task


def test_install_then_again_then_a_new_certificate_then_reset(played, tmp_path):
    ctx = _context(played, tmp_path)
    steps = agent_mod.agent_steps(ctx)
    assert [s.id for s in steps] == list(agent_mod.STEP_IDS)
    run_steps(steps, ctx.journal)
    root, etc = played.root, played.root / "etc/dragonball"

    # certificates: this server's agent identity (its address, its hostname), the
    # portal's client
    for key in ("agent/identity/agent.key", "portal/agent-client.key"):
        assert stat.S_IMODE((etc / key).stat().st_mode) == 0o600, key
    agent_cert = _cert(root, agent_mod.AGENT_CERT)
    san = agent_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == []
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.1"]
    assert agent_cert.subject.rfc4514_string() == "CN=s1"
    agent_cert.verify_directly_issued_by(x509.load_pem_x509_certificate(played.ca.cert_pem))
    # the portal's client certificate: from the clients' CA, which is not the cluster's
    clients_ca = (etc / "ca/agent-clients.crt").read_bytes()
    assert stat.S_IMODE((etc / "ca/agent-clients.key").stat().st_mode) == 0o600
    client = _cert(root, agent_client.CLIENT_CERT)
    client.verify_directly_issued_by(x509.load_pem_x509_certificate(clients_ca))
    with pytest.raises(ValueError):
        client.verify_directly_issued_by(x509.load_pem_x509_certificate(played.ca.cert_pem))
    assert client.subject.rfc4514_string() == "CN=dragonball-portal"

    # secrets: the agent's "ca" (whom it accepts as clients, the clients' CA) alone, named by
    # its content; no server's key is a Swarm secret (each agent reads its own server's)
    key_pem = (etc / "agent/identity/agent.key").read_bytes()
    assert list(played.secrets.values()) == [clients_ca]
    for args, stdin in played.calls:
        assert not any(key_pem.decode().splitlines()[1] in a for a in args)
        assert key_pem != stdin
    names = {"ca": agent_mod.secret_name("ca", clients_ca)}
    assert set(played.secrets) == set(names.values())

    # the service: global, dnsrr, host-mode 9443, /proc read-only, the socket, the secrets
    (create,) = played.ran("service", "create")
    argv = ["docker", *create]
    # by ID: every server loaded it from its .bin, none pulls it (the registry may be down)
    assert argv[-2:] == ["--no-resolve-image", AGENT_ID]

    def after(flag):
        return [argv[i + 1] for i, a in enumerate(argv) if a == flag]
    assert after("--mode") == ["global"] and after("--endpoint-mode") == ["dnsrr"]
    assert after("--name") == ["dragonball-agent"]
    assert after("--publish") == ["mode=host,target=9443,published=9443,protocol=tcp"]
    assert after("--mount") == ["type=bind,src=/proc,dst=/host/proc,readonly",
                                "type=bind,src=/var/run/docker.sock,dst=/var/run/docker.sock",
                                "type=bind,src=/var/lib/dragonball/params,dst=/host/params",
                                "type=bind,src=/var/lib/dragonball/firewall,dst=/host/firewall",
                                "type=bind,src=/etc/dragonball/agent/identity,"
                                "dst=/host/identity,readonly",
                                "type=volume,src=dragonball-transfers,dst=/host/transfers",
                                "type=bind,src=/opt/dragonball,dst=/host/opt-dragonball"]
    assert after("--secret") == [f"source={names['ca']},target=ca.crt,mode=0444"]
    assert after("--hostname") == ["{{.Node.Hostname}}"]
    assert "io.dragonball.role=agent" in after("--container-label")  # reset removes it
    assert not [a for a in after("--env") if "KEY" in a.upper() or "CERT" in a.upper()]
    assert played.waits == ["10.0.0.1"]
    params = root / "var/lib/dragonball/params"
    assert stat.S_IMODE(params.stat().st_mode) == 0o700
    (params / "notes/api").mkdir(parents=True)
    (params / "notes/api/params.json").write_text("{}")  # what the agent writes there

    # again: nothing new
    calls = len(played.calls)
    before = {p: p.read_bytes() for p in etc.rglob("*") if p.is_file()}
    for step in steps:
        step.action()
    assert not [a for a, _ in played.calls[calls:] if a[:2] in (["service", "create"],
                                                               ["secret", "create"])]
    assert before == {p: p.read_bytes() for p in etc.rglob("*") if p.is_file()}

    # an identity that no longer fits (another CA): new files, the service made again (its
    # agents restart and read their identity)
    (etc / "agent/identity/agent.crt").write_bytes(pki.issue_server_cert(
        pki.create_ca(), "x", ips=["10.0.0.1"]).cert_pem)
    for step in steps:
        step.action()
    assert len(played.ran("service", "create")) == 2 and played.ran("service", "rm")
    _cert(root, agent_mod.AGENT_CERT).verify_directly_issued_by(
        x509.load_pem_x509_certificate(played.ca.cert_pem))
    assert len(played.secrets) == 1

    # a clients' CA that no longer fits: a new one, the portal's client certificate from it,
    # the agent's "ca" secret swapped
    old_client = (etc / "portal/agent-client.crt").read_bytes()
    (etc / "ca/agent-clients.key").write_bytes(pki.create_ca().key_pem)  # not its key
    for step in steps:
        step.action()
    clients_ca = (etc / "ca/agent-clients.crt").read_bytes()
    _cert(root, agent_client.CLIENT_CERT).verify_directly_issued_by(
        x509.load_pem_x509_certificate(clients_ca))
    assert (etc / "portal/agent-client.crt").read_bytes() != old_client
    assert agent_mod.secret_name("ca", clients_ca) in played.secrets
    assert len(played.ran("service", "create")) == 3 and len(played.secrets) == 1

    # reset: the service and the secrets gone, the files made here gone
    results = undo_all(ctx.journal, played.host())
    assert all(r.status == "undone" for r in results), results
    assert played.service is None and played.secrets == {}
    left = sorted(str(p.relative_to(etc)) for p in etc.rglob("*") if p.is_file())
    assert left == ["ca/ca.crt", "ca/ca.key", "portal/registry.json"]
    assert not (etc / "agent").exists()
    assert not (root / "var/lib/dragonball").exists()  # made here, with the params in it


def test_a_new_registry_credential_updates_the_service(played, tmp_path):
    ctx = _context(played, tmp_path)
    run_steps(agent_mod.agent_steps(ctx), ctx.journal)
    pki.write_private(played.root / "etc/dragonball/portal/registry.json",
                      json.dumps({"username": "dragonball", "password": "new"}).encode())
    agent_mod.start_service(ctx)
    assert len(played.ran("service", "create")) == 2


def test_without_the_ca_or_the_image_the_errors_say_what_to_do(played, tmp_path, monkeypatch):
    ctx = _context(played, tmp_path)
    ctx.journal.start("agent.service")
    with pytest.raises(InstallerError, match="agent.pki"):
        agent_mod.start_service(ctx)
    os.remove(played.root / "etc/dragonball/ca/ca.key")
    ctx.journal.start("agent.pki")
    with pytest.raises(InstallerError, match="portal.pki"):
        agent_mod.make_pki(ctx)

    @contextlib.contextmanager
    def registry_only(environ=None):
        yield types.SimpleNamespace(images=FakeArchive.images[:1])
    monkeypatch.setattr(portal_registry, "release_archive", registry_only)
    with pytest.raises(Exception, match="no dragonball/agent image"):
        agent_mod.start_service(ctx)


def test_the_service_and_its_hash_are_pure():
    secrets = {"ca": "a"}
    argv = agent_mod.service_argv("r:5000/dragonball/agent:1", secrets, "h")
    assert argv[:3] == ["docker", "service", "create"] and "--detach" in argv
    one = agent_mod.config_hash("r/dragonball/agent:1", secrets, "p")
    assert one == agent_mod.config_hash("r/dragonball/agent:1", secrets, "p")
    assert one != agent_mod.config_hash("r/dragonball/agent:2", secrets, "p")
    assert one != agent_mod.config_hash("r/dragonball/agent:1", {"ca": "a2"}, "p")
    assert one != agent_mod.config_hash("r/dragonball/agent:1", secrets, "p", b"identity")
    assert one != agent_mod.config_hash("r/dragonball/agent:1", secrets, "p2")
    assert agent_mod.secret_name("key", b"x") != agent_mod.secret_name("key", b"y")


def test_a_params_folder_that_was_there_stays_at_reset(played, tmp_path):
    ctx = _context(played, tmp_path, role="device")
    params = played.root / "var/lib/dragonball/params"
    params.mkdir(parents=True, mode=0o755)
    (played.root / "opt/dragonball").mkdir(parents=True)
    step = agent_mod.params_step(ctx)
    run_steps([step], ctx.journal)
    assert stat.S_IMODE(params.stat().st_mode) == 0o700
    assert undo_all(ctx.journal, played.host()) == [] and params.is_dir()
    assert (played.root / "opt/dragonball").is_dir()


def test_the_runtime_folder_the_agent_mounts_is_made_first_and_undone_when_empty(played,
                                                                                 tmp_path):
    """/opt/dragonball must exist before the agent's task starts (a bind mount's source):
    agent.params makes it on a device before it joins; reset removes it when empty."""
    ctx = _context(played, tmp_path, role="device")
    run_steps([agent_mod.params_step(ctx)], ctx.journal)
    assert (played.root / "opt/dragonball").is_dir()
    undo_all(ctx.journal, played.host())
    assert not (played.root / "opt/dragonball").exists()


def test_a_ca_fits_while_it_is_a_ca_with_its_own_key_and_time_left():
    import datetime
    ca, other = pki.create_ca(), pki.create_ca()
    assert agent_mod.ca_fits(ca)
    assert not agent_mod.ca_fits(pki.KeyPair(ca.cert_pem, other.key_pem))
    assert not agent_mod.ca_fits(pki.issue_client_cert(ca, "x"))  # a leaf, not a CA
    assert not agent_mod.ca_fits(pki.KeyPair(b"junk", ca.key_pem))
    late = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=3640)
    assert not agent_mod.ca_fits(ca, now=late)  # 10 days left


def test_a_device_waits_for_its_own_agent_to_be_healthy(tmp_path, monkeypatch):
    """agent.ready: `docker ps` of the agent's healthy task here, asked until one answers;
    after the timeout an error naming the tasks' states (a device's install must not say
    done while the portal cannot drive it yet)."""
    played = PlayedSwarm(tmp_path / "root")
    answers = iter(["", "", "c0ffee\n"])
    seen = []

    def play(args, stdin):
        seen.append(args)
        if "health=healthy" in args:
            return 0, next(answers, "c0ffee\n"), ""
        return 0, "Up 3 seconds (health: starting)\n", ""
    played.play = play
    monkeypatch.setattr(agent_mod.time, "sleep", lambda s: None)
    assert agent_mod.wait_local_agent(played.host()) == "c0ffee"
    assert seen[0][:3] == ["ps", "--filter", "label=com.docker.swarm.service.name="
                           "dragonball-agent"] and len(seen) == 3
    played.play = lambda args, stdin: (0, "" if "health=healthy" in args else
                                       "Up 9 seconds (health: starting)\n", "")
    with pytest.raises(InstallerError, match=r"not healthy after 0 s \(Up 9 seconds"):
        agent_mod.wait_local_agent(played.host(), timeout=0)
