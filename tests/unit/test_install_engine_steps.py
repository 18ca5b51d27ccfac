"""The engine: the decision, dpkg's view, daemon.json, the .debs out of the tar, and the
steps end to end on a FakeServer (install_fakes) with reset after them."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time

import pytest

from dragonball.errors import InstallerError
from dragonball.installer import plan
from dragonball.installer.engine import apply as engine_apply
from dragonball.installer.engine import rules
from dragonball.installer.journal import Journal
from dragonball.installer.steps import StepFailed, run_steps
from dragonball.installer.undo import undo_all
from install_fakes import FakeServer, context
from test_install_osprep import load

# --- versions ------------------------------------------------------------------------------------

PAIRS = [("1.0", "1.0"), ("1.0", "1.0-1"), ("1.0~rc1", "1.0"), ("1.0~~", "1.0~"),
         ("2:1.0", "1:9.9"), ("1.8.9-2", "1.8.9-2+deb12u1"), ("1.10", "1.9"),
         ("20.10.24+dfsg1-1+deb12u1+b6", "20.10.24+dfsg1-1+deb12u1"), ("1.0a", "1.0+"),
         ("0.19.0-1+b3", "0.19.0-1"), ("1.6.20~ds1-1+deb12u3", "1.6.20~ds1-1+deb12u1"),
         ("6.4", "6.3"), ("1.0.4-3", "1.0.04-3"), ("a", "b"), ("1:1.0", "1.0")]


@pytest.mark.parametrize("a, b", PAIRS)
def test_version_order_is_dpkgs(a, b):
    ours = rules.compare_versions(a, b)
    assert rules.compare_versions(b, a) == -ours
    if shutil.which("dpkg"):
        def dpkg(op):
            return subprocess.run(["dpkg", "--compare-versions", a, op, b]).returncode == 0
        assert ours == (-1 if dpkg("lt") else 1 if dpkg("gt") else 0), (a, b)


def test_what_dpkg_must_install():
    bundled = [{"name": "docker.io", "version": "20.10.24"}, {"name": "iptables",
               "version": "1.8.9-2"}, {"name": "tini", "version": "0.19.0-1"},
               {"name": "runc", "version": "1.1.5"}, {"name": "netbase", "version": "6.4"}]
    state = rules.parse_dpkg_query("iptables\t1.8.9-2\tii \ntini\t0.19.0-1\tiF \n"
                                    "runc\t1.1.4\tii \nnetbase\t6.5\tii \n"
                                    "docker.io\t20.10.24\trc \n")
    assert [p["name"] for p in rules.packages_to_install(bundled, state)] == [
        "docker.io", "tini", "runc"]  # missing, half-configured, older; never downgraded
    assert [rules.is_absent(state.get(n)) for n in ("docker.io", "tini", "x")] == \
        [True, False, True]


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


# --- the .debs out of the tar ----------------------------------------------------------------------

def engine_tar(path, debs: dict, tamper: str | None = None) -> list:
    packages = []
    with tarfile.open(path, "w") as tar:
        for name, data in debs.items():
            package, version, _ = name.split("_")
            packages.append({"name": package, "version": version.replace("%3a", ":"),
                             "filename": name, "size": len(data),
                             "sha256": hashlib.sha256(data).hexdigest()})
            stored = data if name != tamper else data[:-1] + b"!"
            info = tarfile.TarInfo(name)
            info.size = len(stored)
            tar.addfile(info, io.BytesIO(stored))
        listing = json.dumps({"schema": 1, "packages": packages}).encode()
        info = tarfile.TarInfo("packages.json")
        info.size = len(listing)
        tar.addfile(info, io.BytesIO(listing))
    return packages


DEBS = {"docker.io_20.10.24_amd64.deb": b"d" * 300_000, "containerd_1.6.20_amd64.deb": b"c" * 5,
        "libdevmapper1.02.1_2%3a1.02.185-2_amd64.deb": b"l" * 7,
        "iptables_1.8.9-2_amd64.deb": b"i" * 3}


def test_unpack_checks_each_deb_and_keeps_good_ones(tmp_path):
    tar, out = tmp_path / "engine.tar", tmp_path / "out"
    out.mkdir()
    engine_tar(tar, DEBS)
    seen = []
    with open(tar, "rb") as f:
        assert engine_apply.unpack_debs(f, str(out), seen.append) == 4
    assert sorted(p.name for p in out.iterdir()) == sorted([*DEBS, "packages.json"])
    assert seen[-1].endswith("0 of 0 MB") and len(seen) == 4
    (out / "iptables_1.8.9-2_amd64.deb").write_bytes(b"bad")  # a damaged leftover
    with open(tar, "rb") as f:
        assert engine_apply.unpack_debs(f, str(out)) == 1
    assert (out / "iptables_1.8.9-2_amd64.deb").read_bytes() == b"iii"


def test_a_deb_that_does_not_match_packages_json_is_refused(tmp_path):
    tar, out = tmp_path / "engine.tar", tmp_path / "out"
    out.mkdir()
    engine_tar(tar, DEBS, tamper="containerd_1.6.20_amd64.deb")
    with open(tar, "rb") as f, pytest.raises(InstallerError, match="containerd.*SHA-256"):
        engine_apply.unpack_debs(f, str(out))
    assert not any(p.name.startswith("containerd") for p in out.iterdir())


# --- the steps on a FakeServer --------------------------------------------------------------------

def engine_context(tmp_path, systemd=True, installed=None):
    server = FakeServer(tmp_path / "root", bridge=True)
    server.dpkg = dict(installed or {"iptables": ("1.8.9-2", "ii ")})
    ctx = context(server, tmp_path, case="bare-lab-server", role="portal")
    ctx.facts.init = {"pid1": "systemd" if systemd else "sh", "systemd": systemd}
    engine_tar(tmp_path / "engine.tar", DEBS)
    ctx.open_engine = lambda: plan.open_file(str(tmp_path / "engine.tar"))
    return server, ctx


def test_install_path_with_systemd_then_reset(tmp_path):
    server, ctx = engine_context(tmp_path)
    server.write("etc/group", "root:x:0:\n")
    policy_during_dpkg = []
    server.on_call = lambda argv: policy_during_dpkg.append(
        server.read("usr/sbin/policy-rc.d")) if "-i" in argv else None

    outcomes = run_steps(engine_apply.engine_steps(ctx), ctx.journal)

    assert [o.id for o in outcomes] == ["engine.unpack", "engine.packages", "engine.config",
                                        "engine.start"]
    dpkg_runs = [c for c in server.calls if c[0].endswith("/dpkg") and "-i" in c]
    assert len(dpkg_runs) == 1  # one call, every missing package; iptables was there
    assert sorted(os.path.basename(d).split("_")[0] for d in dpkg_runs[0][4:]) == [
        "containerd", "docker.io", "libdevmapper1.02.1"]
    assert "exit 101" in policy_during_dpkg[0]
    assert server.read("usr/sbin/policy-rc.d") is None
    config = json.loads(server.read("etc/docker/daemon.json"))
    assert config["log-opts"] == {"max-size": "10m", "max-file": "3"}
    assert server.units["docker.service"]["active"] and server.engine_up
    noted = ctx.journal.steps["engine.packages"].changes
    assert sorted(noted["packages"]["installed"]) == ["containerd", "docker.io",
                                                      "libdevmapper1.02.1"]
    assert "file:/usr/sbin/policy-rc.d" not in noted
    assert not any("apt" in a for c in server.calls for a in c)

    assert "docker:" in server.read("etc/group")
    server.write("etc/docker/key.json", "{}")  # what dockerd writes at its first start
    (server.root / "etc/cni/net.d").mkdir(parents=True)  # and containerd
    undo_all(Journal.load(str(tmp_path / "data")), server.host())
    assert not server.engine_up
    assert {n: s for n, (_, s) in server.dpkg.items()} == {
        "iptables": "ii ", "containerd": "un ", "docker.io": "un ", "libdevmapper1.02.1": "un "}
    assert server.read("etc/docker/daemon.json") is None
    assert not (server.root / "etc/docker").exists() and not (server.root / "etc/cni").exists()
    assert server.read("etc/group") == "root:x:0:\n"  # docker.io's group, gone
    assert not (server.root / "var/lib/dragonball/engine").exists()


def test_a_re_run_after_a_kill_in_dpkg_keeps_the_first_view_of_the_packages(tmp_path):
    server, ctx = engine_context(tmp_path)
    steps = engine_apply.engine_steps(ctx)
    run_steps(steps[:1], ctx.journal)

    def killed_after_half(argv):
        if "-i" in argv:
            for deb in argv[4:6]:  # dpkg got two packages in, then the power went
                name, version, _ = os.path.basename(deb).split("_")
                server.dpkg[name] = (version, "iU ")
            raise KeyboardInterrupt
    server.on_call = killed_after_half
    with pytest.raises(KeyboardInterrupt):
        run_steps(steps, ctx.journal)
    # Ctrl-C takes policy-rc.d back on the way out; a kill -9 would leave it: as here.
    server.write("usr/sbin/policy-rc.d", engine_apply.POLICY_SCRIPT)

    server.on_call = lambda argv: None
    again = Journal.load(str(tmp_path / "data"))
    ctx.journal = again
    assert [s.id for s in engine_apply.engine_steps(ctx)][0] == "engine.unpack"
    run_steps(engine_apply.engine_steps(ctx), again)
    assert sorted(again.steps["engine.packages"].changes["packages"]["installed"]) == [
        "containerd", "docker.io", "libdevmapper1.02.1"]
    assert server.read("usr/sbin/policy-rc.d") is None
    assert all(s == "ii " for _, s in server.dpkg.values())


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
    assert not any(c[0].endswith(("/dpkg", "/systemctl")) for c in server.calls)


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
    (server.root / "usr/sbin/dockerd").write_text(
        '#!/bin/sh\necho $$ >"$2"\nexec sleep 60\n')
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
