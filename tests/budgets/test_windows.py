"""Budget windows are calendar windows in the team's zone, computed from local dates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from budgets.windows import window_at, windows_at


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_a_day_across_spring_forward_is_23_hours_from_local_midnight():
    window = window_at("day", utc("2026-03-29T10:00"), zone=ZoneInfo("Europe/Berlin"))
    assert (window.start, window.end) == (utc("2026-03-28T23:00"), utc("2026-03-29T22:00"))
    assert window.end - window.start == timedelta(hours=23)


def test_a_day_across_fall_back_is_25_hours():
    window = window_at("day", utc("2026-10-25T10:00"), zone=ZoneInfo("Europe/Berlin"))
    assert (window.start, window.end) == (utc("2026-10-24T22:00"), utc("2026-10-25T23:00"))
    assert window.end - window.start == timedelta(hours=25)


def test_new_york_spring_forward_day():
    window = window_at("day", utc("2026-03-08T12:00"), zone=ZoneInfo("America/New_York"))
    assert (window.start, window.end) == (utc("2026-03-08T05:00"), utc("2026-03-09T04:00"))


def test_a_day_whose_midnight_does_not_exist_starts_when_the_gap_ends():
    # Chile moves from 00:00 straight to 01:00 on 2026-09-06.
    zone = ZoneInfo("America/Santiago")
    window = window_at("day", utc("2026-09-06T12:00"), zone=zone)
    assert window.start == utc("2026-09-06T04:00")
    assert window.start.astimezone(zone).hour == 1
    assert window.end - window.start == timedelta(hours=23)


def test_the_local_date_decides_the_window_not_the_utc_date():
    # 20:00 UTC on 30 November is already 1 December in Tokyo.
    month = window_at("month", utc("2026-11-30T20:00"), zone=ZoneInfo("Asia/Tokyo"))
    assert (month.start, month.end) == (utc("2026-11-30T15:00"), utc("2026-12-31T15:00"))
    day = window_at("day", utc("2026-11-30T20:00"), zone=ZoneInfo("Asia/Tokyo"))
    assert (day.start, day.end) == (utc("2026-11-30T15:00"), utc("2026-12-01T15:00"))


def test_a_week_starts_on_the_week_start_day():
    # Wednesday 18 November 2026.
    monday = window_at("week", utc("2026-11-18T12:00"), zone=ZoneInfo("UTC"), week_start=0)
    sunday = window_at("week", utc("2026-11-18T12:00"), zone=ZoneInfo("UTC"), week_start=6)
    assert (monday.start, monday.end) == (utc("2026-11-16T00:00"), utc("2026-11-23T00:00"))
    assert (sunday.start, sunday.end) == (utc("2026-11-15T00:00"), utc("2026-11-22T00:00"))
    # On the start day itself the week begins that midnight.
    assert window_at("week", utc("2026-11-15T00:00"), zone=ZoneInfo("UTC"), week_start=6).start == utc("2026-11-15T00:00")


def test_a_december_month_ends_on_the_first_of_january_and_a_window_contains_its_start_only():
    window = window_at("month", utc("2026-12-31T23:59"), zone=ZoneInfo("UTC"))
    assert (window.start, window.end) == (utc("2026-12-01T00:00"), utc("2027-01-01T00:00"))
    assert window.contains(window.start) and not window.contains(window.end)


def test_windows_at_gives_day_week_and_month():
    kinds = [w.kind for w in windows_at(utc("2026-11-18T12:00"), zone=ZoneInfo("UTC"))]
    assert kinds == ["day", "week", "month"]
