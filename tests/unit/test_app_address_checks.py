"""A Service's moving address in the spec (dragonball.app.address): every problem at once,
each on the address's line; nothing about servers is checked when none are known."""

from __future__ import annotations

import pytest

from dragonball.app import spec as app_spec
from dragonball.app.address import interface, router_id
from dragonball.app.model import Observed

SERVERS = Observed(servers=frozenset({"s1", "s2", "s3"}),
                   addresses={"s1": "10.0.0.11", "s2": "10.0.0.12", "s3": "10.0.0.13"})


def spec(address: str = "10.0.0.100", extra: str = "", web: str = "") -> str:
    return ("app: notes\nservices:\n"
            "  web:\n    kind: service\n    image: notes/web:0.1.0\n"
            "    ports: [{published: 8080, target: 8080}]\n"
            f"    address: {address}\n{web}{extra}")


def problems(text: str, observed: Observed = SERVERS) -> list[str]:
    return [f"{p.line}: {p.message}" for p in app_spec.check(text, "a.yaml", observed)[1]]


def test_a_free_address_in_the_servers_network_is_valid():
    assert problems(spec()) == []
    assert problems(spec("10.0.0.100/24")) == []
    assert problems(spec("10.0.9.100/16")) == []


def test_without_servers_known_only_the_address_itself_is_checked():
    assert problems(spec("10.9.9.9"), Observed()) == []
    assert problems(spec("10.0.0.255"), Observed()) == [
        "7: 10.0.0.255 cannot be a server's address in 10.0.0.0/24"]


@pytest.mark.parametrize("address, message", [
    ("10.0.0.300", "'10.0.0.300' is not an IPv4 address"),
    ("10.0.0.0", "10.0.0.0 cannot be a server's address in 10.0.0.0/24"),
    ("127.0.0.5", "127.0.0.5 cannot be a server's address"),
    ("224.0.0.18", "224.0.0.18 cannot be a server's address"),
    ("10.0.0.12", "10.0.0.12 is the address of server s2"),
    ("10.0.1.100", "s1 (10.0.0.11), s2 (10.0.0.12), s3 (10.0.0.13) not in 10.0.1.0/24"),
])
def test_a_bad_address_is_named_on_its_line(address, message):
    found = problems(spec(address))
    assert len(found) == 1 and found[0].startswith("7: " + message), found


def test_a_malformed_address_is_refused_by_its_shape():
    found = app_spec.check(spec("ten.0.0.1"), "a.yaml", SERVERS)[1]
    assert [(p.line, p.message) for p in found] == [(7, "has the wrong form: got 'ten.0.0.1'")]
    assert "10.0.0.100/24" in found[0].hint


def test_another_app_s_address_or_router_id_is_refused():
    taken = Observed(servers=SERVERS.servers, addresses=SERVERS.addresses,
                     taken={"10.0.0.100/24": "shop/front"})
    assert problems(spec(), taken) == ["7: 10.0.0.100 is the address of shop/front"]
    assert router_id("10.0.0.100") == router_id("10.0.1.99")   # 255 apart
    assert problems(spec("10.0.1.99/16"), taken) == [
        "7: 10.0.1.99 shares its VRRP router id with shop/front's address 10.0.0.100/24"]


def test_the_address_needs_a_service_with_a_tcp_port_and_two_servers():
    text = ("app: notes\nservices:\n"
            "  api:\n    kind: backend\n    image: notes/api:0.1.0\n"
            "    placement: {servers: [s2]}\n    address: 10.0.0.100\n")
    found = problems(text)
    assert found == [
        "7: only a Service (kind: service) has an address",
        "7: an address needs a published TCP port: its holder is the server where the "
        "Service answers on it",
        "7: the address cannot move: the placement allows only s2"]


def test_two_services_with_one_address_are_refused():
    other = ("  admin:\n    kind: service\n    image: notes/web:0.1.0\n"
             "    ports: [{published: 8081, target: 8080}]\n    address: 10.0.0.100/24\n")
    assert problems(spec(extra=other)) == ["7: 10.0.0.100 is also the address of admin"]


def test_the_prefix_defaults_to_24():
    assert str(interface("10.0.0.100")) == "10.0.0.100/24"
    assert str(interface("10.0.0.100/16").network) == "10.0.0.0/16"
    assert 1 <= router_id("0.0.0.0") <= 255 and 1 <= router_id("255.255.255.255") <= 255
