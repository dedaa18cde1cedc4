"""The chaos verdicts on hand-made cases: a loss, a duplicate, a reorder, a replay, each is counted."""

from __future__ import annotations

import pytest

from gridflex.chaos.compare import (
    Polled,
    StoredSample,
    check_commands,
    check_samples,
    parse_poll_log,
)

POLLED = [Polled("b001", "meter/p_kw", 100.0 + i, i) for i in range(5)]
STORED = [StoredSample(i, "meter/p_kw", 100.0 + i) for i in range(5)]


def test_poll_log_lines_parse_and_a_torn_last_line_is_skipped() -> None:
    text = (
        "b001,meter/p_kw,2030-01-15T16:00:00+00:00,0\nb001,meter/p_kw,2030-01-15T16:00:01+00:00,1\nb001,met"
    )
    got = parse_poll_log(text)
    assert [(p.point, p.seq) for p in got] == [("meter/p_kw", 0), ("meter/p_kw", 1)]
    assert got[1].ts - got[0].ts == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("stored", "lost", "duplicates", "out_of_order"),
    [
        (STORED, 0, 0, 0),
        (STORED[:2] + STORED[3:], 1, 0, 0),
        ([*STORED, StoredSample(9, "meter/p_kw", 102.0)], 0, 1, 1),  # stored again under a new seq
        ([StoredSample(0, "meter/p_kw", 101.0), StoredSample(1, "meter/p_kw", 100.0), *STORED[2:]], 0, 0, 1),
        ([], 5, 0, 0),
    ],
    ids=["all-stored", "one-lost", "renumbered-duplicate", "swapped", "nothing-stored"],
)
def test_check_samples_counts_losses_duplicates_and_reorders(
    stored: list[StoredSample], lost: int, duplicates: int, out_of_order: int
) -> None:
    got = check_samples(POLLED, stored)
    assert (got.polled, got.lost, got.duplicates, got.out_of_order) == (5, lost, duplicates, out_of_order)
    assert got.ok == (lost == duplicates == out_of_order == 0)


def test_stored_rows_that_were_never_polled_are_not_counted_as_duplicates() -> None:
    # samples before the poll log was switched on, or after the cut, are outside the comparison
    got = check_samples(POLLED[:3], STORED)
    assert (got.polled, got.stored, got.lost, got.duplicates) == (3, 3, 0, 0)


@pytest.mark.parametrize(
    ("acks", "twice", "expired_applied"),
    [
        ([("c1", "applied"), ("c1", "rejected"), ("e1", "expired")], 0, 0),
        ([("c1", "applied"), ("c1", "applied"), ("e1", "expired")], 1, 0),
        ([("c1", "clamped"), ("c1", "rejected"), ("e1", "applied")], 0, 1),
    ],
    ids=["replay-refused", "replay-applied", "expired-applied"],
)
def test_check_commands_counts_replays_and_expired_commands_applied(
    acks: list[tuple[str, str]], twice: int, expired_applied: int
) -> None:
    got = check_commands(3, ["e1"], acks)
    assert (got.applied_twice, got.expired_applied) == (twice, expired_applied)
    assert got.ok == (twice == expired_applied == 0)
    assert not check_commands(4, ["e1"], acks).ok  # an unanswered command is a failure too
