"""The runtime reaching every server (issue 18): the node agent puts the runtime its image
carries in place (base_images/agent/agent/module/agent_runtime.py), and the portal's unit
restarts on it when its stamp changes (dragonball.portal.runtime_watch)."""

from __future__ import annotations

import os
import sys
import threading

from dragonball.installer import agent as agent_install
from dragonball.portal import runtime_watch
from support import ROOT

sys.path.insert(0, str(ROOT / "base_images" / "agent" / "agent" / "module"))
import agent_runtime  # noqa: E402

sys.path.pop(0)


def carried(tmp_path, digest="b" * 64, files=("dragonball", "_internal/lib.so")):
    root = tmp_path / "carried"
    for name in files:
        (root / "dragonball" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "dragonball" / name).write_text(f"new {name}")
    (root / "runtime.sha256").write_text(digest + "\n")
    return root


def host(tmp_path, digest="a" * 64):
    parent = tmp_path / "opt-dragonball"
    (parent / "runtime").mkdir(parents=True)
    (parent / "runtime" / "dragonball").write_text("old")
    (parent / "runtime" / ".sha256").write_text(digest + "\n")
    (parent / "engine").mkdir()
    return parent


def test_a_newer_runtime_is_put_in_place_and_the_old_one_kept(tmp_path):
    source, parent = carried(tmp_path), host(tmp_path)
    assert agent_runtime.main(str(source), str(parent)) == 0
    assert (parent / "runtime" / "dragonball").read_text() == "new dragonball"
    assert (parent / "runtime" / "_internal" / "lib.so").read_text() == "new _internal/lib.so"
    assert (parent / "runtime" / ".sha256").read_text().strip() == "b" * 64
    assert (parent / "runtime.previous" / "dragonball").read_text() == "old"
    assert (parent / "engine").is_dir()                       # nothing else touched
    assert not [n for n in os.listdir(parent) if n.startswith(".runtime-")]
    # again: the same runtime is there, nothing is done (the previous stays the old one)
    assert agent_runtime.wanted(str(source), str(parent)) is None
    agent_runtime.main(str(source), str(parent))
    assert (parent / "runtime.previous" / "dragonball").read_text() == "old"


def test_nothing_carried_or_no_host_folder_changes_nothing(tmp_path):
    parent = host(tmp_path)
    assert agent_runtime.wanted(str(tmp_path / "none"), str(parent)) is None
    source = carried(tmp_path)
    assert agent_runtime.wanted(str(source), str(tmp_path / "no-mount")) is None
    (source / "runtime.sha256").write_text("")
    assert agent_runtime.wanted(str(source), str(parent)) is None
    assert agent_runtime.main(str(source), str(parent)) == 0
    assert (parent / "runtime" / "dragonball").read_text() == "old"


def test_a_failure_never_keeps_the_agent_down(tmp_path, monkeypatch, capsys):
    source, parent = carried(tmp_path), host(tmp_path)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(agent_runtime.shutil, "copytree", full)
    assert agent_runtime.main(str(source), str(parent)) == 0
    assert "No space left" in capsys.readouterr().out
    assert (parent / "runtime" / "dragonball").read_text() == "old"   # the old one stays
    assert not [n for n in os.listdir(parent) if n.startswith(".runtime-")]


def test_the_portal_restarts_once_its_runtime_changed(tmp_path, monkeypatch):
    stamp = tmp_path / ".sha256"
    stamp.write_text("a" * 64)
    ended = threading.Event()
    monkeypatch.setenv("INVOCATION_ID", "systemd")
    runtime_watch.watch(str(stamp), interval=0.02, end=ended.set)
    assert not ended.wait(0.1)                 # unchanged: it runs on
    stamp.write_text("b" * 64)
    assert ended.wait(5)


def test_a_stamp_missing_for_a_moment_is_no_change():
    assert not runtime_watch.changed("a", "")
    assert not runtime_watch.changed("", "b")
    assert runtime_watch.changed("a", "b")
    assert not runtime_watch.changed("a", "a")


def test_the_agent_mounts_the_runtime_folder():
    argv = agent_install.service_argv("sha256:" + "c" * 64, {"ca": "ca-1"}, "h")
    assert agent_install.RUNTIME_MOUNT_ARG in argv
    assert "src=/opt/dragonball," in agent_install.RUNTIME_MOUNT_ARG
