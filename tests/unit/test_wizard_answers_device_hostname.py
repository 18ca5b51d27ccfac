"""A device joins under its kernel hostname: a hostname answer is refused, not ignored."""

from __future__ import annotations

from dragonball.wizard import answers
from dragonball.wizard.model import Facts, Interface


def test_a_device_hostname_override_is_refused_with_the_way_to_rename():
    facts = Facts(hostname="s2", interfaces=(Interface("eth0", "10.0.0.12"),))
    given = {"role": "device", "portal": "10.0.0.11", "hostname": "other",
             "ca_fingerprint": "SHA256:" + "a" * 64, "enrollment_code": "x"}
    problems = dict(answers._role_rules("device", given))
    assert "hostnamectl set-hostname" in problems["hostname"]
    assert "hostname" not in dict(answers._role_rules("portal", {"hostname": "p1",
                                                                 "admin_password": "x"}))
