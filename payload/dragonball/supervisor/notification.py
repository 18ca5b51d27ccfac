"""Notifications: the portal tells a module that another service changed.

`run.sh notify` runs the module's config_change scripts with the parameters
unchanged (docs/module-spec.md, "Notifications"). Delivery is at least once and
in order; `seq` grows per receiving service, so a redelivered notification is
recognised here and acknowledged without running anything again.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from dragonball.errors import SupervisorInputInvalid
from dragonball.supervisor.params import read_object, write_private
from dragonball.supervisor.report import EventReport

SCHEMA = 1
EVENTS = ("healthy", "unhealthy", "stopped", "scaled")
REPLICA_COUNTS = ("desired", "running", "healthy")
EXAMPLE = ('{"schema": 1, "seq": 7, "app": "notes", "service": "api", "event": "healthy", '
           '"replicas": {"desired": 2, "running": 2, "healthy": 2}, '
           '"at": "2026-11-28T14:00:00Z", "to": "web"}')


def parse(text: str, source: str) -> dict:
    """The notification in `text`; SupervisorInputInvalid listing every problem otherwise."""
    try:
        value = json.loads(text)
    except ValueError as e:
        raise _invalid(source, [f"not valid JSON: {e}"]) from e
    if not isinstance(value, dict):
        raise _invalid(source, [f"must be a JSON object, not {type(value).__name__}"])
    problems = problems_of(value)
    if problems:
        raise _invalid(source, problems)
    return value


def problems_of(note: dict) -> list:
    """What is wrong with a notification object: [] when it is valid. Pure."""
    problems = []
    if note.get("schema", SCHEMA) != SCHEMA:
        problems.append(f"schema: {note['schema']!r} is not supported (this supervisor "
                        f"reads schema {SCHEMA})")
    if not _is_int(note.get("seq")) or note["seq"] < 1:
        problems.append(f"seq: must be an integer >= 1, got {note.get('seq')!r}")
    if not isinstance(note.get("service"), str) or not note["service"]:
        problems.append(f"service: must be a non-empty string, got {note.get('service')!r}")
    if note.get("event") not in EVENTS:
        problems.append(f"event: must be one of {', '.join(EVENTS)}, got {note.get('event')!r}")
    for key in ("app", "at", "to"):
        if key in note and not isinstance(note[key], str):
            problems.append(f"{key}: must be a string, got {note[key]!r}")
    problems += _replica_problems(note.get("replicas", {}))
    return problems


def _replica_problems(replicas) -> list:
    if not isinstance(replicas, dict):
        return [f"replicas: must be an object, got {replicas!r}"]
    return [f"replicas.{k}: must be an integer >= 0, got {replicas[k]!r}"
            for k in REPLICA_COUNTS if k in replicas
            and not (_is_int(replicas[k]) and replicas[k] >= 0)]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _invalid(source: str, problems: list) -> SupervisorInputInvalid:
    lines = [f"the notification from {source} is invalid:"] + [f"  - {p}" for p in problems]
    return SupervisorInputInvalid("\n".join(lines), f"send one JSON object like {EXAMPLE}",
                                  problems)


class SeqRecord:
    """The last notification `seq` handled in this container (a file in the run folder).

    The run folder lives as long as the container, so a new container handles
    every notification again: its module starts from scratch anyway.
    """

    def __init__(self, run_dir: str) -> None:
        self.path = os.path.join(run_dir, "notify-seq.json")

    def last(self) -> int:
        return read_object(self.path, missing={"seq": 0}).get("seq", 0)

    def is_duplicate(self, seq: int) -> bool:
        return seq <= self.last()

    def record(self, seq: int) -> None:
        write_private(self.path, {"seq": max(seq, self.last())})


@dataclass
class NotifyReport(EventReport):
    """An EventReport of config_change scripts run for a notification, with its `seq`."""

    seq: int = 0
    duplicate: bool = False
    last_seq: int = 0  # for a duplicate: the last seq handled before it

    def to_dict(self) -> dict:
        return {**super().to_dict(), "seq": self.seq, "duplicate": self.duplicate}

    def summary(self) -> str:
        if self.duplicate:
            return (f"{self.module} notify: seq {self.seq} already handled (last {self.last_seq}):"
                    " acknowledged, nothing run")
        return f"{super().summary()} (seq {self.seq})"
