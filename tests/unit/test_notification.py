"""Notification payloads (schema 1) and the per-container record of the last seq."""

from __future__ import annotations

import json

import pytest

from dragonball.errors import SupervisorError
from dragonball.supervisor.notification import (
    EXAMPLE, NotifyReport, SeqRecord, parse, problems_of)


def test_the_documented_example_is_valid():
    assert parse(EXAMPLE, "x") == json.loads(EXAMPLE)
    assert problems_of({"seq": 1, "service": "api", "event": "scaled"}) == []


def test_every_problem_is_listed_at_once():
    problems = problems_of({"schema": 2, "seq": -1, "service": "", "event": "up",
                            "app": 3, "replicas": {"desired": "2", "running": -1}})
    assert [p.split(":")[0] for p in problems] == \
        ["schema", "seq", "service", "event", "app", "replicas.desired", "replicas.running"]


@pytest.mark.parametrize("seq", [True, 1.0, None, "1", 0])
def test_seq_is_a_positive_integer_and_not_a_boolean(seq):
    assert problems_of({"seq": seq, "service": "api", "event": "healthy"})[0].startswith("seq:")


def test_an_invalid_payload_names_its_source_and_shows_an_example():
    with pytest.raises(SupervisorError) as err:
        parse('{"seq": 1}', "note.json")
    text = str(err.value)
    assert "the notification from note.json is invalid" in text and '"seq": 7' in text


def test_the_record_only_grows(tmp_path):
    record = SeqRecord(str(tmp_path / "run"))
    assert record.last() == 0 and not record.is_duplicate(1)
    record.record(5)
    record.record(3)  # cannot happen under the lock, but must not go back
    assert record.last() == 5 and record.is_duplicate(5) and not record.is_duplicate(6)


def test_a_duplicate_report_says_so():
    report = NotifyReport("web", "notify", folder="config_change", seq=4, duplicate=True,
                          last_seq=6)
    shape = report.to_dict()
    assert shape["ok"] and shape["duplicate"] and shape["seq"] == 4 and shape["scripts"] == []
    assert report.summary() == \
        "web notify: seq 4 already handled (last 6): acknowledged, nothing run"
