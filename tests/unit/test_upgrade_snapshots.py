"""The upgrade's backup takes a snapshot of every volume of the app's slots (DESIGN: "the
pre-upgrade backup includes a snapshot of every stateful slot's volume"): upgrade/snapshots.py
over played agents. The pause itself: test_agent_volume_routes.py (played engine) and
tests/integration/test_agent_volumes.py (a real one)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat

import pytest

from dragonball.agent_client import AgentError
from dragonball.errors import Category
from dragonball.upgrade import snapshots
from dragonball.upgrade.errors import UpgradeFailed


@dataclasses.dataclass
class Node:
    hostname: str
    address: str
    ready: bool = True


class Agents:
    """Each server's volumes (name -> bytes) and labels; what was asked of them."""

    def __init__(self) -> None:
        self.held = {"10.0.0.1": {"notes_store_storage.1": b"redis" * 1000,
                                  "other_db_storage.1": b"x"},
                     "10.0.0.2": {"notes_store_storage.2": b"aof" * 10,
                                  "notes_cache": b"not a slot's"},
                     "10.0.0.3": {"notes_store_storage.3": b"down"}}
        self.calls: list = []
        self.fail: dict = {}        # (address, call) -> AgentError
        self.short = False          # the stream ends early (a broken connection)

    def _maybe_fail(self, address: str, call: str) -> None:
        if (address, call) in self.fail:
            raise self.fail[(address, call)]

    def volumes(self, address: str, sizes: bool = False) -> list[dict]:
        self._maybe_fail(address, "volumes")
        return [{"name": n, "app": n.split("_")[0],
                 "slot": None if n == "notes_cache" else f"store-{n[-1]}",
                 "service": "store"} for n in self.held[address]]

    def volume_report(self, address: str, sizes: bool = False) -> dict:
        return {"volumes": self.volumes(address, sizes), "free_bytes": 100 << 30}

    def export_volume(self, address: str, name: str, timeout: float = 0,
                      pause: bool = False) -> dict:
        self.calls.append(("export", address, name, pause))
        self._maybe_fail(address, "export")
        data = self.held[address][name]
        return {"id": f"t-{name}", "name": name, "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(), "paused": [f"{name}.task"],
                "paused_s": 0.25}

    def read_transfer(self, address: str, transfer_id: str, offset: int = 0,
                      length: int | None = None):
        data = self.held[address][transfer_id[2:]]
        yield data[: len(data) // 2]
        if not self.short:
            yield data[len(data) // 2:]

    def delete_transfer(self, address: str, transfer_id: str) -> dict:
        self.calls.append(("delete_transfer", address, transfer_id))
        return {"removed": True}


NODES = [Node("s1", "10.0.0.1"), Node("s2", "10.0.0.2"), Node("s3", "10.0.0.3", ready=False)]


def test_every_slot_volume_of_the_app_on_every_ready_server_is_copied_and_checked(tmp_path):
    agents, said = Agents(), []
    taken = snapshots.take(agents, NODES, "notes", str(tmp_path), said.append)
    assert [(t["server"], t["name"]) for t in taken] == [("s1", "notes_store_storage.1"),
                                                          ("s2", "notes_store_storage.2")]
    for entry in taken:
        path = tmp_path / entry["file"]
        data = agents.held["10.0.0.1" if entry["server"] == "s1" else "10.0.0.2"][entry["name"]]
        assert path.read_bytes() == data and entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert entry["paused"] == [f"{entry['name']}.task"] and entry["paused_s"] == 0.25
        assert entry["slot"] and entry["service"] == "store"
    assert all(c[3] is True for c in agents.calls if c[0] == "export")   # users paused
    assert [c[2] for c in agents.calls if c[0] == "delete_transfer"] == [
        "t-notes_store_storage.1", "t-notes_store_storage.2"]           # staged files gone
    index = json.loads((tmp_path / snapshots.INDEX).read_text())
    assert index == {"app": "notes", "volumes": taken}
    assert stat.S_IMODE(os.stat(tmp_path / snapshots.INDEX).st_mode) == 0o600
    assert said == ["notes_store_storage.1 on s1", "notes_store_storage.2 on s2"]


def test_no_app_means_no_snapshot_and_an_empty_index(tmp_path):
    assert snapshots.take(Agents(), NODES, None, str(tmp_path)) == []
    assert json.loads((tmp_path / snapshots.INDEX).read_text())["volumes"] == []


@pytest.mark.parametrize("address, call", [("10.0.0.2", "volumes"), ("10.0.0.2", "export")])
def test_a_server_that_cannot_give_its_snapshot_stops_the_upgrade_naming_it(
        tmp_path, address, call):
    agents = Agents()
    agents.fail[(address, call)] = AgentError("cannot reach the agent at 10.0.0.2:9443",
                                              status=None)
    with pytest.raises(UpgradeFailed) as failed:
        snapshots.take(agents, NODES, "notes", str(tmp_path))
    assert "on s2" in failed.value.message and "nothing was changed" in failed.value.message
    assert "s2's agent" in failed.value.hint and failed.value.category is Category.FAILED


def test_a_copy_that_arrives_short_is_refused_and_removed(tmp_path):
    agents = Agents()
    agents.short = True
    with pytest.raises(UpgradeFailed, match="arrived as 2500 bytes"):
        snapshots.take(agents, NODES, "notes", str(tmp_path))
    assert not (tmp_path / "volumes" / "s1" / "notes_store_storage.1.tar").exists()
    assert ("delete_transfer", "10.0.0.1", "t-notes_store_storage.1") in agents.calls


def test_a_full_disk_on_the_portal_is_said_and_leaves_no_part(tmp_path, monkeypatch):
    agents = Agents()

    def full(chunks):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(agents, "read_transfer", lambda *a, **k: full(None))
    with pytest.raises(UpgradeFailed, match="No space left") as failed:
        snapshots.take(agents, NODES, "notes", str(tmp_path))
    assert "free the portal's disk" in failed.value.hint
    assert list((tmp_path / "volumes" / "s1").iterdir()) == []


@pytest.mark.parametrize("no_snapshot", [False, True])
def test_the_backup_phase_keeps_the_store_and_the_slots_snapshots(tmp_path, monkeypatch,
                                                                  no_snapshot):
    """phase_backup: the portal's store copied, then the snapshots (or none, with
    --no-snapshot, which the journal keeps for a resumed run); the journal names the
    backup and how many snapshots it holds (`dragonball release show`)."""
    import types

    from dragonball.portal.store import Store
    from dragonball.release import installed
    from dragonball.upgrade import phases, plan as plan_mod, run
    from dragonball.upgrade.state import UpgradeState
    monkeypatch.setattr(phases, "STATE_DIR", str(tmp_path / "upgrade"))
    monkeypatch.setattr(installed, "RELEASE_DIR", str(tmp_path / "release"))
    store = Store.open(str(tmp_path / "portal.db"))
    site = types.SimpleNamespace(control=types.SimpleNamespace(
        store=types.SimpleNamespace(store=store), agents=Agents()), nodes=lambda: NODES)
    state = UpgradeState(str(tmp_path / "upgrade"))
    current = {"kind": "bin", "name": "notes", "version": "0.1.0"}
    state.begin(current, {**current, "version": "0.2.0"}, None)
    if no_snapshot:
        state.data["no_snapshot"] = True
    runner = phases.Phases(site, None, None, "notes", plan_mod.Plan(()), state, run.Output(),
                           current)
    detail = runner.phase_backup()
    folder = state.data["backup"]
    assert folder.startswith(str(tmp_path / "upgrade" / "backups" / "0.1.0-"))
    assert os.path.getsize(os.path.join(folder, "portal.sqlite")) > 0
    listed = json.loads(open(os.path.join(folder, snapshots.INDEX)).read())["volumes"]
    assert len(listed) == (0 if no_snapshot else 2) == state.summary()["snapshots"]
    assert ("--no-snapshot" in detail) is no_snapshot
    assert no_snapshot or "2 volume snapshot(s)" in detail
    store.close()


def test_a_store_too_big_to_pause_is_named_before_anything_changes():
    """The checks refuse (exit 2) an upgrade whose backup would pause a store for seconds:
    each such volume named with its size and the pause it would cost; other apps' volumes
    and volumes of no slot are not the upgrade's business."""
    big, limit = 300 << 20, snapshots.LIMIT_BYTES
    listed = {"s2": [{"name": "notes_store_storage.1", "app": "notes", "slot": "store-1",
                      "size": big},
                     {"name": "notes_cache", "app": "notes", "slot": None, "size": big},
                     {"name": "wiki_db_storage.1", "app": "wiki", "slot": "db-1", "size": big}],
              "s1": [{"name": "notes_store_storage.2", "app": "notes", "slot": "store-2",
                      "size": limit}]}
    assert snapshots.size_problems(listed, "notes") == [
        "volume notes_store_storage.1 on s2 holds 315 MB: its snapshot would pause slot "
        "store-1 about 3 s (more than 256 MiB: its sentinels would fail over, its health "
        "checks could fail)"]
    assert snapshots.size_problems(listed, "notes", limit=big) == []


def site_of(agents, nodes):
    """run.Site over these agents and nodes (its constructor opens the portal's apps)."""
    import types

    from dragonball.upgrade import run
    site = run.Site.__new__(run.Site)
    site.control = types.SimpleNamespace(agents=agents,
                                         engine=types.SimpleNamespace(nodes=lambda: nodes))
    return site


def test_the_reports_come_from_every_server_asked_once_and_a_silent_one_is_named():
    agents = Agents()
    agents.fail[("10.0.0.2", "volumes")] = AgentError("refused")
    reports, silent = site_of(agents, NODES[:2]).volume_reports(NODES[:2], sizes=True)
    assert reports["s2"] is None and silent == ["server s2 does not answer (refused)"]
    assert len(reports["s1"]["volumes"]) == 2 and reports["s1"]["free_bytes"] == 100 << 30


def test_the_upgrade_s_checks_refuse_a_store_too_big_unless_told_not_to_snapshot(
        tmp_path, monkeypatch):
    """run.cluster_checks: exit 2 (UpgradeRefused) naming the volume, before the plan is
    confirmed; with --no-snapshot (snapshot=False) the same cluster passes."""
    import types

    from dragonball.errors import ExitStatus
    from dragonball.upgrade import run
    agents = Agents()
    listed = agents.volumes

    def with_sizes(address, sizes=False):
        return [dict(v, size=(300 << 20) if v["slot"] == "store-1" else 10)
                for v in listed(address)]
    agents.volumes = with_sizes
    site = site_of(agents, [dataclasses.replace(n, ready=True) for n in NODES[:2]])
    site.settings = types.SimpleNamespace(tls_cert=str(tmp_path / "none"),
                                          ca_cert=str(tmp_path / "none"))
    monkeypatch.setattr(run, "node_problems", lambda nodes: [])
    locked = []
    monkeypatch.setattr(run.app_lock, "acquire", lambda app, holder: locked.append(app) or
                        types.SimpleNamespace(release=lambda: None))
    with pytest.raises(run.UpgradeRefused) as refused:
        run.cluster_checks(site, "notes", {}, {})
    assert "notes_store_storage.1 on s1 holds 315 MB" in refused.value.message
    assert "--no-snapshot" in refused.value.hint and locked == []
    assert refused.value.exit_status is ExitStatus.INVALID
    run.cluster_checks(site, "notes", {}, {}, snapshot=False)
    assert locked == ["notes"]
