"""The upgrade's pure parts (dragonball.upgrade): versions, the plan, the checks, the
placement carried over, its journal and lock, the installed-release records."""

from __future__ import annotations

import os

import pytest
import yaml
from hypothesis import given, strategies as st

from dragonball.app import spec as spec_mod
from dragonball.errors import ExitStatus
from dragonball.release import installed
from dragonball.swarm.model import Node
from dragonball.upgrade import plan as plan_mod
from dragonball.upgrade import checks, run
from dragonball.upgrade.state import UpgradeBusy, UpgradeState, upgrade_lock

SPEC = """
app: notes
services:
  web: {kind: service, image: notes/web:0.1.0, backends: [api], replicas: 2,
        placement: {servers: [s1, s2]}, address: 10.9.0.100/24,
        ports: [{published: 8080, target: 8080}],
        parameters: {listen_port: {type: int, default: 8080}}}
  api: {kind: backend, image: notes/api:0.1.0, depends_on: [store], replicas: 3,
        parameters: {greeting: {type: string, default: hi}, port: {type: int, default: 1}}}
  store: {kind: backend, image: notes/store:0.1.0, storage: true, placement: {servers: [s2]}}
"""


def manifest(version: str, ids: dict, runtime: str = "r1", engine: str = "20.10") -> dict:
    return {"name": "notes", "version": version,
            "runtime": {"sha256": runtime, "version": "0.1.0"},
            "engine": {"packages": [{"name": "docker.io", "version": engine}]},
            "images": [{"ref": ref, "image_id": i, "size": 100} for ref, i in ids.items()]}


def new_spec_text() -> str:
    data = yaml.safe_load(SPEC)
    for name in data["services"]:
        data["services"][name]["image"] = data["services"][name]["image"].replace("0.1.0",
                                                                                  "0.2.0")
        data["services"][name].pop("placement", None)
    data["services"]["api"]["replicas"] = 2
    params = data["services"]["api"]["parameters"]
    params["motd"] = {"type": "string", "default": ""}
    params["port"] = {"type": "string", "default": "1"}
    del params["greeting"]
    return yaml.safe_dump(data)


OLD_IDS = {"notes/web:0.1.0": "sha256:" + "a" * 64, "notes/api:0.1.0": "sha256:" + "b" * 64,
           "notes/store:0.1.0": "sha256:" + "c" * 64,
           "dragonball/agent:0.1.0": "sha256:" + "d" * 64}
NEW_IDS = {"notes/web:0.2.0": "sha256:" + "a" * 64, "notes/api:0.2.0": "sha256:" + "e" * 64,
           "notes/store:0.2.0": "sha256:" + "c" * 64,
           "dragonball/agent:0.1.0": "sha256:" + "d" * 64}


# --- versions -------------------------------------------------------------------------------

@pytest.mark.parametrize("a, b, order", [("0.2.0", "0.1.0", 1), ("0.10.0", "0.9.9", 1),
                                         ("1.0", "1.0.0", 0), ("1.0.0rc1", "1.0.0", -1),
                                         ("0.3.0", "0.3.0", 0), ("2", "10", -1)])
def test_versions_compare_as_numbers(a, b, order):
    assert plan_mod.compare(a, b) == order
    assert plan_mod.compare(b, a) == -order


@given(st.lists(st.integers(0, 30), min_size=1, max_size=4),
       st.lists(st.integers(0, 30), min_size=1, max_size=4))
def test_version_order_is_the_numbers_order(a, b):
    va, vb = ".".join(map(str, a)), ".".join(map(str, b))
    width = max(len(a), len(b))
    pa, pb = a + [0] * (width - len(a)), b + [0] * (width - len(b))
    assert plan_mod.compare(va, vb) == (pa > pb) - (pa < pb)


# --- the plan -------------------------------------------------------------------------------

def test_plan_lists_the_changed_module_and_its_parameters_leaves_first():
    old, new = spec_mod.load(SPEC, "old"), spec_mod.load(new_spec_text(), "new")
    plan = plan_mod.make_plan(manifest("0.1.0", OLD_IDS), manifest("0.2.0", NEW_IDS), old, new)
    app = [c for c in plan.changes if c.part == "app"]
    assert [c.name for c in app] == ["store", "api", "web"]      # leaves first
    api = app[1]
    assert "added motd (string)" in api.detail and "removed greeting" in api.detail
    assert "retyped port int -> string" in api.detail
    assert "eeeeeeeeeeee" in api.after and "bbbbbbbbbbbb" in api.before
    # same image ID under a new tag: listed, said not to restart for it
    assert "same image ID" in app[0].detail
    assert "runtime" not in plan.parts() and "agent" not in plan.parts()


def test_plan_of_dragonball_parts():
    old = manifest("0.1.0", OLD_IDS)
    new = manifest("0.2.0", {**NEW_IDS, "dragonball/agent:0.1.0": "sha256:" + "f" * 64},
                   runtime="r2", engine="24.0")
    plan = plan_mod.make_plan(old, new, None, None)
    assert {"runtime", "portal", "agent", "engine"} <= plan.parts()
    engine = next(c for c in plan.changes if c.part == "engine")
    assert (engine.name, engine.before, engine.after) == ("docker.io", "20.10", "24.0")


def test_an_app_release_without_image_ids_never_claims_the_same_image():
    """An .app's manifest names its images, not their IDs: a new tag is a change."""
    old, new = spec_mod.load(SPEC, "old"), spec_mod.load(new_spec_text(), "new")
    no_ids = {"name": "notes", "version": "0.2.0",
              "images": [{"ref": r, "image_id": ""} for r in NEW_IDS]}
    plan = plan_mod.make_plan({}, no_ids, old, new)
    assert [c.name for c in plan.changes] == ["store", "api", "web"]
    assert not any("same image ID" in c.detail for c in plan.changes)
    assert plan.parts() == {"app"}


def test_the_same_release_plans_nothing():
    spec = spec_mod.load(SPEC, "s")
    plan = plan_mod.make_plan(manifest("0.1.0", OLD_IDS), manifest("0.1.0", OLD_IDS), spec, spec)
    assert plan.empty


# --- checks -------------------------------------------------------------------------------

def rid(version: str, name: str = "notes", kind: str = "bin") -> dict:
    return {"kind": kind, "name": name, "version": version}


def test_another_product_and_a_downgrade_are_refused():
    assert "another product" in checks.identity_problems(rid("0.1.0"), rid("0.2.0", "other"),
                                                      False)[0]
    assert "older" in checks.identity_problems(rid("0.2.0"), rid("0.1.0"), False)[0]
    assert checks.identity_problems(rid("0.2.0"), rid("0.1.0"), True) == []
    assert checks.identity_problems(rid("0.1.0"), rid("0.3.0"), False) == []   # skip a version
    assert "no installed release" in checks.identity_problems(None, rid("0.2.0"), False)[0]
    assert checks.identity_problems(None, rid("1.0", "wiki", "app"), False) == []  # a new app


def node(name, ready=True, role="worker", reach="", leader=False, availability="active"):
    return Node(id=name, hostname=name, ready=ready, role=role, reachability=reach,
                leader=leader, availability=availability)


def test_a_server_down_or_no_quorum_is_said():
    nodes = [node("s1", role="manager", leader=True, reach="reachable"), node("s2"),
             node("s3", ready=False)]
    assert checks.node_problems(nodes) == ["server s3 is down"]
    managers = [node("s1", role="manager", leader=True, reach="reachable"),
                node("s2", role="manager", reach="unreachable", ready=False),
                node("s3", role="manager", reach="unreachable", ready=False)]
    problems = checks.node_problems(managers)
    assert any("no quorum" in p for p in problems)
    assert checks.node_problems([node("s1", role="manager", leader=True, reach="reachable"),
                              node("s2", availability="drain")]) == ["server s2 is drain"]


def test_room_on_every_server():
    assert checks.room_problems({"s1": 10 << 30, "s2": 100 << 20, "s3": None}, 1 << 30) == [
        "server s2 has 100 MiB free where its images are, the new release needs about "
        "1024 MiB: free some space there"]
    assert checks.new_image_bytes(manifest("0.1.0", OLD_IDS), manifest("0.2.0", NEW_IDS)) == 100


def test_a_certificate_ending_before_the_upgrade_is_said(tmp_path):
    from dragonball import pki
    short, long = tmp_path / "short.crt", tmp_path / "long.crt"
    short.write_bytes(pki.create_ca("short", days=1).cert_pem)
    long.write_bytes(pki.create_ca("long", days=30).cert_pem)
    found = checks.cert_problems([str(short), str(long), str(tmp_path / "missing")])
    assert len(found) == 1 and str(short) in found[0] and "renew" in found[0]


def test_placement_and_replicas_carry_over_everything_else_is_new():
    carried = yaml.safe_load(checks.carry_placement(new_spec_text(), SPEC))
    services = carried["services"]
    assert services["web"]["placement"] == {"servers": ["s1", "s2"]}
    assert services["web"]["address"] == "10.9.0.100/24" and services["web"]["replicas"] == 2
    assert services["store"]["placement"] == {"servers": ["s2"]}
    assert services["api"]["replicas"] == 3
    assert "placement" not in services["api"]
    assert services["api"]["image"] == "notes/api:0.2.0"
    assert "motd" in services["api"]["parameters"]
    assert checks.carry_placement("app: x\n", None) == "app: x\n"


# --- the journal and the lock ----------------------------------------------------------------

def test_the_state_survives_a_restart_and_resumes_at_the_phase(tmp_path):
    state = UpgradeState(str(tmp_path))
    state.begin(rid("0.1.0"), rid("0.2.0"), {"file": "a", "text": "b"})
    state.start_phase("backup")
    state.phase_done("backup")
    state.start_phase("images")
    again = UpgradeState(str(tmp_path))          # a new process after a kill -9
    assert again.running and again.same_target(rid("0.2.0"))
    assert again.is_done("backup") and not again.is_done("images")
    assert again.data["phase"] == "images"
    assert oct(os.stat(again.path).st_mode & 0o777) == "0o600"
    again.end("done")
    assert not UpgradeState(str(tmp_path)).running


def test_a_second_upgrade_is_refused_while_one_runs(tmp_path):
    lock = str(tmp_path / "upgrade.lock")
    with upgrade_lock("upgrade to notes 0.2.0", lock):
        with pytest.raises(UpgradeBusy) as caught:
            with upgrade_lock("upgrade to notes 0.3.0", lock):
                pass
    assert caught.value.exit_status == ExitStatus.CONFLICT
    assert "upgrade to notes 0.2.0" in caught.value.message
    with upgrade_lock("again", lock):     # released: taken again
        pass


# --- the records -------------------------------------------------------------------------------

def test_records_keep_the_previous_release_and_go_back(tmp_path):
    root = str(tmp_path)
    assert installed.read(root=root) is None
    installed.record(installed.bin_record(manifest("0.1.0", OLD_IDS), False), root)
    installed.record(installed.bin_record(manifest("0.1.0", OLD_IDS), False), root)
    assert installed.read(installed.PREVIOUS, root) is None      # the same again: no previous
    installed.record(installed.bin_record(manifest("0.2.0", NEW_IDS), False), root)
    assert installed.read(root=root)["version"] == "0.2.0"
    assert installed.read(installed.PREVIOUS, root)["version"] == "0.1.0"
    installed.restore_previous(root)
    assert installed.read(root=root)["version"] == "0.1.0"
    assert installed.read(installed.PREVIOUS, root)["version"] == "0.2.0"


def test_a_tampered_app_spec_in_a_manifest_is_refused():
    from dragonball.release.sections import BinError
    import hashlib
    text = "app: notes\n"
    good = {"app": {"text": text, "sha256": hashlib.sha256(text.encode()).hexdigest()}}
    assert installed.manifest_app(good) == text
    assert installed.manifest_app({}) is None
    with pytest.raises(BinError):
        installed.manifest_app({"app": {"text": text + "x", "sha256": good["app"]["sha256"]}})


def test_the_app_is_held_for_the_whole_upgrade(tmp_path):
    """Between the upgrade's phases no apply (a person's, a portal job's) comes in; the
    upgrade's own applies take no lock meanwhile, and get theirs back after."""
    import types
    from dragonball.shared import app_lock
    site = types.SimpleNamespace(apps=types.SimpleNamespace(lock_dir=str(tmp_path)))
    with run.holding_app(site, "notes", "the upgrade to notes 0.2.0", str(tmp_path)):
        assert site.apps.lock_dir is None
        with pytest.raises(app_lock.AppLocked) as caught:
            app_lock.acquire("notes", "dragonball apply", str(tmp_path))
        assert "upgrade to notes 0.2.0" in caught.value.message
        assert caught.value.exit_status == ExitStatus.CONFLICT
    assert site.apps.lock_dir == str(tmp_path)
    app_lock.acquire("notes", "dragonball apply", str(tmp_path)).release()


# --- the runtime on the server the upgrade runs on ------------------------------------------

def runtime_section(text: str):
    """() -> a context manager of a runtime.tar.gz stream (top folder dragonball/)."""
    import contextlib
    import io
    import tarfile
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        body = f"#!/bin/sh\necho {text}\n".encode()
        info = tarfile.TarInfo("dragonball/dragonball")
        info.size, info.mode = len(body), 0o755
        tar.addfile(info, io.BytesIO(body))
    return lambda: contextlib.nullcontext(io.BytesIO(data.getvalue()))


def test_the_runtime_is_swapped_once_stamped_and_put_back(tmp_path, monkeypatch):
    from dragonball.upgrade import host
    monkeypatch.setattr(host, "restart_portal", lambda: None)
    parent = tmp_path / "opt"
    (parent / "runtime").mkdir(parents=True)
    (parent / "runtime" / "dragonball").write_text("old")
    (parent / "runtime" / ".sha256").write_text("a" * 64 + "\n")
    assert host.swap_runtime(runtime_section("new"), "b" * 64, str(parent))
    assert "echo new" in (parent / "runtime" / "dragonball").read_text()
    assert host.runtime_stamp(str(parent / "runtime")) == "b" * 64
    assert (parent / "runtime.previous" / "dragonball").read_text() == "old"
    # resumed after a kill: already in place, the previous stays the old one
    assert not host.swap_runtime(runtime_section("new"), "b" * 64, str(parent))
    assert (parent / "runtime.previous" / "dragonball").read_text() == "old"
    # a rollback puts back only what the upgrade put there
    assert not host.restore_runtime("c" * 64, str(parent))
    assert host.restore_runtime("b" * 64, str(parent))
    assert (parent / "runtime" / "dragonball").read_text() == "old"
    assert host.runtime_stamp(str(parent / "runtime")) == "a" * 64


def test_only_the_last_backups_are_kept_and_never_this_upgrade_s(tmp_path):
    """Each backup holds the app's data (volume snapshots): the prune phase keeps the newest
    three (a rollback needs the last) and this upgrade's, whatever its time says."""
    from dragonball.upgrade.state import prune_backups
    for i, name in enumerate(["0.1.0-a", "0.2.0-b", "0.3.0-c", "0.4.0-d", "0.5.0-e"]):
        (tmp_path / name).mkdir()
        (tmp_path / name / "portal.sqlite").write_bytes(b"x")
        os.utime(tmp_path / name, (1000 + i, 1000 + i))
    (tmp_path / "a-file").write_text("not a backup")
    gone = prune_backups(str(tmp_path / "0.1.0-a"), str(tmp_path))
    assert gone == ["0.2.0-b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.1.0-a", "0.3.0-c", "0.4.0-d",
                                                          "0.5.0-e", "a-file"]
    assert prune_backups(None, str(tmp_path / "none")) == []
