"""release.record (issue 18): the install writes down the release it runs from, the portal
keeps the app it carries, a runtime not started from a .bin records nothing, reset removes
what was written. Its place in the plan: test_install_plan.py."""

from __future__ import annotations

import hashlib
import json
import pathlib

import pytest

from dragonball.installer import plan, release_record
from dragonball.installer.host import Host
from dragonball.installer.journal import Journal
from dragonball.installer.steps import StepFailed, run_steps
from dragonball.installer.undo import undo_all
from dragonball.release import installed
from dragonball.release.sections import BinError

ROOT = pathlib.Path(__file__).resolve().parents[2]
SPEC = (ROOT / "examples" / "notes.app.yaml").read_text()
RECORD = "var/lib/dragonball/release/current.json"
KEPT = "var/lib/dragonball/releases/notes/0.1.0/app.yaml"


def manifest(app: str | None = SPEC) -> dict:
    made = {"name": "notes", "version": "0.1.0", "runtime": {"version": "0.9.0"}}
    if app is not None:
        made["app"] = {"file": "notes.app.yaml", "text": app,
                       "sha256": hashlib.sha256(app.encode()).hexdigest()}
    return made


class Warnings(plan.Progress):
    def __init__(self) -> None:
        self.said = []

    def warn(self, text: str) -> None:
        self.said.append(text)


def install(tmp_path, role: str, read_bin):
    journal = Journal.load(str(tmp_path / "journal"))
    journal.begin("digest")
    answers = type("A", (), {"role": role, "data_dir": "/var/lib/dragonball"})()
    ctx = plan.InstallContext(answers=answers, facts=None, journal=journal,
                              host=Host(str(tmp_path / "root")), progress=Warnings())
    run_steps([release_record.record_step(ctx, read_bin, environ={})], journal)
    return ctx


def test_the_portal_records_its_release_and_keeps_the_app_it_carries(tmp_path):
    ctx = install(tmp_path, "portal", lambda environ: (manifest(), True))
    root = tmp_path / "root"
    record = installed.read(root=str(root / "var/lib/dragonball/release"))
    assert (record["name"], record["version"], record["signed"]) == ("notes", "0.1.0", True)
    assert record["runtime_version"] == "0.9.0"
    assert record["app_spec"] == "/" + KEPT
    assert (root / KEPT).read_text() == SPEC
    assert ctx.progress.said == []


def test_a_device_records_its_release_but_keeps_no_app(tmp_path):
    install(tmp_path, "device", lambda environ: (manifest(), False))
    root = tmp_path / "root"
    assert json.loads((root / RECORD).read_text())["app_spec"] is None
    assert not (root / "var/lib/dragonball/releases").exists()


def test_a_release_without_app_records_no_spec(tmp_path):
    install(tmp_path, "portal", lambda environ: (manifest(app=None), False))
    assert json.loads((tmp_path / "root" / RECORD).read_text())["app_spec"] is None


def test_a_runtime_not_started_from_a_bin_records_nothing_and_says_so(tmp_path):
    def no_bin(environ):
        raise BinError("DB_BIN is not set", "run a DragonBall .bin")
    ctx = install(tmp_path, "portal", no_bin)
    assert not (tmp_path / "root" / "var").exists()
    assert ctx.progress.said and "no release recorded" in ctx.progress.said[0]
    assert ctx.journal.changes() == []


def test_an_altered_app_spec_fails_the_step_before_anything_is_written(tmp_path):
    altered = manifest()
    altered["app"]["text"] += "# changed\n"
    with pytest.raises(StepFailed, match="SHA-256"):
        install(tmp_path, "portal", lambda environ: (altered, False))
    assert not (tmp_path / "root" / "var").exists()


def test_reset_removes_what_the_step_wrote_and_deploys_placed_spec(tmp_path):
    ctx = install(tmp_path, "portal", lambda environ: (manifest(), False))
    root = tmp_path / "root"
    (root / KEPT).with_name(release_record.PLACED).write_text(SPEC)
    (root / "var/lib/dragonball/params").mkdir()        # not the step's: it stays
    results = undo_all(Journal.load(str(tmp_path / "journal")), ctx.host)
    assert [r.status for r in results] == ["undone"]
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == [
        "var", "var/lib", "var/lib/dragonball", "var/lib/dragonball/params"]



def test_the_portals_install_ends_by_offering_to_deploy_the_app(tmp_path):
    install(tmp_path, "portal", lambda environ: (manifest(), False))
    record = installed.read(root=str(tmp_path / "root" / "var/lib/dragonball/release"))
    offer = release_record.deploy_offer(record)
    assert "carries app notes" in offer and "dragonball deploy" in offer
    assert release_record.deploy_offer({**record, "app_spec": None}) is None
    assert release_record.deploy_offer(None) is None
