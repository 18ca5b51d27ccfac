"""The ledger of a load run (tests/load.py): every request with its times and outcome, and
what follows from them, as pure logic (no network, no clock of its own):

    ledger = Ledger()
    ledger.record(Attempt("write", sent, done, ok=True, status=201, seq=7, ref="42"))
    ledger.mark("fault", t0); ledger.mark("fault ended", t1)
    ledger.failed                       # the requests that got no good answer
    ledger.longest_gap()                # (seconds, from, to) without a good answer
    ledger.first_good_after(t1)         # seconds from t1 to the next good answer
    ledger.lost(readback)               # acknowledged writes missing when read back
    ledger.stale_reads()                # reads that missed a write acknowledged before them

Times are `time.monotonic()` values (the lab's faults use the same clock). A write is
acknowledged when the app answered it as stored (a 2xx with the record's id); every
written record carries a key of this ledger's run (`key(seq)`), unique, so records of an
app that restarted empty and counts from 1 again are never mistaken for ours.

Reading back: an app may list every record (`complete`) or only its newest ones in the
order they were written (`suffix`: the notes app's GET /api/notes, its latest 100). From a
suffix, an acknowledged record is *covered* (must be listed if it was kept) when it was
sent after another acknowledged record that is listed had been acknowledged: it was
stored after that one, so it falls in the suffix too. Uncovered records are `unverified`,
never counted as lost; the app's own count (`total`) gives a lower bound on losses among
them (`count_bound`) when only this ledger writes.
"""

from __future__ import annotations

import collections
import dataclasses
import re
import threading
import uuid
from collections.abc import Iterable

KEY_PREFIX = "ledger"
_KEY = re.compile(rf"^{KEY_PREFIX}-([0-9a-f]{{6,32}})-(\d+)$")


@dataclasses.dataclass(frozen=True)
class Readback:
    """What one read of the app's records saw: the keys of this run it listed."""

    keys: frozenset[str]
    complete: bool = True     # it lists every record the app holds
    suffix: bool = False      # not complete: it lists the newest records in write order
    total: int | None = None  # how many records the app says it holds (every writer's)


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One request: a write of record `seq`, or a read."""

    kind: str                   # "write" or "read"
    sent: float
    done: float
    ok: bool                    # a good answer: a write stored, a read answered
    status: int = 0             # HTTP status; 0 when no answer came
    error: str = ""             # what went wrong (exception or the answer's excerpt)
    seq: int | None = None      # writes: the record's number in this run
    ref: str | None = None      # writes: the app's own id for it
    seen: Readback | None = None  # reads: what it listed

    @property
    def reason(self) -> str:
        return reason(self.status, self.error) if not self.ok else "ok"


@dataclasses.dataclass(frozen=True)
class Loss:
    """Acknowledged writes against what a read-back listed."""

    acknowledged: int
    missing: tuple[int, ...]      # covered and absent: lost for certain
    unverified: tuple[int, ...]   # not covered by the read-back (beyond a suffix)
    count_bound: int              # at least this many lost, from the app's total

    @property
    def lost(self) -> int:
        """Acknowledged writes lost: at least this many (exactly, when complete)."""
        return max(len(self.missing), self.count_bound)


def reason(status: int, error: str) -> str:
    """A short class of failure for counting: 'HTTP 503', 'timeout', 'refused', ..."""
    if status:
        return f"HTTP {status}"
    text = error.lower()
    for needle, name in (("timed out", "timeout"), ("timeout", "timeout"),
                         ("refused", "refused"), ("reset", "reset"),
                         ("no route", "no route"), ("unreachable", "unreachable"),
                         ("remote end closed", "closed"), ("broken pipe", "closed")):
        if needle in text:
            return name
    return error.split(":", 1)[0].strip() or "no answer"


class Ledger:
    """Every attempt of one load run, thread-safe to record; the measures are pure."""

    def __init__(self, run: str | None = None) -> None:
        self.run = run or uuid.uuid4().hex[:8]
        if not re.fullmatch(r"[0-9a-f]{6,32}", self.run):
            raise ValueError(f"a ledger's run id is 6-32 hex digits, not {self.run!r}")
        self.attempts: list[Attempt] = []
        self.marks: dict[str, float] = {}
        self._lock = threading.Lock()

    # --- recording ------------------------------------------------------------------------

    def key(self, seq: int) -> str:
        """The unique key written with record `seq` (the note's text, say)."""
        return f"{KEY_PREFIX}-{self.run}-{seq:07d}"

    def seq_of(self, key: str) -> int | None:
        """`seq` of one of this run's keys; None for anything else."""
        match = _KEY.match(key.strip()) if isinstance(key, str) else None
        return int(match.group(2)) if match and match.group(1) == self.run else None

    def keys_in(self, texts: Iterable[str]) -> frozenset[str]:
        """This run's keys among `texts` (the records an app listed)."""
        return frozenset(t.strip() for t in texts if self.seq_of(t) is not None)

    def record(self, attempt: Attempt) -> None:
        if attempt.done < attempt.sent:
            raise ValueError(f"an attempt done before it was sent: {attempt}")
        with self._lock:
            self.attempts.append(attempt)

    def mark(self, name: str, at: float) -> None:
        with self._lock:
            self.marks[name] = at

    def _sorted(self) -> list[Attempt]:
        with self._lock:
            return sorted(self.attempts, key=lambda a: (a.done, a.sent))

    # --- measures -------------------------------------------------------------------------

    @property
    def acknowledged(self) -> dict[int, Attempt]:
        """seq -> the write that stored it (the first, should one be sent twice)."""
        found: dict[int, Attempt] = {}
        for a in self._sorted():
            if a.kind == "write" and a.ok and a.seq is not None:
                found.setdefault(a.seq, a)
        return found

    @property
    def failed(self) -> list[Attempt]:
        return [a for a in self._sorted() if not a.ok]

    def failures_by_reason(self) -> dict[str, int]:
        return dict(collections.Counter(a.reason for a in self.failed).most_common())

    def span(self) -> tuple[float, float] | None:
        """(first sent, last done) of the run, or None before any attempt."""
        attempts = self._sorted()
        if not attempts:
            return None
        return min(a.sent for a in attempts), max(a.done for a in attempts)

    def longest_gap(self, start: float | None = None,
                    end: float | None = None) -> tuple[float, float, float]:
        """The longest stretch of [start, end] with no good answer: (seconds, from, to).

        A good answer counts when it arrives (`done`). `start` and `end` default to the
        run's span; a run with no good answer at all is one gap from start to end.
        """
        span = self.span()
        if span is None:
            return 0.0, 0.0, 0.0
        start = span[0] if start is None else start
        end = span[1] if end is None else end
        times = [start] + sorted(a.done for a in self._sorted()
                                 if a.ok and start <= a.done <= end) + [end]
        best = (0.0, start, start)
        for before, after in zip(times, times[1:]):
            if after - before > best[0]:
                best = (after - before, before, after)
        return best

    def seconds_without_answer(self, threshold: float = 1.0, start: float | None = None,
                               end: float | None = None) -> float:
        """The sum of every stretch longer than `threshold` s without a good answer (a
        load at a steady rate has short gaps between answers; those are not outages)."""
        span = self.span()
        if span is None:
            return 0.0
        start = span[0] if start is None else start
        end = span[1] if end is None else end
        times = [start] + sorted(a.done for a in self._sorted()
                                 if a.ok and start <= a.done <= end) + [end]
        return sum(b - a for a, b in zip(times, times[1:]) if b - a > threshold)

    def first_good_after(self, at: float, kind: str | None = None) -> float | None:
        """Seconds from `at` to the first good answer that arrived after it (of `kind`,
        if given); None when none came."""
        later = [a.done for a in self._sorted()
                 if a.ok and a.done >= at and (kind is None or a.kind == kind)]
        return min(later) - at if later else None

    def covered(self, readback: Readback) -> set[int]:
        """The acknowledged seqs `readback` would list if the app kept them."""
        acked = self.acknowledged
        if readback.complete:
            return set(acked)
        if not readback.suffix:
            return {seq for seq, a in acked.items() if self.key(seq) in readback.keys}
        listed = [acked[s].done for s in map(self.seq_of, readback.keys) if s in acked]
        if not listed:
            return set()
        floor = min(listed)
        return {seq for seq, a in acked.items() if a.sent > floor or
                self.key(seq) in readback.keys}

    def lost(self, readback: Readback, total_before: int | None = None) -> Loss:
        """Acknowledged writes missing from `readback`. `total_before`: the app's record
        count before this run's first write, for the lower bound from its `total`."""
        acked = self.acknowledged
        covered = self.covered(readback)
        missing = tuple(sorted(s for s in covered if self.key(s) not in readback.keys))
        unverified = tuple(sorted(set(acked) - covered))
        bound = 0
        if readback.total is not None and total_before is not None:
            bound = max(0, total_before + len(acked) - readback.total)
        return Loss(len(acked), missing, unverified, bound)

    def stale_reads(self) -> list[tuple[Attempt, tuple[int, ...]]]:
        """Good reads that did not list a write acknowledged before they were sent (and
        that they cover): an app serving from an empty or old copy. (read, missing seqs)."""
        acked = self.acknowledged
        found = []
        for read in self._sorted():
            if read.kind != "read" or not read.ok or read.seen is None:
                continue
            before = {s for s, a in acked.items() if a.done < read.sent}
            covered = self._covered_at(read.seen, before)
            missing = tuple(sorted(s for s in covered if self.key(s) not in read.seen.keys))
            if missing:
                found.append((read, missing))
        return found

    def _covered_at(self, readback: Readback, seqs: set[int]) -> set[int]:
        return self.covered(readback) & seqs

    def summary(self, readback: Readback | None = None, fault: tuple[float, float] | None = None,
                total_before: int | None = None) -> dict:
        """The numbers a chaos run reports (seconds rounded to 0.1)."""
        attempts = self._sorted()
        gap = self.longest_gap()
        stale = self.stale_reads()
        out = {"requests": len(attempts), "good": sum(a.ok for a in attempts),
               "failed": len(self.failed), "failures": self.failures_by_reason(),
               "writes_acknowledged": len(self.acknowledged),
               "longest_gap_s": round(gap[0], 1),
               "seconds_without_answer": round(self.seconds_without_answer(), 1),
               "stale_reads": len(stale),
               "stale_reads_missed": sorted({s for _, missing in stale for s in missing})[:20]}
        if fault is not None:
            after = self.first_good_after(fault[1])
            out["first_good_after_fault_s"] = None if after is None else round(after, 1)
        if readback is not None:
            loss = self.lost(readback, total_before)
            out.update(writes_lost=loss.lost, writes_missing=list(loss.missing[:20]),
                       writes_unverified=len(loss.unverified))
        return out
