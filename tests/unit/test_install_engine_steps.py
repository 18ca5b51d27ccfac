"""The engine: the decision, daemon.json, the private tree out of the section, and the
steps end to end on a FakeServer (install_fakes) with reset after them."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import time

import pytest

from dragonball.errors import InstallerError
from dragonball.installer import plan
from dragonball.installer.engine import apply as engine_apply
from dragonball.installer.engine import rules, unpack
from dragonball.installer.journal import Journal
from dragonball.installer.steps import StepFailed, run_steps
from dragonball.installer.undo import undo_all
from install_fakes import FakeServer, context
from test_install_osprep import load

@pytest.mark.parametrize("docker, started, path", [
    ({"server": "20.10.24+dfsg1", "dockerd": "20.10.24+dfsg1"}, False, "use"),
    ({"server": "24.0.7", "dockerd": "24.0.7"}, False, "use"),
    ({"server": None, "dockerd": "24.0.7"}, False, "start"),
    ({"server": None, "dockerd": None}, False, "install"),
    ({"server": "19.03.15", "dockerd": "19.03.15"}, False, "install"),
    # Our own half-installed engine answers on the re-run: it is still our install.
    ({"server": "20.10.24+dfsg1", "dockerd": "20.10.24+dfsg1"}, True, "install"),
])
def test_engine_path(docker, started, path):
    _, facts = load("bare-lab-server")
    facts.docker = {**facts.docker, **docker}
    assert rules.engine_path(facts, started) == path


def test_daemon_json_keeps_what_the_admin_set():
    assert rules.daemon_config(None) == rules.DAEMON_SETTINGS
    theirs = {"data-root": "/srv/docker", "log-opts": {"max-file": "9"},
              "default-ulimits": {"nproc": {"Name": "nproc", "Soft": 1, "Hard": 2}}}
    merged = rules.daemon_config(theirs)
    assert merged["data-root"] == "/srv/docker"
    assert merged["log-opts"] == {"max-size": "10m", "max-file": "9"}
    assert set(merged["default-ulimits"]) == {"nofile", "nproc"}
    journald = rules.daemon_config({"log-driver": "journald"})
    assert journald["log-driver"] == "journald" and "log-opts" not in journald
    with pytest.raises(InstallerError, match="not valid JSON"):
        rules.parse_daemon_json("{broken")
    assert rules.parse_daemon_json("  \n") is None


# --- the tree out of the section ------------------------------------------------------------

def engine_tar(path, files: dict, tamper: str | None = None, listing_extra=None) -> list:
    """An engine section as builder/engine_tree.py writes it: engine.json and files/*.gz."""
    entries = []
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            entries.append({"path": name, "mode": 0o755 if name.startswith("bin/") else 0o644,
                            "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                            "member": f"files/{name}.gz"})
            stored = gzip.compress(data if name != tamper else data[:-1] + b"!", mtime=0)
            info = tarfile.TarInfo(f"files/{name}.gz")
            info.size = len(stored)
            tar.addfile(info, io.BytesIO(stored))
        listing = json.dumps({"format": 1, "version": "20.10.24", "files": entries,
                              **(listing_extra or {})}).encode()
        info = tarfile.TarInfo("engine.json")
        info.size = len(listing)
        tar.addfile(info, io.BytesIO(listing))
    return entries


TREE = {"bin/dockerd": os.urandom(3_000_000), "bin/containerd": b"c" * 5,
        "bin/runc": b"r" * 7, "lib/libc.so.6": b"l" * 300_000,
        "lib/ld-linux-x86-64.so.2": b"i" * 3}


def opener(path):
    return lambda: plan.open_file(str(path))


def test_unpack_checks_each_file_and_keeps_good_ones(tmp_path):
    tar, out = tmp_path / "engine.tar", tmp_path / "out"
    engine_tar(tar, TREE)
    seen = []
    assert unpack.unpack_tree(opener(tar), str(out), seen.append) == 5
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == \
        sorted(TREE)
    assert all((out / name).read_bytes() == data for name, data in TREE.items())
    assert os.stat(out / "bin/dockerd").st_mode & 0o777 == 0o755
    assert os.stat(out / "lib/libc.so.6").st_mode & 0o777 == 0o644
    assert seen[-1] == "unpacking the engine: 3 of 3 MB" and len(seen) == 5
    (out / "bin/runc").write_bytes(b"bad")  # a damaged leftover
    assert unpack.unpack_tree(opener(tar), str(out)) == 1
    assert (out / "bin/runc").read_bytes() == b"rrrrrrr"


def test_a_file_that_does_not_match_engine_json_is_refused(tmp_path):
    tar, out = tmp_path / "engine.tar", tmp_path / "out"
    engine_tar(tar, TREE, tamper="bin/containerd")
    with pytest.raises(InstallerError, match="containerd.*SHA-256"):
        unpack.unpack_tree(opener(tar), str(out))
    assert not (out / "bin/containerd").exists()
    assert not [p for p in out.rglob("*.part")]


@pytest.mark.parametrize("extra, message", [
    ({"format": 2}, "format is 2"),
    ({"files": [{"path": "../etc/passwd", "member": "x", "size": 1, "sha256": "0",
                 "mode": 420}]}, "bad file"),
    ({"files": [{"path": "/etc/passwd", "member": "files/bin/runc.gz", "size": 1,
                 "sha256": "0", "mode": 420}]}, "bad file"),
])
def test_a_listing_that_is_wrong_or_climbs_out_is_refused_before_any_write(tmp_path, extra,
                                                                           message):
    tar, out = tmp_path / "engine.tar", tmp_path / "out"
    engine_tar(tar, TREE, listing_extra=extra)
    with pytest.raises(InstallerError, match=message):
        unpack.unpack_tree(opener(tar), str(out))
    assert not out.exists()


def test_shares_balance_the_work_biggest_first():
    files = [{"size": s} for s in (90, 50, 45, 7, 3, 1)]
    groups = unpack.shares(files, 2)
    assert [sum(f["size"] for f in g) for g in groups] == [98, 98]
    assert unpack.shares(files[:1], 4) == [[{"size": 90}]]


# --- the steps on a FakeServer --------------------------------------------------------------------

def engine_context(tmp_path, systemd=True):
    server = FakeServer(tmp_path / "root", bridge=True)
    ctx = context(server, tmp_path, case="bare-lab-server", role="portal")
    ctx.facts.init = {"pid1": "systemd" if systemd else "sh", "systemd": systemd}
    engine_tar(tmp_path / "engine.tar", TREE)
    ctx.open_engine = opener(tmp_path / "engine.tar")
    return server, ctx


def test_install_path_with_systemd_then_reset(tmp_path):
    server, ctx = engine_context(tmp_path)
    server.write("usr/local/bin/.keep", "")
    outcomes = run_steps(engine_apply.engine_steps(ctx), ctx.journal)

    assert [o.id for o in outcomes] == ["engine.files", "engine.units", "engine.config",
                                        "engine.start"]
    tree = server.root / "opt/dragonball/engine"
    assert (tree / "bin/dockerd").read_bytes() == TREE["bin/dockerd"]
    units = {name: server.read(f"etc/systemd/system/{name}")
             for name in ("docker.service", "containerd.service")}
    assert "ExecStart=/opt/dragonball/engine/bin/dockerd " in units["docker.service"]
    assert "Requires=containerd.service" in units["docker.service"]
    assert "Environment=PATH=/opt/dragonball/engine/bin:" in units["containerd.service"]
    assert os.readlink(server.root / "usr/local/bin/docker") == \
        "/opt/dragonball/engine/bin/docker"
    config = json.loads(server.read("etc/docker/daemon.json"))
    assert config["log-opts"] == {"max-size": "10m", "max-file": "3"}
    assert server.units["docker.service"]["active"] and server.engine_up
    assert not any(os.path.basename(c[0]) in ("dpkg", "apt-get", "rpm", "apt")
                   for c in server.calls)

    server.write("etc/docker/key.json", "{}")  # what dockerd writes at its first start
    (server.root / "etc/cni/net.d").mkdir(parents=True)  # and containerd
    reloads = server.reloads
    undo_all(Journal.load(str(tmp_path / "data")), server.host())
    assert not server.engine_up and not server.units["containerd.service"]["active"]
    assert not tree.exists() and (server.root / "opt").exists() is False
    assert not os.path.lexists(server.root / "usr/local/bin/docker")
    assert server.read("etc/systemd/system/docker.service") is None
    assert server.read("etc/systemd/system/containerd.service") is None
    assert server.reloads == reloads + 1  # systemd forgot them
    assert server.read("etc/docker/daemon.json") is None
    assert not (server.root / "etc/docker").exists() and not (server.root / "etc/cni").exists()


def test_a_re_run_after_a_kill_during_the_files_completes_them(tmp_path, monkeypatch):
    server, ctx = engine_context(tmp_path)
    real = unpack._copy_checked
    calls = []

    def killed_on_the_third(stream, where, target, entry):
        calls.append(entry["path"])
        if len(calls) == 3:
            raise KeyboardInterrupt  # the power went
        real(stream, where, target, entry)
    monkeypatch.setattr(unpack, "WORKERS", 1)
    monkeypatch.setattr(unpack, "_copy_checked", killed_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        run_steps(engine_apply.engine_steps(ctx), ctx.journal)
    monkeypatch.setattr(unpack, "_copy_checked", real)
    again = Journal.load(str(tmp_path / "data"))
    ctx.journal = again
    assert [s.id for s in engine_apply.engine_steps(ctx)][0] == "engine.files"
    run_steps(engine_apply.engine_steps(ctx), again)
    tree = server.root / "opt/dragonball/engine"
    assert all((tree / name).read_bytes() == data for name, data in TREE.items())
    undo_all(again, server.host())
    assert not tree.exists()


def test_an_existing_daemon_json_is_merged_and_restored(tmp_path):
    server, ctx = engine_context(tmp_path)
    server.write("etc/docker/daemon.json", '{"data-root": "/srv/docker"}\n')
    run_steps(engine_apply.engine_steps(ctx), ctx.journal)
    config = json.loads(server.read("etc/docker/daemon.json"))
    assert config["data-root"] == "/srv/docker" and config["log-driver"] == "json-file"
    undo_all(ctx.journal, server.host())
    assert server.read("etc/docker/daemon.json") == '{"data-root": "/srv/docker"}\n'


def test_a_running_engine_is_used_and_nothing_is_recorded(tmp_path):
    server, ctx = engine_context(tmp_path)
    ctx.facts.docker = {**ctx.facts.docker, "server": "24.0.7", "dockerd": "24.0.7"}
    server.engine_up = True
    outcomes = run_steps(engine_apply.engine_steps(ctx), ctx.journal)
    assert [o.id for o in outcomes] == ["engine.use"]
    assert ctx.journal.changes() == []
    assert not any(c[0].endswith("/systemctl") for c in server.calls)


def test_the_engine_not_answering_fails_the_step_with_where_to_look(tmp_path, monkeypatch):
    server, ctx = engine_context(tmp_path)
    monkeypatch.setattr(engine_apply, "ENGINE_WAIT_S", 0.5)
    original = server._systemctl

    def start_fails_quietly(args, env):
        code, out, err = original(args, env)
        server.engine_up = False
        return code, out, err
    server._systemctl = start_fails_quietly
    with pytest.raises(StepFailed, match="does not answer") as err:
        run_steps(engine_apply.engine_steps(ctx), ctx.journal)
    assert "journalctl -u docker" in str(err.value)


def test_without_systemd_dockerd_runs_in_its_own_session_and_reset_stops_it(tmp_path):
    server, ctx = engine_context(tmp_path, systemd=False)
    # the tree's dockerd, played by a script: its pid in the file given after --pidfile
    engine_tar(tmp_path / "engine.tar", {**TREE, "bin/dockerd":
                                         b'#!/bin/sh\necho $$ >"$2"\nexec sleep 60\n'})
    original = server._docker
    server._docker = lambda args, env: (0, "20.10.24\n", "") if \
        (server.root / "run/dragonball/dockerd.pid").exists() else original(args, env)
    try:
        run_steps(engine_apply.engine_steps(ctx), ctx.journal)
        pid = int(server.read("run/dragonball/dockerd.pid"))
        os.kill(pid, 0)
        assert os.getsid(pid) == pid  # a session of its own: it outlives the installer
        assert ctx.journal.steps["engine.start"].changes["dockerd"]["kind"] == "dockerd"
        undo_all(ctx.journal, server.host())
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            pytest.fail("dockerd still runs after reset")
        assert not (server.root / "run/dragonball").exists()
    finally:
        assert (server.root / "var/log/dragonball/dockerd.log").is_file()


def test_a_link_planted_at_a_half_written_name_is_replaced_not_followed(tmp_path):
    tar, out = tmp_path / "engine.tar", tmp_path / "out"
    engine_tar(tar, TREE)
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (out / "bin").mkdir(parents=True)
    (out / "bin" / "runc.part").symlink_to(victim)
    unpack.unpack_tree(opener(tar), str(out))
    assert victim.read_text() == "keep me"
    assert (out / "bin" / "runc").read_bytes() == TREE["bin/runc"]
    assert not (out / "bin" / "runc.part").exists()
