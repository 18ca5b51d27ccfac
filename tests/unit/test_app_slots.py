"""Slot placement (app/slots.py): recorded pins kept, new slots spread, problems named."""

from __future__ import annotations

from collections import Counter

from dragonball.app.model import ServiceSpec
from dragonball.app.slots import Server, place, slot_name, slot_names


def store(replicas=3, **placement) -> ServiceSpec:
    return ServiceSpec(kind="backend", image="notes/store:1", replicas=replicas, storage=True,
                       placement=placement or {})


SERVERS = [Server("s1"), Server("s2"), Server("s3")]


def test_slot_names_are_the_dns_names():
    assert slot_name("store", 2) == "store-2"
    assert slot_names("store", 3) == ["store-1", "store-2", "store-3"]


def test_first_placement_spreads_the_slots_over_servers():
    placed = place(store(), "store", {}, SERVERS)
    assert placed.pins == {1: "s1", 2: "s2", 3: "s3"}
    assert placed.new == (1, 2, 3) and placed.problems == ()


def test_a_recorded_slot_stays_on_its_server_even_when_it_is_down():
    servers = [Server("s1", ready=False), Server("s2"), Server("s3")]
    placed = place(store(replicas=1), "store", {1: "s1"}, servers)
    assert placed.pins == {1: "s1"} and placed.new == ()
    assert placed.waiting(servers) == {"store-1": "s1"}


def test_scale_up_places_only_the_new_slot_away_from_the_others():
    placed = place(store(replicas=3), "store", {1: "s2", 2: "s3"}, SERVERS)
    assert placed.pins == {1: "s2", 2: "s3", 3: "s1"} and placed.new == (3,)


def test_scale_down_keeps_only_the_slots_in_range():
    placed = place(store(replicas=1), "store", {1: "s2", 2: "s3"}, SERVERS)
    assert placed.pins == {1: "s2"}


def test_new_slots_go_to_ready_servers_that_fit_the_placement():
    servers = [Server("s1", ready=False), Server("s2", labels={"disk": "ssd"}),
               Server("s3", labels={"disk": "hdd"})]
    placed = place(store(replicas=2, labels={"disk": "ssd"}), "store", {}, servers)
    assert placed.pins == {1: "s2", 2: "s2"}
    placed = place(store(replicas=1, servers=["s3"]), "store", {}, servers)
    assert placed.pins == {1: "s3"}


def test_other_services_load_breaks_ties():
    placed = place(store(replicas=1), "store", {}, SERVERS, taken=Counter({"s1": 2, "s2": 1}))
    assert placed.pins == {1: "s3"}


def test_no_fitting_server_is_a_problem_naming_the_slot_and_the_placement():
    placed = place(store(replicas=2, servers=["s9"]), "store", {1: "s9"}, SERVERS)
    assert placed.pins == {1: "s9"}
    assert placed.problems == ("store-2: no ready server fits its placement (servers s9)",)
