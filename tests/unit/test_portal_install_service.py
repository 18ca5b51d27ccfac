"""The portal service's steps (portal.runtime, portal.service) on a played server
(portal_fakes), and what the answers make (the unit, the registry container)."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from dragonball.installer import processes
from dragonball.installer.portal import layout
from dragonball.installer.portal import service
from dragonball.installer.undo import undo_all
from portal_fakes import _context, bin_file, played  # noqa: F401 (fixtures)

def test_the_runtime_is_unpacked_once_and_swapped_when_it_changes(played, tmp_path, bin_file,
                                                                  monkeypatch):
    ctx = _context(played, tmp_path)
    ctx.journal.start("portal.runtime")
    service.install_runtime(ctx)
    exe = played.root / "opt/dragonball/runtime/dragonball"
    first = exe.stat().st_ino
    service.install_runtime(ctx)
    assert exe.stat().st_ino == first  # the same sha256: nothing unpacked again
    stamp = played.root / "opt/dragonball/runtime/.sha256"
    stamp.write_text("0" * 64 + "\n")  # as if an older release had put its runtime here
    service.install_runtime(ctx)
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
        service.unpack_runtime(io.BytesIO(data.getvalue()), str(parent),
                                        str(parent / "runtime"))
    assert os.listdir(parent) == []


def test_without_systemd_the_portal_runs_detached_and_reset_stops_it(played, tmp_path):
    ctx = _context(played, tmp_path, systemd=False)
    ctx.journal.start("portal.runtime")
    service.install_runtime(ctx)
    ctx.journal.done("portal.runtime", {})
    (played.root / "etc/dragonball/portal").mkdir(parents=True)
    ctx.journal.start("portal.service")
    service.start_service(ctx)
    ctx.journal.done("portal.service", {})
    host = played.host()
    pid = processes.pid_alive(host, layout.PIDFILE)
    assert pid is not None
    assert not (played.root / "etc/systemd").exists()
    undo_all(ctx.journal, host)
    assert processes.pid_alive(host, layout.PIDFILE) is None
    os.waitpid(pid, os.WNOHANG)  # our child: reap it


def test_the_unit_and_the_registry_container_are_pure():
    unit = layout.unit_text("10.0.0.1")
    assert "Restart=always" in unit and "WantedBy=multi-user.target" in unit
    one = layout.registry_config_hash("sha256:1", "/var/lib/dragonball")
    assert one == layout.registry_config_hash("sha256:1", "/var/lib/dragonball")
    assert one != layout.registry_config_hash("sha256:2", "/var/lib/dragonball")
    assert one != layout.registry_config_hash("sha256:1", "/srv/db")
    assert layout.certificate_names("10.0.0.1", "s1") == (
        ["10.0.0.1", "127.0.0.1"], ["s1", "localhost"])
    assert layout.bin_name({}, {"version": "2.0"}) == "DragonBall-2.0.bin"
    assert layout.bin_name({"DRAGONBALL_BIN": "/root/x/DB-3.bin"}, None) == "DB-3.bin"
