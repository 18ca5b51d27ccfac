"""Timeout resolution: the most specific setting wins."""

from __future__ import annotations

import pytest

from dragonball.module.timeouts import DEFAULT_TIMEOUT, parse_policy

SCRIPTS = {"start": ("1_a.sh", "2_b.sh"), "stop": ("1_s.sh",), "status": ()}


def test_no_manifest_means_sixty_seconds_everywhere():
    policy, problems = parse_policy(None, SCRIPTS)
    assert problems == [] and DEFAULT_TIMEOUT == 60
    assert policy.for_script("start", "1_a.sh") == 60


def test_script_beats_event_beats_module_default():
    text = '{"timeout": 30, "timeouts": {"start": 120, "start/2_b.sh": 600}}'
    policy, problems = parse_policy(text, SCRIPTS)
    assert problems == []
    assert policy.for_script("start", "2_b.sh") == 600
    assert policy.for_script("start", "1_a.sh") == 120
    assert policy.for_script("stop", "1_s.sh") == 30


@pytest.mark.parametrize("value", ['"10"', "true", "0", "-3", "86401", "null", "[1]"])
def test_invalid_seconds_are_refused(value):
    _, problems = parse_policy(f'{{"timeouts": {{"start": {value}}}}}', SCRIPTS)
    assert [key for key, _ in problems] == ["timeouts.start"]


def test_fractions_and_the_maximum_are_accepted():
    policy, problems = parse_policy('{"timeout": 0.5, "timeouts": {"stop": 86400}}', SCRIPTS)
    assert problems == []
    assert policy.for_script("start", "x") == 0.5 and policy.for_script("stop", "x") == 86400


@pytest.mark.parametrize("text, key", [
    ("{not json", ""), ("[]", ""), ('{"timeouts": 5}', "timeouts"),
    ('{"timeouts": {"boot": 5}}', "timeouts.boot"),
    ('{"timeouts": {"stop/2_missing.sh": 5}}', "timeouts.stop/2_missing.sh"),
    ('{"timout": 5}', "timout"),
])
def test_manifest_problems_name_their_key(text, key):
    _, problems = parse_policy(text, SCRIPTS)
    assert [k for k, _ in problems] == [key]
