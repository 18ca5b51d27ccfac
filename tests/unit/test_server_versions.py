"""Which DragonBall and release each server runs: the node labels (shared/node_labels.py),
what the portal reads of them (portal/versions.py) and what the pages say (web/views.py)."""

from __future__ import annotations

import dataclasses

import pytest

import dragonball
from dragonball.errors import InvalidInput
from dragonball.portal import upgrade_audit, versions
from dragonball.portal.web import views
from dragonball.release import installed
from dragonball.shared import node_labels
from dragonball.swarm import Node, SwarmError


class Nodes:
    """Swarm nodes in memory: update_node as the adapter's (labels merged, None removes)."""

    def __init__(self, *ids: str, local: str = "", down: bool = False) -> None:
        self.labels = {i: {} for i in ids}
        self.local, self.down = local, down

    def update_node(self, node_id, labels=None, **_):
        if self.down:
            raise SwarmError("the engine does not answer")
        before = dict(self.labels[node_id])
        self.labels[node_id].update(labels or {})
        return self.labels[node_id] != before

    def local_node_id(self):
        if self.down:
            raise SwarmError("the engine does not answer")
        return self.local


@dataclasses.dataclass
class Device:
    id: int
    hostname: str
    node_id: str | None
    state: str = "joined"
    address: str = "10.0.0.1"
    role: str = "device"
    labels: dict = dataclasses.field(default_factory=dict)


NOTES_2 = {"name": "notes", "version": "0.2.0"}


def test_the_labels_say_the_version_and_the_release_and_read_back():
    labels = node_labels.version_labels("0.9.1", NOTES_2)
    assert labels == {"io.dragonball.version": "0.9.1", "io.dragonball.release": "notes 0.2.0"}
    assert node_labels.versions_of(labels) == {"version": "0.9.1", "release": NOTES_2}


@pytest.mark.parametrize("labels", [None, {}, {"io.dragonball.release": "notes"},
                                    {"io.dragonball.release": "notes 0.2.0 extra"},
                                    {"io.dragonball.version": "a b"},
                                    {"io.dragonball.version": "x" * 65}])
def test_labels_that_say_nothing_or_nonsense_are_unknown_never_an_error(labels):
    read = node_labels.versions_of(labels)
    assert read["release"] is None
    assert read["version"] is None or read["version"] == (labels or {}).get(
        "io.dragonball.version")


def test_an_installed_release_record_is_a_release():
    record = installed.bin_record({"name": "notes", "version": "0.2.0"}, signed=True)
    assert node_labels.version_labels("0.9.1", record)["io.dragonball.release"] == \
        "notes 0.2.0"


def test_set_versions_labels_each_server_and_says_which_changed():
    nodes = Nodes("a", "b")
    nodes.labels["a"] = node_labels.version_labels("0.9.1", NOTES_2)
    assert node_labels.set_versions(nodes, ["a", "b"], "0.9.1", NOTES_2) == ["b"]
    assert nodes.labels["b"] == {"io.dragonball.version": "0.9.1",
                                 "io.dragonball.release": "notes 0.2.0"}
    # a rollback: the old ones again
    node_labels.set_versions(nodes, ["a", "b"], "0.9.0", {"name": "notes", "version": "0.1.0"})
    assert {n: lab["io.dragonball.release"] for n, lab in nodes.labels.items()} == \
        {"a": "notes 0.1.0", "b": "notes 0.1.0"}


def test_set_versions_without_a_release_leaves_the_release_label():
    nodes = Nodes("a")
    node_labels.set_versions(nodes, ["a"], "0.9.0", NOTES_2)
    node_labels.set_versions(nodes, ["a"], "0.9.1", None)
    assert nodes.labels["a"] == {"io.dragonball.version": "0.9.1",
                                 "io.dragonball.release": "notes 0.2.0"}


def test_set_versions_refuses_what_is_not_a_version():
    with pytest.raises(InvalidInput, match="not a DragonBall version"):
        node_labels.set_versions(Nodes("a"), ["a"], "", NOTES_2)


def test_set_versions_lets_the_swarms_error_through():
    with pytest.raises(SwarmError):
        node_labels.set_versions(Nodes("a", down=True), ["a"], "0.9.1", NOTES_2)


def test_devices_get_their_nodes_versions_and_unknown_without_one():
    nodes = [Node("n1", "s1", labels=node_labels.version_labels("0.9.1", NOTES_2)),
             Node("n2", "s2")]
    devices = [Device(1, "s1", "n1"), Device(2, "s2", "n2"), Device(3, "s3", None),
               Device(4, "s4", "gone")]
    found = versions.device_versions(devices, nodes)
    assert found[1] == {"version": "0.9.1", "release": NOTES_2}
    assert found[2] == found[3] == found[4] == {"version": None, "release": None}
    assert versions.version_text(found[1]) == ("0.9.1", "notes 0.2.0")
    assert versions.version_text(found[2]) == ("unknown", "unknown")


def test_the_portal_labels_its_own_node_with_its_runtime_and_recorded_release(tmp_path):
    installed.record(installed.bin_record(NOTES_2, signed=False), root=str(tmp_path))
    nodes = Nodes("me", local="me")
    assert versions.label_own_node(nodes, str(tmp_path)) is True
    assert nodes.labels["me"] == {"io.dragonball.version": dragonball.__version__,
                                  "io.dragonball.release": "notes 0.2.0"}


def test_the_portal_without_a_record_or_a_swarm_serves_anyway(tmp_path, caplog):
    nodes = Nodes("me", local="me")
    assert versions.label_own_node(nodes, str(tmp_path / "none")) is True
    assert nodes.labels["me"] == {"io.dragonball.version": dragonball.__version__}
    assert versions.label_own_node(Nodes(local=""), str(tmp_path)) is False
    assert versions.label_own_node(Nodes("me", local="me", down=True), str(tmp_path)) is False
    assert "cannot label this server's node" in caplog.text


def _row(hostname: str, version: str, release: str, state: str = "joined") -> views.DeviceRow:
    return views.DeviceRow(id=0, hostname=hostname, address="", role="device", state=state,
                           labels=[], metrics=None, agent_error=None, version=version,
                           release=release)


def test_the_dashboard_says_the_release_and_nothing_more_when_all_agree():
    summary = views.version_summary([_row("s1", "0.9.1", "notes 0.2.0"),
                                     _row("s2", "0.9.1", "notes 0.2.0"),
                                     _row("s3", "0.9.0", "notes 0.1.0", state="enrolled")])
    assert summary == {"release": "notes 0.2.0", "version": "0.9.1", "differ": None,
                       "silent": []}


def test_the_dashboard_warns_when_servers_differ_naming_them():
    summary = views.version_summary([_row("s1", "0.9.1", "notes 0.2.0"),
                                     _row("s2", "0.9.1", "notes 0.2.0"),
                                     _row("s3", "0.9.0", "notes 0.1.0")])
    assert summary["release"] == "notes 0.2.0"
    assert summary["differ"].level == "warning"
    assert "s3 runs notes 0.1.0 (DragonBall 0.9.0)" in summary["differ"].text
    assert "s1" not in summary["differ"].text


def test_servers_that_do_not_say_are_listed_apart_not_a_difference():
    summary = views.version_summary([_row("s1", "0.9.1", "notes 0.2.0"),
                                     _row("s2", "unknown", "unknown")])
    assert summary["differ"] is None and summary["silent"] == ["s2"]
    nobody = views.version_summary([_row("s1", "unknown", "unknown")])
    assert nobody["release"] == "unknown" and nobody["silent"] == ["s1"]


# --- the upgrade's history in the audit log (portal/upgrade_audit.py) -----------------------

def test_an_upgrade_event_says_from_and_to_with_dragonballs_versions():
    old = installed.bin_record({"name": "notes", "version": "0.1.0",
                                "runtime": {"version": "0.9.0"}}, signed=False)
    kind, detail = upgrade_audit.upgrade_event("phase_failed", old, NOTES_2, phase="app",
                                               error="x" * 5000 + "the api did not start")
    assert kind == "upgrade.phase_failed"
    assert detail["from"] == "notes 0.1.0" and detail["to"] == "notes 0.2.0"
    assert detail["from_dragonball"] == "0.9.0" and "to_dragonball" not in detail
    assert detail["phase"] == "app" and detail["error"].endswith("the api did not start")
    assert len(detail["error"]) == upgrade_audit.ERROR_CHARS
    assert "manifest" not in detail   # a record's manifest is not copied into the log
    _, unknown = upgrade_audit.upgrade_event("started", None, NOTES_2)
    assert unknown == {"from": "unknown", "to": "notes 0.2.0"}


@pytest.mark.parametrize("step,phase", [("begun", None), ("phase_done", None),
                                        ("finished", "app")])
def test_an_upgrade_event_the_log_does_not_know_is_refused(step, phase):
    with pytest.raises(InvalidInput):
        upgrade_audit.upgrade_event(step, None, NOTES_2, phase=phase)


def test_record_upgrade_writes_the_store_and_the_events_page_filters_upgrades(portal_store):
    upgrade_audit.record_upgrade(portal_store, "started", {"name": "notes", "version": "0.1.0"},
                                 NOTES_2)
    portal_store.record("test.event", "tester", None, {})
    upgrade_audit.record_upgrade(portal_store, "finished", {"name": "notes",
                                                            "version": "0.1.0"}, NOTES_2)
    kinds = [e["kind"] for e in portal_store.events_before(None, 10, "upgrade.")]
    assert kinds == ["upgrade.finished", "upgrade.started"]
    assert portal_store.events_before(None, 10)[0]["actor"] == "upgrade"
    assert "test.event" in [e["kind"] for e in portal_store.events_before(None, 10)]
