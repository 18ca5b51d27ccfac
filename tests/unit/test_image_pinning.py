"""Images everywhere (issue 12, point 1), the pure parts and the supply with fakes: what a
server lacks, the per-server listing, the pulls before a launch and their refusals, the
installer's choice of what to load, the agent's pull checks, the page's and CLI's cells."""

from __future__ import annotations

import sys

import pytest

from dragonball.agent_client import AgentError
from dragonball.commands.images import holding_cells
from dragonball.installer.images import to_load
from dragonball.orchestrator import images, planning
from dragonball.orchestrator.images import ImagesMissing, ImageSupply, ReleaseImage
from dragonball.orchestrator.observe import ManifestUnreadable, Observation, config_digest
from dragonball.portal.web.views import images_view
from dragonball.release.archive import ArchivedImage
from dragonball.swarm import Node, ServiceState
from orchestrator_fakes import FakeAgents, image_id_of
from support import ROOT

sys.path.insert(0, str(ROOT / "base_images" / "agent" / "agent" / "module"))
import agent_images  # noqa: E402

sys.path.pop(0)

API = ReleaseImage("notes/api:0.1.0", "sha256:" + "a" * 64, "r:5000/notes/api@sha256:" + "1" * 64)
WEB = ReleaseImage("notes/web:0.1.0", "sha256:" + "b" * 64, "r:5000/notes/web@sha256:" + "2" * 64)
NODES = (Node("id-1", "s1", "10.0.0.1"), Node("id-2", "s2", "10.0.0.2"),
         Node("id-3", "s3", "10.0.0.3", ready=False))


def rows(*ids: str) -> list[dict]:
    return [{"id": i, "tags": [], "digests": []} for i in ids]


# --- what a server lacks, and the listing ---------------------------------------------------

def test_a_server_lacks_the_images_whose_id_it_does_not_hold():
    held = images.held_ids(rows(API.id) + [{"id": "sha256:c", "tags": ["x:1"],
                                            "digests": ["r/x@sha256:d"]}])
    assert held == {API.id, "sha256:c", "x:1", "r/x@sha256:d"}
    assert images.lacking([API, WEB], held) == [WEB]
    legacy = ReleaseImage("notes/x:1", "", "r/x@sha256:d")   # no ID known: by its digest
    assert images.lacking([legacy], held) == []


def test_holdings_one_row_per_server_held_missing_or_why_not():
    found = images.holdings([WEB, API, API], NODES, {"s1": rows(API.id, WEB.id),
                                                      "s2": rows(API.id)})
    assert [(r["server"], r["held"], r["missing"], r["error"]) for r in found] == [
        ("s1", [API.name, WEB.name], [], ""),
        ("s2", [API.name], [WEB.name], ""),
        ("s3", [], [], "the server is down: its images cannot be listed")]
    assert {r["total"] for r in found} == {2}
    [row] = images.holdings([API], NODES[:1], {"s1": "cannot reach the agent"})
    assert row["error"] == "cannot reach the agent" and row["held"] == []


def test_a_service_s_running_image_by_id_or_as_made_before():
    by_id = ServiceState("notes_api", {"io.dragonball.image": API.name}, API.id)
    assert images.running_image(by_id) == ReleaseImage(API.name, API.id)
    old = ServiceState("notes_web", {}, WEB.pull)
    assert images.running_image(old) == ReleaseImage(WEB.pull, "", WEB.pull)


# --- the supply before a launch -------------------------------------------------------------

def supply(agents, events=None, wait_s=0.0, clock=None):
    return ImageSupply(agents, {"username": "u", "password": "p", "serveraddress": "r:5000"},
                       lambda *e: (events if events is not None else []).append(e),
                       wait_s=wait_s, **({"clock": clock, "sleep": clock.sleep} if clock else {}))


def test_each_ready_server_pulls_only_what_it_lacks_by_digest():
    agents, events = FakeAgents(), []
    agents.images_on = {"10.0.0.1": [API.id, WEB.id], "10.0.0.2": [API.id]}
    done = supply(agents, events).ensure([API, WEB, API], NODES)
    assert agents.pulls == [("10.0.0.2", WEB.pull, WEB.id)]   # s3 is down: not asked
    assert [(d["server"], d["image"]) for d in done] == [("s2", WEB.name)]
    assert events == [(WEB.name, "pulling", "on s2"), (WEB.name, "pulled", "on s2 in 1.5 s")]
    assert supply(agents).ensure([API, WEB], NODES) == []      # all held now


def test_a_server_that_cannot_get_an_image_is_named_with_why():
    agents = FakeAgents()
    agents.images_on = {"10.0.0.1": [API.id]}
    agents.pull_fails = {"10.0.0.2": AgentError("the agent at 10.0.0.2:9443 answered HTTP "
                                                "502: manifest unknown", status=502)}
    with pytest.raises(ImagesMissing) as caught:
        supply(agents).ensure([API], NODES)
    assert "s2 cannot get notes/api:0.1.0: the agent at 10.0.0.2:9443" in caught.value.message
    assert "nothing was launched" in caught.value.hint
    assert caught.value.exit_status == 5


def test_an_agent_that_does_not_answer_and_an_image_with_no_reference_are_named():
    agents = FakeAgents()
    agents.down = {"10.0.0.1"}
    nameless = ReleaseImage("notes/x:1", "sha256:" + "c" * 64)
    with pytest.raises(ImagesMissing) as caught:
        supply(agents).ensure([nameless], NODES)
    message = caught.value.message
    assert "s1 cannot get notes/x:1: its agent does not answer" in message
    assert "s2 cannot get notes/x:1: no registry reference to pull" in message


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_an_agent_that_answers_late_is_waited_for():
    """A server that just joined: its agent's task is still starting."""
    agents, events, clock = FakeAgents(), [], Clock()
    agents.down = {"10.0.0.2"}
    answers = agents.images

    def late(address):
        if clock.now >= 6:
            agents.down = set()
        return answers(address)
    agents.images = late
    supply(agents, events, wait_s=120, clock=clock).ensure([API], NODES)
    assert ("images", "waiting", "for the agent on s2") in events
    assert {a for a, _, _ in agents.pulls} == {"10.0.0.1", "10.0.0.2"}


# --- the plan names the images its launches run ---------------------------------------------

def test_the_plan_lists_each_image_its_launches_run_once(notes_spec):
    observation = Observation("notes", NODES[:2], pinned={
        i: image_id_of(i) for i in ("notes/web:0.1.0", "notes/api:0.1.0", "notes/store:0.1.0")},
        pulls={"notes/api:0.1.0": "r/notes/api@sha256:1"})
    deployment = planning.deploy(notes_spec, observation)
    assert [i.name for i in deployment.images] == ["notes/api:0.1.0", "notes/store:0.1.0",
                                                   "notes/web:0.1.0"]
    api = deployment.images[0]
    assert (api.id, api.pull) == (image_id_of("notes/api:0.1.0"), "r/notes/api@sha256:1")
    step = next(s for s in deployment.launches if s.service == "api")
    assert step.spec["TaskTemplate"]["ContainerSpec"]["Image"] == api.id
    started = planning.start(notes_spec, observation, "api")    # api and what it needs
    assert [i.name for i in started.images] == ["notes/api:0.1.0", "notes/store:0.1.0"]


@pytest.fixture
def notes_spec():
    from dragonball.app import spec as app_spec
    return app_spec.load((ROOT / "examples" / "notes.app.yaml").read_text(), "notes.app.yaml")


def test_the_image_id_is_the_manifest_s_config_digest():
    assert config_digest(b'{"config": {"digest": "sha256:ab"}}', "x:1") == "sha256:ab"
    for bad in (b"not json", b'{"config": {}}', b'{"config": {"digest": 3}}'):
        with pytest.raises(ManifestUnreadable, match="x:1"):
            config_digest(bad, "x:1")


# --- what the installer loads ---------------------------------------------------------------

def archived(ref: str, config: str) -> ArchivedImage:
    repository, tag = ref.rsplit(":", 1)
    return ArchivedImage(ref, repository, tag, {"digest": "sha256:m", "size": 1},
                         {"digest": config, "size": 1}, [])


def test_the_install_loads_only_the_images_the_engine_does_not_hold():
    found = [archived("notes/api:0.1.0", "sha256:a"), archived("notes/web:0.1.0", "sha256:b")]
    assert to_load(found, {"sha256:a"}) == [found[1]]
    assert to_load(found, {"sha256:a", "sha256:b"}) == []


# --- the agent's side -----------------------------------------------------------------------

def test_the_agent_pulls_only_a_reference_pinned_by_digest_with_its_image_id():
    good = {"reference": "10.0.0.1:5000/notes/api@sha256:" + "1" * 64,
            "id": "sha256:" + "a" * 64, "auth": {"username": "u", "password": "p"}}
    assert agent_images.pull_problems(good) == []
    assert len(agent_images.pull_problems({**good, "reference": "notes/api:0.1.0",
                                           "id": "a", "auth": {"username": 1}})) == 3
    assert agent_images.pull_problems([]) == ["the body must be a JSON object"]
    assert agent_images.image_row({"Id": "sha256:a", "RepoTags": ["<none>:<none>"],
                                   "RepoDigests": None}) == {"id": "sha256:a", "tags": [],
                                                             "digests": []}


class Engine:
    def __init__(self, held, gives=None, fails=None):
        self.held, self.gives, self.fails, self.pulled = list(held), gives, fails, []

    def images(self):
        return [{"Id": i} for i in self.held]

    def pull(self, reference, auth):
        if self.fails:
            raise agent_images.DockerError(502, self.fails)
        self.pulled.append((reference, auth))
        if self.gives:
            self.held.append(self.gives)


def test_the_agent_pull_is_checked_against_the_image_id_it_must_give():
    body = {"reference": "r/notes/api@sha256:" + "1" * 64, "id": "sha256:" + "a" * 64}
    engine = Engine([body["id"]])
    assert agent_images.ImagesApi(engine).pull({}, body)[1]["pulled"] is False
    assert engine.pulled == []
    engine = Engine([], gives=body["id"])
    status, answer = agent_images.ImagesApi(engine).pull({}, body)
    assert status == 200 and answer["pulled"] is True and engine.pulled[0][0] == body["reference"]
    with pytest.raises(agent_images.ApiError, match="did not give the image"):
        agent_images.ImagesApi(Engine([], gives="sha256:" + "f" * 64)).pull({}, body)
    with pytest.raises(agent_images.ApiError, match="manifest unknown") as caught:
        agent_images.ImagesApi(Engine([], fails="manifest unknown")).pull({}, body)
    assert caught.value.status == 502


# --- what the page and the CLI show ---------------------------------------------------------

def test_the_devices_page_and_the_cli_cells():
    row = {"server": "s2", "held": [API.name], "missing": [WEB.name], "total": 2, "error": ""}
    assert images_view("s2", {"s2": row}) == {"images": "1/2",
                                              "images_missing": "missing notes/web:0.1.0"}
    assert images_view("s1", {"s2": row}) == {}                 # no app: no cell
    assert images_view("s2", "the engine does not answer") == {
        "images": "?", "images_missing": "the engine does not answer"}
    assert holding_cells(row) == ("[yellow]1/2[/yellow]", "notes/web:0.1.0")
    assert holding_cells({**row, "held": [API.name, WEB.name], "missing": []}) == (
        "[green]2/2[/green]", "none")
    assert holding_cells({**row, "error": "down"})[0] == "?"
