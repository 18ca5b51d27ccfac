"""The device steps (dragonball.installer.join.DeviceJoin) on a temporary root.

The portal is the TLS fake of join_fakes; `docker` answers from a script. Each test
runs the steps through the real journal and step runner, as install does, and reads
what they left under the root, what they ran and what the portal was told.
"""

from __future__ import annotations

import json
import os
import stat
import time
import types

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import dragonball
from dragonball.installer import join, plan
from dragonball.shared import device_proof
from dragonball.installer.host import Host
from dragonball.installer.journal import Journal, answers_digest
from dragonball.installer.logs import SecretFilter
from dragonball.installer.steps import StepFailed, run_steps
from dragonball.installer.undo import undo_all
from dragonball.release import installed
from dragonball.wizard import Answers
from join_fakes import CODE, SSH_KEY, FakeDocker, portal  # noqa: F401 (fixture)

STEPS = ["join.ca", "join.enroll", "join.registry", "join.swarm", "join.report"]
REGISTRY_CA = "/etc/docker/certs.d/10.0.0.11:5000/ca.crt"


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(join.time, "sleep", lambda seconds: None)


@pytest.fixture
def server(tmp_path):
    """A server root with a `docker` program on it; `server.docker` is its script."""
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/docker").write_text("#!/bin/sh\n")
    (root / "usr/bin/docker").chmod(0o755)
    return types.SimpleNamespace(root=root, docker=FakeDocker(), state=tmp_path / "state")


def context(server, portal, environ=None, **answers):
    values = dict(role="device", address="10.0.0.12", portal=portal.address,
                  enrollment_code=CODE, ca_fingerprint=portal.fingerprint)
    values.update(answers)
    host = Host(str(server.root), server.docker, environ=environ or {"HOME": "/root"},
                engine=server.docker)
    journal = Journal.load(str(server.state))
    answers = Answers(**values)
    journal.begin(answers_digest(answers.as_dict()))
    return plan.InstallContext(answers=answers, facts=types.SimpleNamespace(hostname="s2"),
                               journal=journal, host=host, secrets=SecretFilter())


def install(server, portal, **answers):
    ctx = context(server, portal, **answers)
    return ctx, run_steps(join.device_steps(ctx), ctx.journal)


def read(server, path: str) -> str:
    return (server.root / path.lstrip("/")).read_text()


def mode(server, path: str) -> int:
    return stat.S_IMODE(os.stat(server.root / path.lstrip("/")).st_mode)


def test_a_device_joins(server, portal):
    ctx, outcomes = install(server, portal)
    assert [(o.id, o.status) for o in outcomes] == [(s, "done") for s in STEPS]
    assert read(server, join.CA_PATH).encode() == portal.ca.cert_pem
    assert read(server, REGISTRY_CA).encode() == portal.ca.cert_pem
    assert mode(server, join.CA_PATH) == 0o644
    assert mode(server, join.ENROLLMENT_PATH) == 0o600
    kept = json.loads(read(server, join.ENROLLMENT_PATH))
    assert kept["device_id"] == "d-1" and kept["registry"]["password"] == "registry-secret"
    assert not (server.root / "root/.ssh/authorized_keys").exists()   # though one is offered
    [login] = server.docker.commands()
    assert login == ["docker", "login", "--username", "dragonball", "--password-stdin",
                     "10.0.0.11:5000"]
    assert server.docker.stdins[server.docker.calls.index(login)] == b"registry-secret"
    assert server.docker.joins == [{"manager": "10.0.0.11:2377", "token": "SWMTKN-1-secret",
                                    "advertise": "10.0.0.12", "timeout": join.SWARM_WAIT_S}]
    assert portal.requests == ["GET /api/v1/ca", "POST /api/v1/enroll",
                               "POST /api/v1/devices/d-1/joined"]
    sent = dict(portal.bodies[0])
    csr = x509.load_pem_x509_csr(sent.pop("csr").encode())
    assert sent == {"code": CODE, "hostname": "s2", "address": "10.0.0.12"}
    # this server's agent identity: its key made here (0600, never sent), the portal's
    # certificate for it naming the address and hostname enrolled
    key = serialization.load_pem_private_key(
        (server.root / "etc/dragonball/agent/identity/agent.key").read_bytes(), None)
    assert mode(server, "/etc/dragonball/agent/identity/agent.key") == 0o600
    cert = x509.load_pem_x509_certificate(
        read(server, "/etc/dragonball/agent/identity/agent.crt").encode())
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert cert.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki) == \
        csr.public_key().public_bytes(*spki)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.12"]
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(portal.ca.cert_pem))
    key_text = read(server, "/etc/dragonball/agent/identity/agent.key")
    assert all(key_text.splitlines()[1] not in json.dumps(b) for b in portal.bodies)
    # its versions, for its node's labels: no release recorded (no release.record here)
    assert portal.bodies[-1] == {"node_id": "node-abc", "overlay_encryption": False,
                                 "version": dragonball.__version__}
    assert portal.auth[-1] == "Bearer device-token-1"
    # the report is signed with this server's own key: the portal checks it with the
    # certificate it signed (shared/device_proof.py)
    path, raw, headers = portal.signed[-1]
    assert device_proof.check(cert.public_bytes(serialization.Encoding.PEM), "POST", path, raw,
                              headers, time.time()) is None


def test_the_report_says_the_release_this_server_recorded(server, portal):
    record = installed.bin_record({"name": "notes", "version": "0.2.0"}, signed=False)
    installed.record(record, root=str(server.root / installed.RELEASE_DIR.lstrip("/")))
    install(server, portal)
    assert portal.bodies[-1]["release"] == {"name": "notes", "version": "0.2.0"}
    assert portal.bodies[-1]["version"] == dragonball.__version__


def test_no_secret_is_ever_a_programs_argument(server, portal):
    """Any user of the server reads a program's argv (ps, /proc/<pid>/cmdline): the join
    token goes to the engine's API, the registry password on stdin."""
    ctx, _ = install(server, portal)
    undo_all(ctx.journal, ctx.host)
    argvs = " ".join(" ".join(c) for c in server.docker.calls)
    for secret in ("SWMTKN-1-secret", "registry-secret", "device-token-1", CODE):
        assert secret not in argvs
    assert [j["token"] for j in server.docker.joins] == ["SWMTKN-1-secret"]


def test_secrets_reach_the_log_filter_and_not_the_journal(server, portal):
    ctx, _ = install(server, portal)
    journal = (server.state / "install-journal.json").read_text()
    for secret in ("registry-secret", "SWMTKN-1-secret", "device-token-1", CODE):
        assert ctx.secrets.mask(f"x {secret} y") == "x ******** y"
        assert secret not in journal


def test_a_finished_join_runs_nothing_again(server, portal):
    install(server, portal)
    portal.requests.clear()
    calls = len(server.docker.calls)
    _, outcomes = install(server, portal)
    assert {o.status for o in outcomes} == {"skipped"}
    assert portal.requests == [] and len(server.docker.calls) == calls


def test_a_run_killed_before_the_report_resumes_with_the_saved_answer(server, portal):
    ctx = context(server, portal)
    steps = join.device_steps(ctx)
    run_steps(steps[:3], ctx.journal)
    ctx.journal.start("join.swarm")  # killed here: the step stays "running"
    portal.requests.clear()
    portal.script("/api/v1/enroll", 401, {"error": "code already used"})  # not asked again
    _, outcomes = install(server, portal)
    assert [o.status for o in outcomes] == ["skipped"] * 3 + ["done", "done"]
    assert "POST /api/v1/enroll" not in portal.requests
    assert portal.requests[-1] == "POST /api/v1/devices/d-1/joined"


def test_already_in_this_swarm_is_done(server, portal):
    server.docker = FakeDocker("active", managers=["10.0.0.11:2377"])
    install(server, portal)
    assert [c[1:3] for c in server.docker.commands()] == [["login", "--username"]]
    assert server.docker.joins == []


def test_another_swarm_is_refused_with_the_way_out(server, portal):
    server.docker = FakeDocker("active", managers=["192.168.9.9:2377"])
    with pytest.raises(StepFailed) as err:
        install(server, portal)
    assert "already in another Swarm (managers: 192.168.9.9:2377)" in err.value.message
    assert "docker swarm leave --force" in err.value.hint


def test_a_join_that_times_out_but_goes_on_is_waited_for(server, portal):
    server.docker = FakeDocker(join="background", pending_polls=3)
    _, outcomes = install(server, portal)
    assert outcomes[-1].status == "done"
    assert portal.bodies[-1] == {"node_id": "node-abc", "overlay_encryption": False,
                                 "version": dragonball.__version__}


def test_a_refused_join_says_which_ports(server, portal):
    server.docker = FakeDocker(join="refused")
    with pytest.raises(StepFailed) as err:
        install(server, portal)
    assert "did not join the Swarm at 10.0.0.11:2377" in err.value.message
    assert "connection refused (********)" in err.value.message  # the engine's words, masked
    assert "SWMTKN-1-secret" not in str(err.value)
    assert "2377/tcp" in err.value.hint and "run the same command again" in err.value.hint


def test_programs_run_without_the_frozen_runtimes_libraries(server, portal):
    environ = {"HOME": "/root", "LD_LIBRARY_PATH": "/tmp/_MEI123",
               "LD_LIBRARY_PATH_ORIG": "/opt/vendor/lib"}
    ctx = context(server, portal, environ=environ)
    run_steps(join.device_steps(ctx), ctx.journal)
    assert {e.get("LD_LIBRARY_PATH") for e in server.docker.envs} == {"/opt/vendor/lib"}


def test_reset_takes_everything_back(server, portal):
    ctx, _ = install(server, portal)
    results = undo_all(ctx.journal, ctx.host)
    assert {r.status for r in results} == {"undone"}
    assert not (server.root / "etc").exists()  # every folder made for our files is gone
    assert (server.root / "root/.ssh").exists() is False
    assert [c[1:3] for c in server.docker.commands()][-2:] == [["swarm", "leave"],
                                                              ["logout", "10.0.0.11:5000"]]


def test_a_wrong_fingerprint_stops_before_anything_is_written(server, portal):
    wrong = "SHA256:" + "0" * 64
    with pytest.raises(StepFailed, match="refusing to send it the enrollment code"):
        install(server, portal, ca_fingerprint=wrong)
    assert not (server.root / "etc").exists()
    assert portal.bodies == []


def test_precheck_asks_before_any_change_and_reuses_a_saved_answer(server, portal):
    ctx = context(server, portal)
    found = join.precheck(ctx.answers, "s2", ctx.host)
    assert found.device_id == "d-1" and not (server.root / "etc").exists()
    run_steps(join.device_steps(ctx)[:2], ctx.journal)
    portal.script("/api/v1/enroll", 401, {"error": "code already used"})
    assert join.precheck(ctx.answers, "s2", ctx.host).device_id == "d-1"


def test_precheck_of_a_used_code_on_a_new_server(server, portal):
    ctx = context(server, portal)
    portal.script("/api/v1/enroll", 401, {"error": "code already used"})
    with pytest.raises(join.JoinError, match="code already used"):
        join.precheck(ctx.answers, "s2", ctx.host)


def test_the_install_command_asks_the_wizard_to_check_with_the_portal():
    checks = join.wizard_checks()
    assert None not in (checks.check_portal, checks.check_fingerprint, checks.check_code)


def test_the_wizards_code_check_keeps_an_earlier_runs_device_token(server, portal):
    ctx = context(server, portal)
    run_steps(join.device_steps(ctx)[:2], ctx.journal)  # enrolled, then killed
    portal.bodies.clear()
    checks = join.PortalChecks("s2", "10.0.0.12", host=ctx.host)
    checks.check_fingerprint(portal.address, portal.fingerprint)
    assert checks.check_code(portal.address, CODE) is True
    assert portal.bodies == []  # a new enroll would have replaced the kept token


def test_a_join_that_never_ends_is_said_without_its_token(server, portal):
    server.docker = FakeDocker(join="timeout")
    with pytest.raises(StepFailed) as err:
        install(server, portal)
    assert "POST /swarm/join did not finish within 90 s" in err.value.message
    assert "SWMTKN-1-secret" not in str(err.value)
    assert len(server.docker.joins) == 1  # then re-checked with docker info, not joined again
    assert server.docker.calls[-1][1:3] == ["info", "--format"]


def test_a_join_the_engine_took_but_did_not_do_says_its_state(server, portal, monkeypatch):
    server.docker = FakeDocker()
    monkeypatch.setattr(server.docker, "join_swarm", lambda *args, **kwargs: None)
    with pytest.raises(StepFailed) as err:
        install(server, portal)
    assert "the engine took the join, yet its Swarm state is 'inactive'" in err.value.message


def test_the_device_is_enrolled_under_the_name_swarm_shows(server, portal):
    """The wizard's code check sent the kernel's hostname, and the portal binds the code
    to the first name it gets: an answers file's hostname override must not differ."""
    install(server, portal, hostname="another-name")
    assert {b["hostname"] for b in portal.bodies if "code" in b} == {"s2"}
