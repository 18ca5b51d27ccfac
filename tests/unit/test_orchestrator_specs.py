"""Swarm service specs from the notes app spec (pure): naming, networking, placement,
volumes, parameters, environment, limits, and the hash that tells a changed definition."""

from __future__ import annotations

import pathlib

import pytest

from dragonball.app.model import ServiceSpec
from dragonball.app.spec import load_file
from dragonball.orchestrator import naming, slotting, specs
from dragonball.shared.node_labels import ENROLLED_CONSTRAINT

REPO = pathlib.Path(__file__).parents[2]
IMAGE = "10.0.0.5:5000/notes/{}@sha256:" + "a" * 64


@pytest.fixture(scope="module")
def notes():
    return load_file(str(REPO / "examples" / "notes.app.yaml"))


@pytest.fixture(scope="module")
def built(notes):
    images = {s.image: IMAGE.format(s.image.split("/")[1].split(":")[0])
              for s in notes.services.values()}
    units = slotting.expand(notes, (), place_new=False)
    return {name: specs.service_spec(notes.app, name, service, images[service.image],
                                     slot=units.slots.get(name))
            for name, service in units.spec.services.items()}


def variant(service: ServiceSpec, **changes) -> ServiceSpec:
    return ServiceSpec.model_validate({**service.model_dump(), **changes})


def env_of(spec: dict) -> dict:
    return dict(item.split("=", 1) for item in spec["TaskTemplate"]["ContainerSpec"]["Env"])


@pytest.mark.parametrize("name", ["web", "api", "store-1"])
def test_every_service_is_dnsrr_on_the_app_network_under_its_spec_name(built, name):
    spec = built[name]
    assert spec["Name"] == f"notes_{name}"
    assert spec["EndpointSpec"]["Mode"] == "dnsrr"
    base = name.split("-")[0]
    aliases = [name] if name == base else [name, base]   # a slot: its own name and its peers'
    assert spec["TaskTemplate"]["Networks"] == [{"Target": "notes_net", "Aliases": aliases}]
    labels = spec["TaskTemplate"]["ContainerSpec"]["Labels"]
    slot = {} if name == base else {"io.dragonball.slot": name}
    assert labels == {"io.dragonball.app": "notes", "io.dragonball.service": base,
                      "io.dragonball.kind": "service" if name == "web" else "backend", **slot}
    assert spec["TaskTemplate"]["RestartPolicy"]["Condition"] == "any"
    # Swarm calls a task running only once the module's status action passed
    assert spec["TaskTemplate"]["ContainerSpec"]["Healthcheck"]["Test"] == [
        "CMD", "/opt/dragon_ball/bin/run.sh", "status"]


def test_published_ports_are_host_mode(built):
    assert built["web"]["EndpointSpec"]["Ports"] == [
        {"Protocol": "tcp", "TargetPort": 8080, "PublishedPort": 8080, "PublishMode": "host"}]
    assert built["api"]["EndpointSpec"]["Ports"] == []


def test_an_update_stops_first_only_when_ports_are_published(built):
    # two tasks cannot hold one host-mode port on one server
    assert built["web"]["UpdateConfig"]["Order"] == "stop-first"
    assert built["api"]["UpdateConfig"]["Order"] == "start-first"
    # nor may two tasks of a slot share its storage
    assert built["store-1"]["UpdateConfig"]["Order"] == "stop-first"
    assert built["web"]["UpdateConfig"]["FailureAction"] == "pause"


@pytest.mark.parametrize("name", ["web", "api", "store-1"])
def test_env_names_the_app_service_and_the_portal_as_params_owner(built, name):
    env = env_of(built[name])
    assert env["DRAGONBALL_APP"] == "notes"
    assert env["DRAGONBALL_SERVICE"] == name.split("-")[0]   # a slot: its service's name
    assert env["DRAGONBALL_PARAMS_OWNER"] == "portal"
    assert env["DRAGONBALL_PARAMS_FROM"] == "/run/dragonball-params/params.json"
    assert "DRAGONBALL_MODULE" not in env  # not given in the spec
    # parameters (secrets among them) never travel in the environment
    assert not any("password" in key.lower() for key in env)


def test_an_explicit_module_is_in_env_and_names_the_storage_folder(notes):
    store = variant(notes.services["store"], module="redis")
    spec = specs.service_spec("notes", "store", store, IMAGE.format("store"))
    assert env_of(spec)["DRAGONBALL_MODULE"] == "redis"
    targets = [m["Target"] for m in spec["TaskTemplate"]["ContainerSpec"]["Mounts"]]
    assert "/opt/dragon_ball/service/redis/storage" in targets


@pytest.mark.parametrize("name", ["web", "api", "store-1"])
def test_the_params_folder_is_bound_read_only(built, name):
    mounts = built[name]["TaskTemplate"]["ContainerSpec"]["Mounts"]
    base = name.split("-")[0]   # every slot of a service reads the service's parameters
    assert mounts[0] == {"Type": "bind", "Source": f"/var/lib/dragonball/params/notes/{base}",
                         "Target": "/run/dragonball-params", "ReadOnly": True}


def test_storage_and_log_volumes_only_with_storage_true(built):
    for name in ("web", "api"):
        assert [m["Type"] for m in built[name]["TaskTemplate"]["ContainerSpec"]["Mounts"]] \
            == ["bind"]
    volumes = [m for m in built["store-1"]["TaskTemplate"]["ContainerSpec"]["Mounts"]
               if m["Type"] == "volume"]
    assert [(m["Source"], m["Target"]) for m in volumes] == [
        ("notes_store_storage.1", "/opt/dragon_ball/service/store/storage"),
        ("notes_store_log.1", "/opt/dragon_ball/service/store/log")]
    for m in volumes:
        assert m["VolumeOptions"]["Labels"] == {
            "io.dragonball.app": "notes", "io.dragonball.service": "store",
            "io.dragonball.kind": "backend", "io.dragonball.slot": "store-1"}


def test_no_placement_means_only_a_server_the_portal_enrolled(built):
    for spec in built.values():
        assert spec["TaskTemplate"]["Placement"]["Constraints"] == [ENROLLED_CONSTRAINT]


def test_placement_servers_become_one_node_label_and_labels_each_a_constraint(notes):
    api = variant(notes.services["api"], placement={
        "servers": ["node-1", "node-2"], "labels": {"zone": "b", "disk": "ssd"}})
    spec = specs.service_spec("notes", "api", api, IMAGE.format("api"))
    # Swarm ANDs constraints: "any of these servers" is one label the orchestrator sets
    assert spec["TaskTemplate"]["Placement"]["Constraints"] == [
        ENROLLED_CONSTRAINT, "node.labels.dragonball.placement.notes.api==true",
        "node.labels.disk==ssd", "node.labels.zone==b"]
    assert naming.placement_label("notes", "api") == "dragonball.placement.notes.api"


def test_only_labels_gives_no_server_constraint(notes):
    api = variant(notes.services["api"], placement={"labels": {"zone": "b"}})
    spec = specs.service_spec("notes", "api", api, IMAGE.format("api"))
    assert spec["TaskTemplate"]["Placement"]["Constraints"] == [ENROLLED_CONSTRAINT,
                                                                "node.labels.zone==b"]


def test_resources_become_limits(built):
    assert built["web"]["TaskTemplate"]["Resources"] == {
        "Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 128 * 2**20}}
    assert built["store-1"]["TaskTemplate"]["Resources"]["Limits"]["NanoCPUs"] == 10**9


def test_no_resources_no_limits(notes):
    api = variant(notes.services["api"], resources={})
    spec = specs.service_spec("notes", "api", api, IMAGE.format("api"))
    assert spec["TaskTemplate"]["Resources"] == {}


@pytest.mark.parametrize("value, expected", [
    ("512k", 512 * 1024), ("256m", 256 * 2**20), ("2g", 2 * 2**30), ("2G", 2 * 2**30),
    ("1000", 1000), (4096, 4096), (None, None)])
def test_memory_units(value, expected):
    assert specs.memory_bytes(value) == expected


def test_replicas_come_from_the_spec_unless_overridden(notes, built):
    assert built["api"]["Mode"] == {"Replicated": {"Replicas": 2}}
    stopped = specs.service_spec("notes", "api", notes.services["api"], IMAGE.format("api"),
                                 replicas=0)
    assert stopped["Mode"] == {"Replicated": {"Replicas": 0}}


def test_needs_are_a_service_label(built):
    assert built["web"]["Labels"]["io.dragonball.needs"] == "api"
    assert built["api"]["Labels"]["io.dragonball.needs"] == "store-1"   # its slots
    assert built["store-1"]["Labels"]["io.dragonball.needs"] == ""


def test_network_spec_is_an_attachable_overlay():
    assert specs.network_spec("notes") == {"Name": "notes_net", "Driver": "overlay",
                                           "Attachable": True,
                                           "Labels": {"io.dragonball.app": "notes"},
                                           "Options": {}}
    assert specs.network_spec("notes", encrypted=True)["Options"] == {"encrypted": ""}


# -- the spec hash ---------------------------------------------------------------------
def _hash(app_spec, name, service=None, image=None, replicas=None) -> str:
    service = service or app_spec.services[name]
    spec = specs.service_spec("notes", name, service, image or IMAGE.format(name), replicas)
    return spec["Labels"][naming.SPEC_LABEL]


def test_spec_hash_is_stable(notes, built):
    assert _hash(notes, "web") == _hash(notes, "web") == built["web"]["Labels"][naming.SPEC_LABEL]
    assert specs.spec_hash(built["api"]) == built["api"]["Labels"][naming.SPEC_LABEL]


def test_spec_hash_ignores_replicas(notes):
    api = notes.services["api"]
    assert _hash(notes, "api", replicas=0) == _hash(notes, "api")
    assert _hash(notes, "api", variant(api, replicas=5)) == _hash(notes, "api")


@pytest.mark.parametrize("change", [
    {"ports": [{"published": 9000, "target": 8080}]},
    {"resources": {"cpus": 0.25, "memory": "256m"}},
    {"resources": {"cpus": 0.5, "memory": "512m"}},
    {"placement": {"labels": {"zone": "b"}}},
    {"storage": True},
    {"depends_on": []},
])
def test_spec_hash_changes_with_what_runs(notes, change):
    changed = variant(notes.services["api"], **change)
    assert _hash(notes, "api", changed) != _hash(notes, "api")


def test_spec_hash_changes_with_the_image_digest(notes):
    other = "10.0.0.5:5000/notes/api@sha256:" + "b" * 64
    assert _hash(notes, "api", image=other) != _hash(notes, "api")


def test_module_of_an_image():
    assert naming.module_of("notes/api:0.1.0") == "api"
    assert naming.module_of("10.0.0.5:5000/notes/api@sha256:abc") == "api"
    assert naming.module_of("store") == "store"


# -- slots ----------------------------------------------------------------------------------
def slot_specs(notes, replicas: int) -> dict:
    store = variant(notes.services["store"], replicas=replicas)
    spec = notes.model_copy(update={"services": {**notes.services, "store": store}})
    units = slotting.expand(spec, (), place_new=False)
    return {unit: specs.service_spec("notes", unit, units.spec.services[unit],
                                     IMAGE.format("store"), slot=slot)
            for unit, slot in units.slots.items()}


def test_each_slot_has_its_name_number_peers_hostname_and_volumes(notes):
    built = slot_specs(notes, 3)
    assert sorted(built) == ["store-1", "store-2", "store-3"]
    two = built["store-2"]
    assert two["Name"] == "notes_store-2" and two["Mode"] == {"Replicated": {"Replicas": 1}}
    env = env_of(two)
    assert (env["DRAGONBALL_SLOT"], env["DRAGONBALL_SLOT_NAME"], env["DRAGONBALL_PEERS"]) == \
        ("2", "store-2", "store-1,store-2,store-3")
    container = two["TaskTemplate"]["ContainerSpec"]
    assert container["Hostname"] == "store-2"
    assert [m["Source"] for m in container["Mounts"]] == [
        "/var/lib/dragonball/params/notes/store", "notes_store_storage.2", "notes_store_log.2"]


def test_a_new_peer_does_not_change_the_other_slots_definitions(notes):
    three, four = slot_specs(notes, 3), slot_specs(notes, 4)
    for unit in three:
        assert env_of(three[unit])["DRAGONBALL_PEERS"] != env_of(four[unit])["DRAGONBALL_PEERS"]
        assert three[unit]["Labels"][naming.SPEC_LABEL] == four[unit]["Labels"][naming.SPEC_LABEL]
        assert specs.spec_hash(four[unit]) == four[unit]["Labels"][naming.SPEC_LABEL]


def test_going_from_one_slot_to_several_restarts_the_first(notes):
    one, two = slot_specs(notes, 1), slot_specs(notes, 2)
    assert one["store-1"]["Labels"][naming.SPEC_LABEL] != \
        two["store-1"]["Labels"][naming.SPEC_LABEL]   # it runs unreplicated, then replicated


def test_the_spec_checks_count_the_swarm_names_the_orchestrator_gives():
    """app.checks.swarm_names (the 63-character check) and orchestrator.naming agree."""
    from dragonball.app.checks import swarm_names
    from dragonball.app.model import ServiceSpec
    from dragonball.app.slots import slot_name
    from dragonball.orchestrator import naming
    spec = ServiceSpec(kind="service", image="x", storage=True, replicas=3,
                       ports=[{"published": 80, "target": 80}], address="10.0.0.9")
    assert swarm_names("notes", "web", spec) == [
        naming.swarm_service("notes", "web"), naming.swarm_service("notes", slot_name("web", 3)),
        naming.address_service("notes", "web")]
