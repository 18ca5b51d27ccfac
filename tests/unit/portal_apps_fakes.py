"""A portal app whose apps API and pages drive a Control over the orchestrator's fakes
(orchestrator_fakes: FakeSwarm, FakeAgents, FakeRegistry) and the portal's real store."""

from __future__ import annotations

import base64
import dataclasses
import pathlib
import threading

from fastapi.testclient import TestClient

from dragonball.orchestrator import planning
from dragonball.orchestrator.control import Control
from dragonball.orchestrator.state import AppStore
from dragonball.portal.api import create_app
from dragonball.portal.store import Store
from orchestrator_fakes import FakeAgents, FakeRegistry, FakeSwarm, task
from portal_web_fakes import ADMIN_PASSWORD, Clock, FakeSources, make_settings
from test_portal_app import FakeCluster

REPO = pathlib.Path(__file__).parents[2]
NOTES = (REPO / "examples" / "notes.app.yaml").read_text()
REGISTRY = "10.0.0.5:5000"
DIGESTS = {f"notes/{m}:0.1.0": f"sha256:{m[0] * 64}" for m in ("web", "api", "store")}
BASIC = {"Authorization": "Basic " + base64.b64encode(
    f"admin:{ADMIN_PASSWORD}".encode()).decode()}


@dataclasses.dataclass
class Portal:
    """The TestClient (not logged in) and the fakes behind it."""

    client: TestClient
    store: Store
    engine: FakeSwarm
    agents: FakeAgents
    registry: FakeRegistry
    sources: FakeSources
    gate: threading.Event   # clear it to hold every engine scale/create until set again

    def control(self) -> Control:
        return self.client.app.state.control_factory()

    def deploy(self, text: str = NOTES) -> None:
        """notes applied and running as `apply` would have left it: api on both nodes."""
        control = self.control()
        control.store.save_app("notes", "notes.app.yaml", text)
        prepared = control.prepare_text(text, "notes.app.yaml")
        units = planning.placed(prepared.spec, prepared.observation)
        for name in units.spec.services:
            self.engine.add(planning.wanted_spec(units.spec, name, prepared.observation.pinned,
                                                 units.slots.get(name)))
        for change in prepared.deployment.labels:   # the pins, as apply left them
            self.engine.update_node(change.node_id, labels={change.key: change.value})
        self.engine.calls[:] = [c for c in self.engine.calls if c[0] != "update_node"]
        self.engine.task_lists["notes_api"] = [
            task("notes_api", 1, "id-a", container="c-api-1"),
            task("notes_api", 2, "id-b", container="c-api-2")]

    def wait(self, job_id: str) -> dict:
        job = self.client.app.state.jobs.wait(job_id, timeout=10)
        assert job is not None and job.done.is_set(), job
        return job.to_dict()


def make_portal(tmp_path) -> Portal:
    settings = make_settings(tmp_path)
    store = Store.open(settings.db_path, clock=Clock())
    store.set_admin_password(ADMIN_PASSWORD)
    store.add_portal("s1", "10.0.0.1", "portalnode")
    engine, agents, registry = FakeSwarm(), FakeAgents(), FakeRegistry(DIGESTS)
    gate = threading.Event()
    gate.set()
    for name in ("scale", "create_service"):
        _gated(engine, name, gate)

    def factory() -> Control:  # rollouts without real sleeps between polls
        return Control(engine, AppStore(store), agents, registry, REGISTRY, wait_s=5.0,
                       sleep=lambda s: None)
    app = create_app(store, settings, FakeCluster(), control_factory=factory)
    sources = FakeSources(store, settings)
    app.state.sources = sources
    client = TestClient(app, base_url="https://testserver")
    return Portal(client, store, engine, agents, registry, sources, gate)


def _gated(engine: FakeSwarm, name: str, gate: threading.Event) -> None:
    original = getattr(engine, name)

    def call(*args, **kwargs):
        assert gate.wait(10), "the test never opened the gate"
        return original(*args, **kwargs)
    setattr(engine, name, call)


def portal_as_root(tmp_path, monkeypatch) -> Portal:
    """A made portal whose commands run as root on it would (`dragonball apply`, `deploy`):
    no settings file, the release records under `tmp_path`, the local apps over its
    Control. The caller ends it: `made.gate.set(); made.store.close()`."""
    from dragonball.commands import apps_local
    from dragonball.portal import settings as settings_mod
    from dragonball.release import installed
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setattr(settings_mod, "CONFIG_FILE", str(tmp_path / "no-settings.yaml"))
    monkeypatch.setattr(installed, "RELEASE_DIR", str(tmp_path / "release"))
    (tmp_path / "p").mkdir()
    made = make_portal(tmp_path / "p")
    monkeypatch.setattr(apps_local, "open_local",
                        lambda args: apps_local.LocalApps(made.control()))
    return made
