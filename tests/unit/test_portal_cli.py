"""`dragonball enroll` and the pure parts of the portal's CLI."""

from __future__ import annotations

import json
import shlex

import pytest

from dragonball import pki
from dragonball.cli import main
from dragonball.portal import settings as settings_mod
from dragonball.portal.enrollment import join_instructions, parse_duration
from dragonball.shared.fingerprints import of_certificate as display_fingerprint
from dragonball.portal.store import Store, code_hash
from dragonball.shared import codes


@pytest.mark.parametrize("text, seconds", [("24h", 86400), ("30m", 1800), ("7d", 604800),
                                           ("90", 90), (" 2H ", 7200), ("60s", 60)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1w", "-5m", "59s", "31d", "1.5h"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.fixture
def config(tmp_path):
    ca = pki.create_ca()
    pki.write_private(tmp_path / "ca.crt", ca.cert_pem, 0o644)
    settings = settings_mod.Settings(
        address="10.0.0.5", tls_cert="x", tls_key="y", ca_cert=str(tmp_path / "ca.crt"),
        registry="10.0.0.5:5000", registry_credentials="z", data_dir=str(tmp_path / "data"),
        bin_name="DragonBall-1.2.3.bin")
    (tmp_path / "portal.yaml").write_text(settings.to_yaml())
    return tmp_path / "portal.yaml", settings, ca


def test_join_instructions_are_the_contracts_command(config):
    _, settings, ca = config
    info = join_instructions(settings, "7K3M-Q9XD-2HBW-P4T3", 1_800_000_000, "SHA256:ab")
    assert info["command"] == ["sudo", "./DragonBall-1.2.3.bin", "install", "--role", "device",
                               "--portal", "10.0.0.5", "--ca-fingerprint", "SHA256:ab"]
    assert "7K3M-Q9XD-2HBW-P4T3" not in info["command_line"]   # asked, never in ps
    assert shlex.split(info["command_line"]) == info["command"]
    assert info["answers"] == {"role": "device", "portal": "10.0.0.5",
                               "enrollment_code": "7K3M-Q9XD-2HBW-P4T3",
                               "ca_fingerprint": "SHA256:ab"}
    assert info["expires_at"] == "2027-01-15T08:00:00+00:00"
    assert display_fingerprint(ca.cert_pem) == "SHA256:" + pki.fingerprint(ca.cert_pem)


def test_enroll_json_makes_a_code_in_the_local_store(config, capsys):
    path, settings, ca = config
    assert main(["enroll", "--config", str(path), "--ttl", "2h", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert codes.problem(info["code"]) is None
    assert info["ca_fingerprint"] == display_fingerprint(ca.cert_pem)
    store = Store.open(settings.db_path)
    try:
        (code,) = store.codes()
        assert code.expires - code.created == 7200
        rows = store.read("SELECT code_hash FROM codes")
        assert rows[0]["code_hash"] == code_hash(info["code"])
        assert store.events()[0]["actor"].startswith("cli (")
    finally:
        store.close()


def test_enroll_prints_the_command_for_people(config, capsys):
    path, _, _ = config
    assert main(["enroll", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Enrollment code:" in out and "valid 24 h" in out
    assert "sudo ./DragonBall-1.2.3.bin install --role device --portal 10.0.0.5 " \
        "--ca-fingerprint " in out and "(it asks the code)" in out
    assert "enrollment_code: " in out


def test_enroll_usage_and_missing_settings(config, tmp_path, capsys):
    path, _, _ = config
    assert main(["enroll", "--config", str(path), "--ttl", "forever"]) == 2
    assert "--ttl" in capsys.readouterr().err
    assert main(["enroll", "--config", str(tmp_path / "none.yaml")]) == 2  # INVALID
    assert "cannot read the portal settings" in capsys.readouterr().err
