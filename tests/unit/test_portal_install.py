"""The portal's install steps on a played server: a root folder, a runner playing docker and
systemctl, and the network parts (registry, portal, docker load, push) replaced. Then the
same steps again (idempotent), then reset (undo) takes everything back."""

from __future__ import annotations

import datetime
import gzip
import hashlib
import io
import json
import os
import pathlib
import stat
import tarfile
import types

import bcrypt
import pytest

from dragonball import pki
from dragonball.errors import InstallerError
from dragonball.installer import plan
from dragonball.installer import portal as portal_steps_mod
from dragonball.installer.host import Completed, Host
from dragonball.installer.journal import Journal
from dragonball.installer.steps import run_steps
from dragonball.installer.undo import undo_all
from dragonball.portal import settings as settings_mod
from dragonball.portal.store import Store
from dragonball.release.archive import ArchivedImage
from dragonball.wizard.model import Answers

PASSWORD = "Very-Long-Passphrase-42"
REGISTRY_ID = "sha256:" + "1" * 64
NODE_ID = "portalnode0000000000000001"
TOKENS = {"worker": "SWMTKN-1-worker-secret-token", "manager": "SWMTKN-1-manager-secret-token"}


class PlayedServer:
    """docker and systemctl, played against a little state; every argv recorded."""

    def __init__(self, root: pathlib.Path, swarm: str = "inactive") -> None:
        self.root = root
        self.calls: list[list[str]] = []
        self.stdin: dict[str, bytes] = {}
        self.swarm = swarm
        self.images: dict[str, str] = {}
        self.container: dict | None = None
        self.labels: dict = {}
        self.units: dict = {}
        for name in ("docker", "systemctl"):
            path = root / "usr/bin" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("#!/bin/sh\n")
            path.chmod(0o755)

    def host(self) -> Host:
        return Host(str(self.root), runner=self, environ={"LD_LIBRARY_PATH": "/tmp/_MEIx",
                                                          "LD_LIBRARY_PATH_ORIG": "/opt/lib"})

    def __call__(self, argv, env, timeout, stdin) -> Completed:
        assert all(isinstance(a, str) for a in argv), argv
        assert "_MEI" not in env.get("LD_LIBRARY_PATH", "")
        self.calls.append(list(argv))
        name, args = os.path.basename(argv[0]), list(argv[1:])
        if stdin is not None:
            self.stdin[" ".join(args[:2])] = stdin
        code, out, err = getattr(self, "_" + name)(args)
        return Completed(tuple(argv), code, out, err)

    def docker_calls(self, *prefix) -> list:
        return [c[1:] for c in self.calls if os.path.basename(c[0]) == "docker"
                and c[1:1 + len(prefix)] == list(prefix)]

    def _systemctl(self, args):
        if args[0] == "is-enabled":
            return 0, self.units.get(args[1], {}).get("enabled", "disabled"), ""
        if args[0] in ("enable", "disable"):
            self.units.setdefault(args[1], {})["enabled"] = args[0] + "d"
        if args[0] in ("restart", "stop"):
            self.units.setdefault(args[1], {})["active"] = args[0] == "restart"
        return 0, "", ""

    def _docker(self, args):
        if args[:3] == ["info", "--format", "{{json .Swarm}}"]:
            return 0, json.dumps({"LocalNodeState": self.swarm, "NodeAddr": "10.0.0.1",
                                  "ControlAvailable": self.swarm == "active"}), ""
        if args[:3] == ["info", "--format", "{{.Swarm.NodeID}}"]:
            return 0, (NODE_ID if self.swarm == "active" else "") + "\n", ""
        if args[:3] == ["info", "--format", "{{.Swarm.LocalNodeState}}"]:
            return 0, self.swarm + "\n", ""
        if args[:2] == ["swarm", "init"]:
            self.swarm = "active"
            return 0, f"Swarm initialized ... docker swarm join --token {TOKENS['worker']}", ""
        if args[:2] == ["swarm", "join-token"]:
            return 0, TOKENS[args[-1]] + "\n", ""
        if args[:2] == ["swarm", "leave"]:
            self.swarm = "inactive"
            return 0, "", ""
        if args[:2] == ["node", "update"]:
            for i, a in enumerate(args):
                if a == "--label-add":
                    key, _, value = args[i + 1].partition("=")
                    self.labels[key] = value
            return 0, "", ""
        if args[:2] == ["image", "inspect"]:
            ref = args[-1]
            return (0, self.images[ref] + "\n", "") if ref in self.images else (1, "", "No such")
        if args[:2] == ["image", "rm"]:
            self.images.pop(args[-1], None)
            return 0, "", ""
        if args[0] == "inspect":
            return (0, json.dumps(self.container), "") if self.container else (1, "", "No such")
        if args[0] == "run":
            labels = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--label")
            self.container = {"Image": self.images[args[-1]], "Config": {"Labels": labels},
                              "State": {"Running": True}}
            return 0, "c0ffee\n", ""
        if args[0] == "rm":
            self.container = None
            return 0, "", ""
        if args[0] in ("start", "login", "logout", "logs"):
            return 0, "", ""
        raise AssertionError(f"unexpected docker {args}")


def _runtime_tgz() -> bytes:
    """A runtime.tar.gz as the builder makes it: top folder dragonball/."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        def add(name, content=b"", mode=0o644, kind=tarfile.REGTYPE, link=""):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.linkname = kind, mode, link
            info.size = len(content) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(content) if kind == tarfile.REGTYPE else None)
        add("dragonball", kind=tarfile.DIRTYPE, mode=0o755)
        add("dragonball/dragonball", b"#!/bin/sh\nexec sleep 60\n", 0o755)
        add("dragonball/_internal", kind=tarfile.DIRTYPE, mode=0o755)
        add("dragonball/_internal/libz.so.1", b"\x7fELF...")
        add("dragonball/_internal/libz.so", kind=tarfile.SYMTYPE, link="libz.so.1")
    return data.getvalue()


@pytest.fixture
def bin_file(tmp_path, monkeypatch):
    """A .bin-like file with a runtime section, as the stub announces it."""
    stub, runtime = b"#!/bin/sh\nexit\n" + b"#" * 100, _runtime_tgz()
    path = tmp_path / "DragonBall-9.9.9.bin"
    path.write_bytes(stub + runtime)
    sha = hashlib.sha256(runtime).hexdigest()
    monkeypatch.setenv("DRAGONBALL_BIN", str(path))
    monkeypatch.setenv("DRAGONBALL_BIN_SECTIONS", f"runtime:{len(stub)}:{len(runtime)}:{sha}")
    monkeypatch.delenv("DRAGONBALL_BIN_VERIFIED", raising=False)
    return path


class FakeArchive:
    images = [ArchivedImage("dragonball/registry:9.9.9", "dragonball/registry", "9.9.9",
                            {"digest": "sha256:" + "a" * 64, "size": 10},
                            {"digest": REGISTRY_ID, "size": 20}, []),
              ArchivedImage("notes/web:1", "notes/web", "1", {"digest": "sha256:" + "b" * 64,
                            "size": 10}, {"digest": "sha256:" + "2" * 64, "size": 20}, [])]


@pytest.fixture
def played(tmp_path, monkeypatch, bin_file):
    server = PlayedServer(tmp_path / "root")
    network: dict = {"loads": 0, "pushes": 0, "registry": [], "portal": []}

    import contextlib

    @contextlib.contextmanager
    def archive(environ=None):
        yield FakeArchive()

    def load(host, archive, images):
        network["loads"] += 1
        for image in images:
            server.images[image.ref] = image.config["digest"]

    def push(ctx):
        network["pushes"] += 1
        return {}

    monkeypatch.setattr(portal_steps_mod, "release_archive", archive)
    monkeypatch.setattr(portal_steps_mod, "docker_load", load)
    monkeypatch.setattr(portal_steps_mod, "wait_registry",
                        lambda host, address, user, password: network["registry"].append(
                            (address, user, password)))
    monkeypatch.setattr(portal_steps_mod, "wait_portal",
                        lambda host, settings: network["portal"].append(settings.url))
    monkeypatch.setattr(portal_steps_mod, "push_images", push)
    server.network = network
    return server


class Secrets:
    def __init__(self) -> None:
        self.known: set = set()

    def add(self, *secrets) -> None:
        self.known.update(s for s in secrets if s)


def _context(server: PlayedServer, tmp_path, systemd: bool = True, address: str = "10.0.0.1"):
    journal = Journal.load(str(tmp_path / "journal"))
    journal.begin("digest")
    answers = Answers(role="portal", address=address, data_dir="/var/lib/dragonball",
                      hostname="s1", admin_password=PASSWORD, cluster_name="plant")
    facts = types.SimpleNamespace(hostname="s1-os", init={"systemd": systemd})
    return plan.InstallContext(answers=answers, facts=facts, journal=journal,
                               host=server.host(), secrets=Secrets())


def _step(ctx, step_id: str, action) -> dict:
    """One action run as run_steps would: recorded running, then done."""
    ctx.journal.start(step_id)
    changes = action(ctx)
    ctx.journal.done(step_id, changes)
    return changes


def _files(root: pathlib.Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink() and "usr/bin" not in str(p)}


def test_the_portal_plugs_into_the_plan():
    plan.load_plugins()
    assert "dragonball.installer.portal" in plan.PLUGINS
    assert portal_steps_mod.portal_steps in plan.ROLE_STEPS["portal"]


def test_install_then_again_then_reset(played, tmp_path, capsys):
    ctx = _context(played, tmp_path)
    steps = portal_steps_mod.portal_steps(ctx)
    assert [s.id for s in steps] == list(portal_steps_mod.STEP_IDS)
    run_steps(steps, ctx.journal)
    root = played.root

    # the Swarm, on the answered address; tokens masked from now on
    assert played.docker_calls("swarm", "init") == [
        ["swarm", "init", "--advertise-addr", "10.0.0.1", "--listen-addr", "10.0.0.1:2377"]]
    assert set(TOKENS.values()) <= ctx.secrets.known

    # the PKI: keys 0600, certs for the address, 127.0.0.1 and the hostname
    etc = root / "etc/dragonball"
    for key in ("ca/ca.key", "portal/server.key", "registry/server.key", "portal/ssh/id_ed25519",
                "portal/registry.json", "registry/htpasswd", "portal/portal.yaml"):
        assert stat.S_IMODE((etc / key).stat().st_mode) == 0o600, key
    ca_pem = (etc / "ca/ca.crt").read_bytes()
    assert (etc / "ca.crt").read_bytes() == ca_pem == (etc / "registry/ca.crt").read_bytes()
    for folder in ("portal", "registry"):
        pair = pki.KeyPair((etc / folder / "server.crt").read_bytes(),
                           (etc / folder / "server.key").read_bytes())
        assert portal_steps_mod.cert_fits(pair, ca_pem, ["10.0.0.1", "127.0.0.1"],
                                          ["s1", "localhost"])
    assert (etc / "portal/ssh/id_ed25519.pub").read_text().startswith("ssh-ed25519 ")

    # the registry: credentials, htpasswd that checks, the container, trust, login
    credentials = json.loads((etc / "portal/registry.json").read_text())
    assert credentials["username"] == "dragonball" and len(credentials["password"]) == 43
    user, hashed = (etc / "registry/htpasswd").read_text().strip().split(":", 1)
    assert bcrypt.checkpw(credentials["password"].encode(), hashed.encode())
    assert hashed.startswith("$2b$05$")
    assert credentials["password"] in ctx.secrets.known
    (run,) = played.docker_calls("run")
    assert run[-1] == "dragonball/registry:9.9.9"
    assert ["--network", "host"] == run[run.index("--network"):run.index("--network") + 2]
    assert "/etc/dragonball/registry:/etc/dragonball/registry:ro" in run
    assert "/var/lib/dragonball/registry:/opt/dragon_ball/service/registry/storage" in run
    assert ["--restart", "always"] == run[run.index("--restart"):run.index("--restart") + 2]
    assert "io.dragonball.role=registry" in run  # reset removes io.dragonball.* containers
    assert stat.S_IMODE((root / "var/lib/dragonball/registry").stat().st_mode) == 0o711
    assert played.network["registry"] == [("10.0.0.1:5000", "dragonball", credentials["password"])]
    assert (root / "etc/docker/certs.d/10.0.0.1:5000/ca.crt").read_bytes() == ca_pem
    assert played.stdin["login 10.0.0.1:5000"] == credentials["password"].encode()
    assert played.network == {**played.network, "loads": 1, "pushes": 1}

    # the runtime and the command
    runtime = root / "opt/dragonball/runtime"
    assert os.access(runtime / "dragonball", os.X_OK)
    assert os.readlink(runtime / "_internal/libz.so") == "libz.so.1"
    assert os.readlink(root / "usr/local/bin/dragonball") == "/opt/dragonball/runtime/dragonball"

    # settings, store, service
    settings = settings_mod.load(str(etc / "portal/portal.yaml"))
    assert (settings.address, settings.hostname, settings.cluster_name, settings.bin_name) == \
        ("10.0.0.1", "s1", "plant", "DragonBall-9.9.9.bin")
    store = Store.open(str(root / "var/lib/dragonball/portal/portal.db"))
    try:
        assert store.check_admin("admin", PASSWORD)
        (device,) = store.devices()
        assert (device.hostname, device.role, device.node_id) == ("s1", "portal", NODE_ID)
        assert len(store.codes()) == 1
    finally:
        store.close()
    assert played.labels == {"io.dragonball.role": "portal", "io.dragonball.device-id": "1"}
    unit = (root / "etc/systemd/system/dragonball-portal.service").read_text()
    assert "ExecStart=/opt/dragonball/runtime/dragonball portal serve --config " \
           "/etc/dragonball/portal/portal.yaml" in unit
    assert played.units["dragonball-portal.service"] == {"enabled": "enabled", "active": True}
    assert played.network["portal"] == ["https://10.0.0.1:8443"]

    # the first code, printed once, masked in the log, never in the journal
    out = capsys.readouterr().out
    assert "https://10.0.0.1:8443" in out and "SHA256:" + pki.fingerprint(ca_pem) in out
    code = out.split("Enrollment code: ")[1].split()[0]
    assert f"--code {code}" in out and code in ctx.secrets.known
    journal_text = pathlib.Path(ctx.journal.path).read_text()
    for secret in (code, PASSWORD, credentials["password"], *TOKENS.values(),
                   (etc / "ca/ca.key").read_text().splitlines()[1]):
        assert secret not in journal_text

    # every action again: nothing new
    before = _files(root)
    calls = len(played.calls)
    for step in steps[:-1]:  # the last one makes a new code each time it runs: that is its job
        step.action()
    after = _files(root)
    changed = {k for k in after if before.get(k) != after[k] and not k.startswith("var/lib")}
    assert changed == set()
    new_calls = played.calls[calls:]
    assert not any(c[1:3] in (["swarm", "init"], ["run", "--detach"]) for c in new_calls)
    assert played.network["loads"] == 1

    # reset: the Swarm left, the container and image gone, every file and folder ours gone
    results = undo_all(ctx.journal, played.host())
    assert all(r.status == "undone" for r in results), results
    assert played.swarm == "inactive" and played.container is None and not played.images
    assert played.units["dragonball-portal.service"] == {"enabled": "disabled", "active": False}
    assert ["logout", "10.0.0.1:5000"] in played.docker_calls("logout")
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*") if "usr/bin" not in str(p))
    assert left == ["usr"]  # and usr/bin, the played programs


def test_what_existed_before_stays_after_reset(played, tmp_path):
    ca = pki.create_ca()
    pki.write_pem_files(ca, played.root / "etc/dragonball/ca/ca.crt",
                        played.root / "etc/dragonball/ca/ca.key")
    ctx = _context(played, tmp_path)
    _step(ctx, "portal.pki", portal_steps_mod.make_pki)
    assert (played.root / "etc/dragonball/ca/ca.crt").read_bytes() == ca.cert_pem
    undo_all(ctx.journal, played.host())
    assert (played.root / "etc/dragonball/ca/ca.key").read_bytes() == ca.key_pem
    assert not (played.root / "etc/dragonball/portal").exists()


def test_a_new_address_reissues_the_server_certificates_from_the_same_ca(played, tmp_path):
    _step(_context(played, tmp_path), "portal.pki", portal_steps_mod.make_pki)
    etc = played.root / "etc/dragonball"
    ca_before, cert_before = (etc / "ca/ca.crt").read_bytes(), (etc / "portal/server.crt").read_bytes()
    _step(_context(played, tmp_path / "again", address="10.0.0.7"), "portal.pki",
          portal_steps_mod.make_pki)
    assert (etc / "ca/ca.crt").read_bytes() == ca_before
    assert (etc / "portal/server.crt").read_bytes() != cert_before
    pair = pki.KeyPair((etc / "portal/server.crt").read_bytes(),
                       (etc / "portal/server.key").read_bytes())
    assert portal_steps_mod.cert_fits(pair, ca_before, ["10.0.0.7"], ["s1"])


def test_cert_fits_refuses_another_ca_other_names_and_a_near_end():
    ca = pki.create_ca()
    pair = pki.issue_server_cert(ca, "p", ips=["10.0.0.1"], dns_names=["s1"])
    fits = portal_steps_mod.cert_fits
    assert fits(pair, ca.cert_pem, ["10.0.0.1"], ["s1"])
    assert not fits(pair, pki.create_ca().cert_pem, ["10.0.0.1"], ["s1"])
    assert not fits(pair, ca.cert_pem, ["10.0.0.2"], ["s1"])
    assert not fits(pair, ca.cert_pem, ["10.0.0.1"], ["s2"])
    assert not fits(pki.KeyPair(pair.cert_pem, ca.key_pem), ca.cert_pem, ["10.0.0.1"], ["s1"])
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=800)
    assert not fits(pair, ca.cert_pem, ["10.0.0.1"], ["s1"], now=later)


@pytest.mark.parametrize("info, state", [
    ({}, "none"), ({"LocalNodeState": "inactive"}, "none"),
    ({"LocalNodeState": "active", "ControlAvailable": True}, "manager"),
    ({"LocalNodeState": "active", "ControlAvailable": False}, "worker"),
    ({"LocalNodeState": "locked"}, "locked"),
])
def test_swarm_state(info, state):
    assert portal_steps_mod.swarm_state(info) == state


def test_a_manager_already_is_done_and_a_worker_is_refused(played, tmp_path):
    played.swarm = "active"
    ctx = _context(played, tmp_path)
    ctx.journal.start("portal.swarm")
    assert portal_steps_mod.swarm_init(ctx) == {}
    assert not played.docker_calls("swarm", "init")

    class Worker(PlayedServer):
        def _docker(self, args):
            if args[:3] == ["info", "--format", "{{json .Swarm}}"]:
                return 0, json.dumps({"LocalNodeState": "active", "ControlAvailable": False}), ""
            return super()._docker(args)
    ctx = _context(Worker(tmp_path / "w"), tmp_path / "w")
    ctx.journal.start("portal.swarm")
    with pytest.raises(InstallerError, match="leave the other Swarm first"):
        portal_steps_mod.swarm_init(ctx)


def test_the_runtime_is_unpacked_once_and_swapped_when_it_changes(played, tmp_path, bin_file,
                                                                  monkeypatch):
    ctx = _context(played, tmp_path)
    ctx.journal.start("portal.runtime")
    portal_steps_mod.install_runtime(ctx)
    exe = played.root / "opt/dragonball/runtime/dragonball"
    first = exe.stat().st_ino
    portal_steps_mod.install_runtime(ctx)
    assert exe.stat().st_ino == first  # the same sha256: nothing unpacked again
    stamp = played.root / "opt/dragonball/runtime/.sha256"
    stamp.write_text("0" * 64 + "\n")  # as if an older release had put its runtime here
    portal_steps_mod.install_runtime(ctx)
    assert exe.stat().st_ino != first
    assert not [p for p in (played.root / "opt/dragonball").iterdir() if p.name.startswith(".")]


def test_a_runtime_outside_its_folder_is_refused(tmp_path):
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        info = tarfile.TarInfo("elsewhere/x")
        tar.addfile(info, io.BytesIO(b""))
    parent = tmp_path / "opt"
    parent.mkdir()
    with pytest.raises(Exception, match="outside dragonball/"):
        portal_steps_mod.unpack_runtime(io.BytesIO(data.getvalue()), str(parent),
                                        str(parent / "runtime"))
    assert os.listdir(parent) == []


def test_without_systemd_the_portal_runs_detached_and_reset_stops_it(played, tmp_path):
    ctx = _context(played, tmp_path, systemd=False)
    ctx.journal.start("portal.runtime")
    portal_steps_mod.install_runtime(ctx)
    ctx.journal.done("portal.runtime", {})
    (played.root / "etc/dragonball/portal").mkdir(parents=True)
    ctx.journal.start("portal.service")
    portal_steps_mod.start_service(ctx)
    ctx.journal.done("portal.service", {})
    host = played.host()
    pid = portal_steps_mod.pid_alive(host, portal_steps_mod.PIDFILE)
    assert pid is not None
    assert not (played.root / "etc/systemd").exists()
    undo_all(ctx.journal, host)
    assert portal_steps_mod.pid_alive(host, portal_steps_mod.PIDFILE) is None
    os.waitpid(pid, os.WNOHANG)  # our child: reap it


def test_the_unit_and_the_registry_container_are_pure():
    unit = portal_steps_mod.unit_text("10.0.0.1")
    assert "Restart=always" in unit and "WantedBy=multi-user.target" in unit
    one = portal_steps_mod.registry_config_hash("sha256:1", "/var/lib/dragonball")
    assert one == portal_steps_mod.registry_config_hash("sha256:1", "/var/lib/dragonball")
    assert one != portal_steps_mod.registry_config_hash("sha256:2", "/var/lib/dragonball")
    assert one != portal_steps_mod.registry_config_hash("sha256:1", "/srv/db")
    assert portal_steps_mod.certificate_names("10.0.0.1", "s1") == (
        ["10.0.0.1", "127.0.0.1"], ["s1", "localhost"])
    assert portal_steps_mod.bin_name({}, {"version": "2.0"}) == "DragonBall-2.0.bin"
    assert portal_steps_mod.bin_name({"DRAGONBALL_BIN": "/root/x/DB-3.bin"}, None) == "DB-3.bin"
