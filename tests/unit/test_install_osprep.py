"""OS preparation and the engine decision as data: each case's facts give its expected changes.

A case in tests/unit/data/osprep/<case>/ is ``case.json`` (about, role, and preflight's
facts of a server) and ``expected.json`` (the preparation steps with their changes,
the engine path, the firewall step). After a deliberate change of a describer,
rewrite the expectations and review the diff:

    DRAGONBALL_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_install_osprep.py
"""

from __future__ import annotations

import base64
import json
import os
import pathlib

import pytest

from dragonball.errors import InstallerError
from dragonball.installer import osprep
from dragonball.installer.engine import rules
from dragonball.installer.preflight.facts import SYSCTL_KEYS, Facts

CASES_DIR = pathlib.Path(__file__).parent / "data" / "osprep"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if (p / "case.json").is_file())
UPDATE = os.environ.get("DRAGONBALL_UPDATE_GOLDEN") == "1"


def load(name: str) -> tuple[str, Facts]:
    case = json.loads((CASES_DIR / name / "case.json").read_text())
    return case["role"], Facts(**case["facts"])


def describe(role: str, facts: Facts) -> dict:
    # the administrator's consent given: what would change (without it: nothing, below)
    return {"os": [p.to_dict() for p in osprep.os_preps(facts, selinux_consent=True)],
            "engine": rules.engine_path(facts, install_started=False),
            "daemon.json": rules.daemon_config(None, osprep.nofile_limit(facts)),
            "firewall": osprep.firewall_prep(facts, role).to_dict()}


def test_there_are_cases():
    assert {"debian12-vm", "bare-lab-server", "rocky9-selinux-firewalld",
            "centos7-selinux-config", "ubuntu-ufw-no-br-netfilter"} <= set(CASES)


@pytest.mark.parametrize("name", CASES)
def test_case_gives_the_expected_changes(name):
    found = describe(*load(name))
    path = CASES_DIR / name / "expected.json"
    if UPDATE:
        path.write_text(json.dumps(found, indent=2) + "\n")
    assert found == json.loads(path.read_text())


@pytest.mark.parametrize("name", CASES)
def test_describing_twice_gives_the_same_changes(name):
    """Pure: the same facts, the same plan (a resumed step must redo the same thing)."""
    assert describe(*load(name)) == describe(*load(name))


def test_the_keys_set_are_the_keys_preflight_reads():
    assert set(osprep.EXACT) | set(osprep.AT_LEAST) == set(SYSCTL_KEYS)


@pytest.mark.parametrize("now, written", [
    ("9223372036854775807", None),  # a recent kernel's default: never lowered
    ("2000000", None),
    ("1048576", "1048576"),          # equal stays in: the same file on a re-run
    ("786432", "1048576"),
    (None, None),                    # unknown: nothing to raise
])
def test_file_max_is_only_ever_raised(now, written):
    _, facts = load("debian12-vm")
    facts.sysctl = {**facts.sysctl, "fs.file-max": now}
    assert osprep.sysctl_values(facts).get("fs.file-max") == written


def test_re_describing_after_the_change_keeps_the_same_file():
    """After the first run raised the limits, a re-run's facts show our values: same file."""
    _, facts = load("bare-lab-server")
    first = osprep.kernel_prep(facts)
    facts.sysctl = {**facts.sysctl, **first.changes[-1]["values"]}
    assert osprep.kernel_prep(facts) == first


@pytest.mark.parametrize("limits, nofile", [
    ({}, 1048576),                                                    # nothing known
    ({"nr_open": 1048576, "nofile_hard": 4096, "sys_resource": True}, 1048576),  # may raise
    ({"nr_open": 1048576, "nofile_hard": 20000, "sys_resource": False}, 20000),  # the lab
    ({"nr_open": 65536, "nofile_hard": 65536, "sys_resource": True}, 65536),     # the ceiling
])
def test_open_files_never_above_what_the_server_can_grant(limits, nofile):
    _, facts = load("debian12-vm")
    facts.limits = limits
    assert osprep.nofile_limit(facts) == nofile
    assert f"root  hard nofile {nofile}\n" in osprep.limits_prep(facts).changes[0]["content"]
    assert rules.daemon_config(None, nofile)["default-ulimits"]["nofile"]["Hard"] == nofile


def test_selinux_only_when_enforcing_now_or_at_boot():
    _, facts = load("debian12-vm")
    for mode, config, expected in [("enforcing", "enforcing", True),
                                   ("permissive", "enforcing", True),
                                   ("enforcing", None, True),
                                   ("permissive", "permissive", False),
                                   ("disabled", None, False)]:
        facts.selinux = {"mode": mode, "config": config}
        assert (osprep.selinux_prep(facts, consent=True) is not None) == expected, \
            (mode, config)
        assert osprep.selinux_prep(facts) is None   # never without the consent


def test_firewall_never_disables_and_uses_every_active_one():
    _, facts = load("debian12-vm")
    facts.firewall = {"firewalld": True, "ufw": True}
    prep = osprep.firewall_prep(facts, "device")
    assert [c["firewall"] for c in prep.changes] == ["firewalld", "ufw"]
    assert prep.changes[0]["ports"] == ["2377/tcp", "2379/tcp", "2380/tcp", "4789/udp",
                                        "7946/tcp", "7946/udp", "8443/tcp", "9443/tcp"]
    assert all(c["kind"] == "ports" for c in prep.changes)


@pytest.mark.parametrize("text, expected", [
    ("SELINUX=enforcing\nSELINUXTYPE=targeted\n", "SELINUX=permissive\nSELINUXTYPE=targeted\n"),
    ("# SELINUX=disabled\n  SELINUX = enforcing\n", "# SELINUX=disabled\n  SELINUX=permissive\n"),
    ("SELINUXTYPE=targeted", "SELINUXTYPE=targeted\nSELINUX=permissive\n"),
])
def test_selinux_config_line(text, expected):
    assert osprep.set_config_value(text, "SELINUX", "permissive") == expected
    assert osprep.config_value(expected, "SELINUX") == "permissive"


def ed25519_key(comment: str = "portal") -> str:
    blob = (len(b"ssh-ed25519").to_bytes(4, "big") + b"ssh-ed25519"
            + (32).to_bytes(4, "big") + bytes(range(32)))
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} {comment}"


def test_an_ssh_key_is_checked_and_found_behind_options():
    line = osprep.authorized_key_line("  " + ed25519_key() + "\n")
    assert line == ed25519_key()
    assert osprep.key_blob('from="10.0.0.1",no-pty ' + line) == line.split()[1]
    prep = osprep.authorized_key_prep(line)
    assert prep.changes == ({"kind": "authorized_key", "path": "/root/.ssh/authorized_keys",
                             "key": line},)


@pytest.mark.parametrize("bad", [
    "", "ssh-ed25519", "ssh-dss AAAAB3NzaC1kc3M= old", "ssh-ed25519 not*base64 x",
    "ssh-rsa " + ed25519_key().split()[1],   # the blob holds another type
    ed25519_key() + "\nssh-ed25519 AAAA second",
])
def test_a_bad_ssh_key_is_refused(bad):
    with pytest.raises(InstallerError):
        osprep.authorized_key_line(bad)
