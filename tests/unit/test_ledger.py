"""The load ledger's pure logic (tests/ledger.py) on synthetic timelines: failed requests,
gaps without a good answer, recovery after a fault, acknowledged writes lost (exact on a
complete read-back, never over-counted on a suffix), stale reads."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.ledger import Attempt, Ledger, Readback, reason

RUN = "abc123"


def write(ledger, seq, sent, done, ok=True, status=None):
    ledger.record(Attempt("write", sent, done, ok, status if status is not None else
                          (201 if ok else 503), seq=seq, ref=str(seq) if ok else None))


def read(ledger, sent, done, ok=True, seen=None, status=200):
    ledger.record(Attempt("read", sent, done, ok, status if ok else 502, seen=seen))


def test_keys_are_unique_to_the_run_and_parse_back():
    ledger = Ledger(RUN)
    assert ledger.key(42) == "ledger-abc123-0000042"
    assert ledger.seq_of("ledger-abc123-0000042") == 42
    assert ledger.seq_of("ledger-ffffff-0000042") is None     # another run's
    assert ledger.seq_of("hello") is None and ledger.seq_of(None) is None
    assert ledger.keys_in(["ledger-abc123-0000001", "x", "ledger-fff000-0000002"]) == {
        "ledger-abc123-0000001"}
    with pytest.raises(ValueError):
        Ledger("not hex!")


def test_an_attempt_cannot_end_before_it_began():
    with pytest.raises(ValueError):
        Ledger(RUN).record(Attempt("read", 2.0, 1.0, True))


@pytest.mark.parametrize("status, error, expected", [
    (503, "", "HTTP 503"), (0, "timed out", "timeout"),
    (0, "[Errno 111] Connection refused", "refused"),
    (0, "[Errno 104] Connection reset by peer", "reset"),
    (0, "[Errno 113] No route to host", "no route"),
    (0, "RemoteDisconnected: Remote end closed connection without response", "closed"),
    (0, "ValueError: bad JSON", "ValueError"), (0, "", "no answer")])
def test_failures_are_counted_by_a_short_reason(status, error, expected):
    assert reason(status, error) == expected


def test_a_timeline_with_an_outage():
    """Good answers every 0.5 s, an outage from 10 to 16 s (failures at 11 and 13), the
    fault ended at 14 s: first good answer 2 s after it."""
    ledger = Ledger(RUN)
    seq = 0
    for i in range(41):
        t = i * 0.5
        if 10 < t < 16:
            continue
        seq += 1
        write(ledger, seq, t - 0.1 if t else 0, t)
    write(ledger, None, 10.5, 11.0, ok=False)
    read(ledger, 12.0, 13.0, ok=False)
    assert len(ledger.failed) == 2
    assert ledger.failures_by_reason() == {"HTTP 503": 1, "HTTP 502": 1}
    seconds, since, until = ledger.longest_gap()
    assert (since, until) == (10.0, 16.0) and seconds == pytest.approx(6.0)
    assert ledger.seconds_without_answer(threshold=1.0) == pytest.approx(6.0)
    assert ledger.first_good_after(14.0) == pytest.approx(2.0)
    assert ledger.first_good_after(21.0) is None
    summary = ledger.summary(Readback(frozenset(ledger.key(s) for s in range(1, seq + 1))),
                             fault=(10.0, 14.0), total_before=0)
    assert summary["failed"] == 2 and summary["longest_gap_s"] == 6.0
    assert summary["first_good_after_fault_s"] == 2.0 and summary["writes_lost"] == 0


def test_a_run_without_any_good_answer_is_one_gap():
    ledger = Ledger(RUN)
    read(ledger, 0.0, 1.0, ok=False)
    read(ledger, 4.0, 5.0, ok=False)
    assert ledger.longest_gap() == (5.0, 0.0, 5.0)
    assert ledger.longest_gap(start=-1.0, end=10.0) == (11.0, -1.0, 10.0)
    assert Ledger(RUN).longest_gap() == (0.0, 0.0, 0.0)


def test_a_complete_read_back_counts_every_missing_acknowledged_write():
    ledger = Ledger(RUN)
    for seq in range(1, 6):
        write(ledger, seq, seq, seq + 0.1)
    write(ledger, 6, 6, 6.1, ok=False)     # never acknowledged: not owed
    loss = ledger.lost(Readback(frozenset({ledger.key(1), ledger.key(2), ledger.key(4)})))
    assert loss.missing == (3, 5) and loss.lost == 2 and loss.unverified == ()


def test_a_suffix_covers_only_what_was_sent_after_a_listed_write_was_acknowledged():
    """The app lists its newest records: 4 and 5 listed; 3 overlapped 4 in flight (it may
    have been stored before 4), so it is unverified, not lost; 6, sent after 4 was
    acknowledged, is missing: lost for certain."""
    ledger = Ledger(RUN)
    write(ledger, 1, 0.0, 0.1)
    write(ledger, 2, 1.0, 1.1)
    write(ledger, 3, 2.0, 2.9)
    write(ledger, 4, 2.1, 2.2)
    write(ledger, 5, 3.0, 3.1)
    write(ledger, 6, 4.0, 4.1)
    seen = Readback(frozenset({ledger.key(4), ledger.key(5)}), complete=False, suffix=True,
                    total=12)
    loss = ledger.lost(seen, total_before=10)
    assert loss.missing == (6,) and loss.unverified == (1, 2, 3)
    assert loss.count_bound == 4 and loss.lost == 4    # 10 + 6 acknowledged, 12 held


def test_a_suffix_listing_none_of_ours_verifies_nothing_but_the_count_still_tells():
    ledger = Ledger(RUN)
    for seq in range(1, 4):
        write(ledger, seq, seq, seq + 0.1)
    empty = Readback(frozenset(), complete=False, suffix=True, total=0)
    loss = ledger.lost(empty, total_before=0)
    assert loss.missing == () and loss.unverified == (1, 2, 3) and loss.lost == 3


def test_a_read_that_misses_an_earlier_acknowledged_write_is_stale():
    ledger = Ledger(RUN)
    write(ledger, 1, 0.0, 0.5)
    write(ledger, 2, 1.0, 1.5)
    read(ledger, 2.0, 2.1, seen=Readback(frozenset({ledger.key(1), ledger.key(2)})))
    read(ledger, 3.0, 3.1, seen=Readback(frozenset()))             # an empty store answered
    read(ledger, 1.2, 1.3, seen=Readback(frozenset({ledger.key(1)})))  # 2 not yet acked
    stale = ledger.stale_reads()
    assert [(r.sent, missing) for r, missing in stale] == [(3.0, (1, 2))]


# --- properties on simulated stores -----------------------------------------------------------

@st.composite
def timelines(draw):
    """Writes with overlapping flights into a simulated store that may lose records:
    (attempts, store order of kept seqs, seqs truly lost)."""
    n = draw(st.integers(1, 60))
    writes = []
    t = 0.0
    for seq in range(1, n + 1):
        t += draw(st.floats(0.0, 1.0))
        flight = draw(st.floats(0.01, 3.0))
        stored_at = t + draw(st.floats(0.0, 1.0)) * flight
        ok = draw(st.booleans()) or draw(st.booleans())
        stored = ok or draw(st.booleans())        # a failed request may have been stored
        writes.append((seq, t, t + flight, stored_at, ok, stored))
    order = [w for w in sorted(writes, key=lambda w: w[3]) if w[5]]
    kind = draw(st.sampled_from(["none", "reset", "tail", "random"]))
    kept = list(order)
    if kind == "reset" and kept:                  # a fresh empty store from some point on
        cut = draw(st.integers(0, len(kept)))
        kept = kept[cut:]
    elif kind == "tail" and kept:                 # the last writes lost (no fsync)
        cut = draw(st.integers(0, len(kept)))
        kept = kept[:cut]
    elif kind == "random":
        kept = [w for w in kept if draw(st.booleans())]
    lost = {w[0] for w in writes if w[4]} - {w[0] for w in kept}
    return writes, [w[0] for w in kept], lost


@settings(max_examples=300, deadline=None)
@given(timelines(), st.integers(1, 30), st.integers(0, 5))
def test_a_suffix_read_back_never_overcounts_and_a_complete_one_is_exact(
        timeline, window, others):
    writes, kept, truly_lost = timeline
    ledger = Ledger(RUN)
    for seq, sent, done, _, ok, _ in writes:
        write(ledger, seq, sent, done, ok=ok)
    total = len(kept) + others            # `others`: records of other runs, before ours
    complete = Readback(frozenset(ledger.key(s) for s in kept), total=total)
    assert set(ledger.lost(complete, total_before=others).missing) == truly_lost
    listed = kept[-window:]
    suffix = Readback(frozenset(ledger.key(s) for s in listed), complete=False, suffix=True,
                      total=total)
    loss = ledger.lost(suffix, total_before=others)
    assert loss.lost <= len(truly_lost)
    assert set(loss.missing) <= truly_lost
    assert set(loss.missing) | set(loss.unverified) >= truly_lost
    if not truly_lost:
        assert loss.lost == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0, 5), st.booleans()), min_size=1,
                max_size=50))
def test_the_longest_gap_bounds_every_gap_between_good_answers(attempts):
    ledger = Ledger(RUN)
    for i, (sent, took, ok) in enumerate(attempts):
        read(ledger, sent, sent + took, ok=ok)
    seconds, since, until = ledger.longest_gap()
    start, end = ledger.span()
    goods = sorted(sent + took for sent, took, ok in attempts if ok)
    points = [start] + goods + [end]
    assert seconds == pytest.approx(max(b - a for a, b in zip(points, points[1:])))
    assert start <= since <= until <= end
    assert ledger.seconds_without_answer(threshold=0.0) == pytest.approx(end - start)
