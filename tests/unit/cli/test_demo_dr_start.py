"""`gridflex demo --dr --dr-start HH:MM`: the event's start on the command line (4 x 15 min, posted 50 min ahead)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gridflex.cli.demo_dr import default_event
from gridflex.loop.scenario import LoopSettings


def test_the_default_event_is_at_15_and_dr_start_moves_it() -> None:
    s = LoopSettings()
    assert default_event(s).start == s.day + timedelta(hours=15)
    ev = default_event(s, "17:00")
    assert (ev.start, ev.end, ev.post_at) == (
        s.day + timedelta(hours=17),
        s.day + timedelta(hours=18),
        s.day + timedelta(hours=16, minutes=10),
    )


@pytest.mark.parametrize("bad", ["17", "25:00", "17:61", "five"])
def test_a_malformed_dr_start_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="--dr-start must be HH:MM"):
        default_event(LoopSettings(), bad)
