"""The portal's settings file: parsed whole, every problem listed at once."""

from __future__ import annotations

import pytest

from dragonball.portal import settings as settings_mod
from dragonball.portal.settings import SettingsError

GOOD = """
address: 10.0.0.5
tls_cert: /etc/dragonball/portal/server.crt
tls_key: /etc/dragonball/portal/server.key
ca_cert: /etc/dragonball/ca/ca.crt
registry: 10.0.0.5:5000
registry_credentials: /etc/dragonball/portal/registry.json
hostname: s1
data_dir: /srv/db
"""


def test_a_good_file_and_what_follows_from_it():
    s = settings_mod.parse(GOOD)
    assert s.port == 8443 and s.url == "https://10.0.0.5:8443"
    assert s.db_path == "/srv/db/portal/portal.db"
    assert s.manager_address == "10.0.0.5:2377"
    assert s.portal_argument == "10.0.0.5"
    assert settings_mod.parse(s.to_yaml()) == s


def test_another_port_and_ipv6_are_spelled_out():
    s = settings_mod.parse(GOOD.replace("10.0.0.5\n", "fd00::5\n", 1) + "port: 9000\n")
    assert s.portal_argument == "[fd00::5]:9000"
    assert s.manager_address == "[fd00::5]:2377"


def test_every_problem_at_once():
    text = "address: localhost\nport: 70000\ncolour: blue\n"
    with pytest.raises(SettingsError) as e:
        settings_mod.parse(text, "portal.yaml")
    message = e.value.message
    for expected in ("unknown setting 'colour'", "tls_cert is missing", "not a TCP port",
                     "'localhost' is not an IP address"):
        assert expected in message


def test_not_yaml_and_missing_file(tmp_path):
    with pytest.raises(SettingsError, match="not valid YAML"):
        settings_mod.parse("a: [")
    with pytest.raises(SettingsError, match="cannot read"):
        settings_mod.load(str(tmp_path / "nope.yaml"))


def test_the_registry_accounts_the_portal_keeps(tmp_path):
    """The portal's own account (push, delete) and the pull one every server gets; a file of
    before the pull account (one account) gives that one for both."""
    both = tmp_path / "registry.json"
    both.write_text('{"username": "dragonball", "password": "w",'
                    ' "pull": {"username": "pull", "password": "r"}}')
    assert settings_mod.read_registry_credentials(str(both)) == ("dragonball", "w")
    assert settings_mod.read_registry_credentials(str(both), "pull") == ("pull", "r")
    older = tmp_path / "older.json"
    older.write_text('{"username": "dragonball", "password": "w"}')
    assert settings_mod.read_registry_credentials(str(older), "pull") == ("dragonball", "w")
    broken = tmp_path / "broken.json"
    broken.write_text('{"username": "dragonball", "password": "w", "pull": "r"}')
    with pytest.raises(SettingsError, match="cannot read the registry credentials"):
        settings_mod.read_registry_credentials(str(broken), "pull")
