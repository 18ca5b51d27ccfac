"""This server's addresses from `ip -o addr show`: captured output in, interfaces out."""

from __future__ import annotations

from dragonball.wizard.host import live_facts, parse_ip_addr
from dragonball.wizard.model import Interface

# A server with Docker already on it (docker0, a user network's bridge, a veth), a
# container-style eth0@if12, a secondary address, loopback and link-local addresses.
IP_ADDR = r"""
1: lo    inet 127.0.0.1/8 scope host lo\       valid_lft forever preferred_lft forever
1: lo    inet6 ::1/128 scope host \       valid_lft forever preferred_lft forever
2: eth0@if12    inet 10.0.0.5/24 brd 10.0.0.255 scope global eth0\       valid_lft forever
2: eth0@if12    inet 10.0.0.50/24 scope global secondary eth0\       valid_lft forever
2: eth0@if12    inet6 fd00::5/64 scope global nodad \       valid_lft forever preferred_lft forever
2: eth0@if12    inet6 fe80::fc:ff:fe00:1/64 scope link \       valid_lft forever preferred_lft forever
3: ens192    inet 192.168.7.5/24 brd 192.168.7.255 scope global dynamic ens192\       valid_lft 86000sec
4: docker0    inet 172.17.0.1/16 brd 172.17.255.255 scope global docker0\       valid_lft forever
5: docker_gwbridge    inet 172.18.0.1/16 scope global docker_gwbridge\       valid_lft forever
6: br-0123456789ab    inet 172.19.0.1/16 scope global br-0123456789ab\       valid_lft forever
7: br0    inet 192.168.50.2/24 scope global br0\       valid_lft forever preferred_lft forever
8: veth1a2b3c4@if7    inet6 fe80::54e8:4dff:fe86:efe4/64 scope link \       valid_lft forever
"""


def test_reachable_addresses_in_order():
    assert parse_ip_addr(IP_ADDR) == [
        Interface("eth0", "10.0.0.5"), Interface("eth0", "10.0.0.50"),
        Interface("eth0", "fd00::5"), Interface("ens192", "192.168.7.5"),
        Interface("br0", "192.168.50.2")]


def test_nothing_reachable():
    assert parse_ip_addr("1: lo    inet 127.0.0.1/8 scope host lo\n\ngarbage\n") == []


def test_this_machine():
    facts = live_facts()
    assert facts.hostname
    assert all(i.address not in ("127.0.0.1", "::1") for i in facts.interfaces)
