"""Durations as people read them (the pages' `duration` filter, the recent events' words)."""

from __future__ import annotations

import pytest

from pulse_site.templatetags.pulse_tags import duration


@pytest.mark.parametrize(("ms", "words"), [
    (None, "—"), (0, "0 ms"), (999, "999 ms"), (1000, "1.0 s"), (4_240, "4.2 s"), (59_940, "59.9 s"),
    # Never "60.0 s": what rounds to a minute reads as one.
    (59_950, "1 min"), (59_999, "1 min"), (60_000, "1 min"), (200_400, "3 min 20 s"),
    (3_599_700, "1 h"), (7_500_000, "2 h 5 min"), (273_600_000, "3 d 4 h"),
])
def test_a_duration_reads_in_the_largest_units_that_fit(ms, words):
    assert duration(ms) == words
