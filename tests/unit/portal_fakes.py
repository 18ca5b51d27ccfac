"""Stand-ins for the portal's install tests (tests/unit/test_portal_install*.py): a root
folder, a runner playing docker and systemctl, and the network parts (registry, portal,
docker load, push) replaced. The `played` and `bin_file` fixtures are imported by the test
modules that use them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import tarfile
import types

import pytest

from dragonball import __version__
from dragonball.installer import plan
from dragonball.installer.portal import etcd as portal_etcd
from dragonball.installer.portal import registry as portal_registry
from dragonball.installer.portal import service as portal_service
from dragonball.installer.host import Completed, Host
from dragonball.installer.journal import Journal
from dragonball.release.archive import ArchivedImage
from dragonball.wizard.model import Answers

PASSWORD = "Very-Long-Passphrase-42"
REGISTRY_ID = "sha256:" + "1" * 64
NODE_ID = "portalnode0000000000000001"
ETCD_REF, ETCD_ID = f"dragonball/etcd:{__version__}", "sha256:" + "e" * 64
TOKENS = {"worker": "SWMTKN-1-worker-secret-token", "manager": "SWMTKN-1-manager-secret-token"}


class PlayedServer:
    """docker and systemctl, played against a little state; every argv recorded."""

    def __init__(self, root: pathlib.Path, swarm: str = "inactive") -> None:
        self.root = root
        self.calls: list[list[str]] = []
        self.stdin: dict[str, bytes] = {}
        self.swarm = swarm
        self.cert_expiry_ns = 2160 * 3600 * 10**9  # Swarm's default, 90 days
        self.images: dict[str, str] = {ETCD_REF: ETCD_ID}  # images.load's, from the .bin
        self.containers: dict[str, dict] = {}
        self.labels: dict = {}
        self.units: dict = {}
        for name in ("docker", "systemctl"):
            path = root / "usr/bin" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("#!/bin/sh\n")
            path.chmod(0o755)

    @property
    def container(self) -> dict | None:
        """The registry's container."""
        return self.containers.get("dragonball-registry")

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
                                  "ControlAvailable": self.swarm == "active",
                                  "Cluster": {"Spec": {"CAConfig": {
                                      "NodeCertExpiry": self.cert_expiry_ns}}}}), ""
        if args[:3] == ["info", "--format", "{{.Swarm.NodeID}}"]:
            return 0, (NODE_ID if self.swarm == "active" else "") + "\n", ""
        if args[:3] == ["info", "--format", "{{.Swarm.LocalNodeState}}"]:
            return 0, self.swarm + "\n", ""
        if args[:2] == ["swarm", "ca"]:
            return 0, "", ""
        if args[:2] == ["swarm", "update"]:
            self.cert_expiry_ns = int(args[args.index("--cert-expiry") + 1][:-1]) * 3600 * 10**9
            return 0, "Swarm updated.\n", ""
        if args[:2] == ["swarm", "init"]:
            self.swarm = "active"
            if "--cert-expiry" in args:
                self.cert_expiry_ns = int(args[args.index("--cert-expiry") + 1][:-1]) \
                    * 3600 * 10**9
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
            found = self.containers.get(args[-1])
            return (0, json.dumps(found), "") if found else (1, "", "No such")
        if args[0] == "run":
            labels = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--label")
            ids = set(self.images.values())  # an image by its ID, as the registry's
            image = next(a for a in args if a in self.images or a in ids)
            self.containers[args[args.index("--name") + 1]] = {
                "Image": self.images.get(image, image), "Config": {"Labels": labels},
                "State": {"Running": True}, "Args": args[args.index(image) + 1:]}
            return 0, "c0ffee\n", ""
        if args[0] == "rm":
            self.containers.pop(args[-1], None)
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
    network: dict = {"loads": 0, "pushes": 0, "registry": [], "portal": [], "etcd": []}

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

    monkeypatch.setattr(portal_registry, "release_archive", archive)
    monkeypatch.setattr(portal_registry, "docker_load", load)
    monkeypatch.setattr(portal_registry, "wait_registry",
                        lambda host, address, user, password: network["registry"].append(
                            (address, user, password)))
    monkeypatch.setattr(portal_service, "wait_portal",
                        lambda host, settings: network["portal"].append(settings.url))
    monkeypatch.setattr(portal_registry, "push_images", push)
    monkeypatch.setattr(portal_service, "state_client", lambda ctx, settings: None)
    monkeypatch.setattr(portal_etcd, "wait_healthy",
                        lambda host: network["etcd"].append("healthy"))
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
