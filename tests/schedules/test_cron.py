"""Cron evaluation: validation with the field named, and fire times across DST in two zones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pulse_site.errors import ValidationError
from schedules.cron import cron_describe, cron_parse, next_fire, next_fires, runs_within, slots_between, zone_get


def local(instants, zone_name):
    zone = zone_get(zone_name)
    return [i.astimezone(zone).strftime("%m-%d %H:%M%z") for i in instants]


def fires(expression, zone_name, after, count):
    return local(next_fires(cron_parse(expression), zone_get(zone_name), after, count), zone_name)


@pytest.mark.parametrize("expression", ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 6,9,11 *"])
def test_never_firing_expressions_are_refused_on_the_cron_field(expression):
    with pytest.raises(ValidationError) as caught:
        cron_parse(expression)
    assert caught.value.fields == {"cron": ["This expression never fires (not once in the next 5 years)."]}


@pytest.mark.parametrize(("expression", "reason"), [
    ("", "A cron expression is required, e.g. '0 9 * * 1-5'."),
    ("@reboot", "@reboot is not supported: schedules fire by the clock only."),
    ("* * * * * *", "Five fields are needed (minute hour day-of-month month day-of-week); this has 6. "
                    "Seconds and years are not supported."),
    ("* * * *", "Five fields are needed (minute hour day-of-month month day-of-week); this has 4."),
])
def test_malformed_expressions_are_refused_with_the_reason(expression, reason):
    with pytest.raises(ValidationError) as caught:
        cron_parse(expression)
    assert caught.value.fields == {"cron": [reason]}


@pytest.mark.parametrize("expression", ["60 * * * *", "0 24 * * *", "0 0 32 * *", "0 0 * 13 *", "x y z w v"])
def test_out_of_range_fields_are_refused_on_the_cron_field(expression):
    with pytest.raises(ValidationError) as caught:
        cron_parse(expression)
    assert list(caught.value.fields) == ["cron"]
    assert caught.value.fields["cron"][0].startswith("Not a valid cron expression")


@pytest.mark.parametrize(("expression", "reason"), [
    ("61 * * * *", "minute 61 is outside 0–59."),
    ("0 24 * * *", "hour 24 is outside 0–23."),
    ("0 0 1,40 * *", "day of month '1,40': 40 is outside 1–31."),
    ("0 0 * 13 *", "month 13 is outside 1–12."),
    ("0 0 * * 8", "day of week 8 is outside 0–7."),
    ("*/0 * * * *", "minute '*/0': the step '0' is not a whole number from 1."),
    ("0 0 * foo *", "month 'foo' is not a number from 1 to 12 or a name jan–dec."),
    ("-1 * * * *", "minute '-1' is neither a number from 0 to 59 nor a range of two (a-b)."),
    ("0 3 \u0000 * *", "day of month '\\x00' is not a number from 1 to 31."),
    ("x 3 * * y", "minute 'x' is not a number from 0 to 59; day of week 'y' is not a number from 0 to 7 or a name sun–sat."),
])
def test_a_refused_expression_names_each_wrong_field_and_what_it_takes(expression, reason):
    with pytest.raises(ValidationError) as caught:
        cron_parse(expression)
    assert caught.value.fields == {"cron": [f"Not a valid cron expression: {reason}"]}


@pytest.mark.parametrize(("expression", "reason"), [
    ("R R * * *", "minute 'R': random (R) and hashed (H) values are not supported: a run would come at a "
                  "new random time each time it is worked out, not at the one shown; write the minute you want; "
                  "hour 'R': random (R) and hashed (H) values are not supported: a run would come at a new random "
                  "time each time it is worked out, not at the one shown; write the hour you want."),
    ("R(0-5) 3 * * *", "minute 'R(0-5)': random (R) and hashed (H) values are not supported: a run would come at a "
                       "new random time each time it is worked out, not at the one shown; write the minute you want."),
    ("0 3 * * r", "day of week 'r': random (R) and hashed (H) values are not supported: a run would come at a new "
                  "random time each time it is worked out, not at the one shown; write the day of week you want."),
    ("H/15 * * * *", "minute 'H/15': random (R) and hashed (H) values are not supported: a run would come at a new "
                     "random time each time it is worked out, not at the one shown; write the minute you want."),
])
def test_random_and_hashed_values_are_refused_naming_the_field(expression, reason):
    # croniter draws an R anew for every evaluation: the preview showed one time, the tick fired at
    # others ("R(0-5) 0 * * *" ran twice on some days and not at all on others).
    with pytest.raises(ValidationError) as caught:
        cron_parse(expression)
    assert caught.value.fields == {"cron": [f"Not a valid cron expression: {reason}"]}


SINGLE_DAY = ("{}: '{}' picks the days on its own; the {} must then be * or ? (with both, the runs would not be "
              "the ones described).")


@pytest.mark.parametrize(("expression", "reason"), [
    ("0 0 15 * 5#3", SINGLE_DAY.format("day of week", "5#3", "day of month")),
    ("0 0 1 * L5", SINGLE_DAY.format("day of week", "L5", "day of month")),
    ("0 0 L * L5", SINGLE_DAY.format("day of week", "L5", "day of month")),
    ("0 0 15W * 5", SINGLE_DAY.format("day of month", "15W", "day of week")),
    ("0 0 15W * 5#2", SINGLE_DAY.format("day of month", "15W", "day of week")),
])
def test_a_single_day_form_with_the_other_day_field_set_is_refused_with_why(expression, reason):
    # croniter neither ORs nor ANDs these: '0 0 15 * 5#3' ran on every third Friday (not the 15th),
    # '0 0 15W * 5' never on a Friday, '0 0 15W * 5#2' on dates out of order, '0 0 1 * L5' not at all,
    # while the description promised "on day 15 of the month, on the third Friday" and the like.
    with pytest.raises(ValidationError) as caught:
        cron_parse(expression)
    assert caught.value.fields == {"cron": [f"Not a valid cron expression: {reason}"]}


@pytest.mark.parametrize(("expression", "reason"), [
    ("0 0 * * 5L", "day of week '5L' is not a form Pulse reads (a number from 0 to 7 or a name sun–sat, a range "
                   "a-b, a list a,b, a step */n, n#k for the k-th weekday n of the month, Ln for its last weekday n, "
                   "or ?)."),
    ("0 0 LW * *", "day of month 'LW' is not a form Pulse reads (a number from 1 to 31, a range a-b, a list a,b, a "
                   "step */n, L for the last day of the month, nW for the weekday nearest day n, or ?)."),
    ("0 0 * * 1#6", "day of week '1#6' is not a form Pulse reads (a number from 0 to 7 or a name sun–sat, a range "
                    "a-b, a list a,b, a step */n, n#k for the k-th weekday n of the month, Ln for its last weekday "
                    "n, or ?)."),
    ("? 0 * * *", "minute '?' is not a form Pulse reads (a number from 0 to 59, a range a-b, a list a,b or a step */n)."),
])
def test_an_extension_croniter_refuses_is_refused_naming_its_field_and_the_forms_it_takes(expression, reason):
    with pytest.raises(ValidationError) as caught:
        cron_parse(expression)
    assert caught.value.fields == {"cron": [f"Not a valid cron expression: {reason}"]}


@pytest.mark.parametrize(("expression", "runs"), [
    # Day of month and day of week both set: either one will do (classic cron's OR), as described.
    ("0 0 1 * 1", ["Mon 01-05", "Mon 01-12", "Mon 01-19", "Mon 01-26", "Sun 02-01"]),
    ("0 0 L * 5", ["Fri 01-02", "Fri 01-09", "Fri 01-16", "Fri 01-23", "Fri 01-30", "Sat 01-31"]),
    ("0 0 ? * 5#3", ["Fri 01-16", "Fri 02-20", "Fri 03-20"]),
    ("0 0 * * L5", ["Fri 01-30", "Fri 02-27", "Fri 03-27"]),
    ("0 0 15W * ?", ["Thu 01-15", "Mon 02-16", "Mon 03-16"]),
])
def test_the_day_forms_that_are_taken_run_as_their_description_says(expression, runs):
    fired = next_fires(cron_parse(expression), zone_get("UTC"), datetime(2026, 1, 1, 0, 0, tzinfo=UTC), len(runs))
    assert [run.strftime("%a %m-%d") for run in fired] == runs


@pytest.mark.parametrize("expression", ["0 0 * * mon-fri", "0 0 * jan-dec/2 *", "0 0 L * *", "0 0 * * 5#3", "0 0 * * 7",
                                        "0 0 * * SUN", "0 0 1-31/2 * *"])
def test_names_ranges_steps_and_crons_extensions_are_still_accepted(expression):
    assert cron_parse(expression).fields == expression


def test_an_unknown_macro_is_refused_and_the_known_ones_expand():
    with pytest.raises(ValidationError) as caught:
        cron_parse("@fortnightly")
    assert list(caught.value.fields) == ["cron"]
    assert cron_parse("@daily").fields == "0 0 * * *"
    assert cron_parse("@Hourly").fields == "0 * * * *"
    assert cron_parse("@annually").fields == "0 0 1 1 *"


def test_an_interval_below_the_minimum_is_refused(settings):
    settings.PULSE_SCHEDULE_MIN_INTERVAL_SECONDS = 300
    with pytest.raises(ValidationError) as caught:
        cron_parse("*/2 * * * *")
    assert caught.value.fields == {"cron": ["Fires every 120 s at times; the minimum interval is 300 s."]}
    with pytest.raises(ValidationError):
        cron_parse("0,1 9 * * *")
    assert cron_parse("*/5 * * * *").fields == "*/5 * * * *"
    assert cron_parse("55 23 * * *").fields == "55 23 * * *"


def test_an_unknown_zone_is_refused_on_the_time_zone_field():
    with pytest.raises(ValidationError) as caught:
        zone_get("Mars/Olympus")
    assert caught.value.fields == {"time_zone": ["'Mars/Olympus' is not an IANA time zone name (e.g. Europe/Berlin)."]}


def test_the_description_is_human_and_uses_a_24_hour_clock():
    assert cron_describe(cron_parse("0 9 * * 1-5")) == "At 09:00, Monday through Friday"
    assert cron_describe(cron_parse("*/15 * * * *")) == "Every 15 minutes"


# --- Europe/Berlin: 2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 CEST -> 02:00 CET ------


def test_berlin_a_fixed_time_in_the_spring_gap_runs_right_after_the_jump_once():
    assert fires("30 2 * * *", "Europe/Berlin", datetime(2026, 3, 28, 12, tzinfo=UTC), 3) == [
        "03-29 03:00+0200", "03-30 02:30+0200", "03-31 02:30+0200"]


def test_berlin_a_fixed_time_in_the_repeated_autumn_hour_runs_once():
    assert fires("30 2 * * *", "Europe/Berlin", datetime(2026, 10, 24, 12, tzinfo=UTC), 3) == [
        "10-25 02:30+0200", "10-26 02:30+0100", "10-27 02:30+0100"]


def test_berlin_wildcard_minutes_keep_real_time_spacing_across_both_changes():
    assert fires("*/30 * * * *", "Europe/Berlin", datetime(2026, 3, 28, 23, 0, tzinfo=UTC), 5) == [
        "03-29 00:30+0100", "03-29 01:00+0100", "03-29 01:30+0100", "03-29 03:00+0200", "03-29 03:30+0200"]
    assert fires("*/30 * * * *", "Europe/Berlin", datetime(2026, 10, 24, 23, 0, tzinfo=UTC), 6) == [
        "10-25 01:30+0200", "10-25 02:00+0200", "10-25 02:30+0200",
        "10-25 02:00+0100", "10-25 02:30+0100", "10-25 03:00+0100"]


# --- America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST ----


def test_new_york_a_fixed_time_in_the_spring_gap_runs_right_after_the_jump_once():
    assert fires("15 2 * * *", "America/New_York", datetime(2026, 3, 7, 12, tzinfo=UTC), 3) == [
        "03-08 03:00-0400", "03-09 02:15-0400", "03-10 02:15-0400"]


def test_new_york_a_fixed_time_in_the_repeated_autumn_hour_runs_once():
    assert fires("30 1 * * *", "America/New_York", datetime(2026, 10, 31, 12, tzinfo=UTC), 3) == [
        "11-01 01:30-0400", "11-02 01:30-0500", "11-03 01:30-0500"]


def test_new_york_wildcard_schedules_keep_real_time_spacing_across_both_changes():
    assert fires("*/15 * * * *", "America/New_York", datetime(2026, 3, 8, 6, 30, tzinfo=UTC), 4) == [
        "03-08 01:45-0500", "03-08 03:00-0400", "03-08 03:15-0400", "03-08 03:30-0400"]
    assert fires("0 * * * *", "America/New_York", datetime(2026, 11, 1, 4, 30, tzinfo=UTC), 4) == [
        "11-01 01:00-0400", "11-01 01:00-0500", "11-01 02:00-0500", "11-01 03:00-0500"]


def test_several_slots_inside_the_spring_gap_collapse_into_one_run():
    cron, zone = cron_parse("0,30 2 * * *"), zone_get("Europe/Berlin")
    first = next_fire(cron, zone, datetime(2026, 3, 28, 12, tzinfo=UTC))
    assert local([first, next_fire(cron, zone, first)], "Europe/Berlin") == ["03-29 03:00+0200", "03-30 02:00+0200"]


def test_slots_between_keeps_the_latest_ones_of_a_long_gap():
    cron, zone = cron_parse("* * * * *"), zone_get("UTC")
    slots = slots_between(cron, zone, first=datetime(2026, 1, 1, 0, 0, tzinfo=UTC),
                          until=datetime(2026, 1, 8, 0, 0, 30, tzinfo=UTC), keep=3)
    assert slots == [datetime(2026, 1, 7, 23, 58, tzinfo=UTC), datetime(2026, 1, 7, 23, 59, tzinfo=UTC),
                     datetime(2026, 1, 8, 0, 0, tzinfo=UTC)]
    daily = slots_between(cron_parse("0 9 * * *"), zone, first=datetime(2026, 1, 1, 9, tzinfo=UTC),
                          until=datetime(2026, 1, 3, 12, tzinfo=UTC), keep=10)
    assert [s.day for s in daily] == [1, 2, 3]


def test_runs_within_counts_exactly_up_to_its_sample_and_scales_past_it():
    start = datetime(2026, 3, 1, tzinfo=UTC)
    berlin = zone_get("Europe/Berlin")
    # Daily at 02:30 through March 2026, whose 29th skips 02:00-03:00 in Berlin: still once that day.
    assert runs_within(cron_parse("30 2 * * *"), berlin, start=start, span=timedelta(days=31)) == (31, False)
    assert runs_within(cron_parse("*/5 * * * *"), berlin, start=start, span=timedelta(days=30)) == (8_640, True)
    assert runs_within(cron_parse("0 0 1 1 *"), berlin, start=start, span=timedelta(days=30)) == (0, False)


def test_a_stored_expression_is_read_back_without_the_checks_it_passed_when_saved(settings):
    from schedules.cron import cron_stored

    settings.PULSE_SCHEDULE_MIN_INTERVAL_SECONDS = 3600  # saved when every minute was allowed
    with pytest.raises(ValidationError):
        cron_parse("* * * * *")
    assert cron_stored("* * * * *").fields == "* * * * *"
    assert cron_stored("@daily").fields == "0 0 * * *"
    with pytest.raises(ValidationError):
        cron_stored("61 * * * *")  # one that never parsed (written around the services) is still refused


@pytest.mark.parametrize("zone_name", ["Europe/Berlin", "Asia/Kolkata", "UTC"])
def test_fires_from_any_instant_in_a_minute_are_those_after_it(zone_name):
    # next_fires reads "after" by the minute (so that lists asking from now share its cache): a fire
    # in the minute before is never returned, one just after always is.
    cron = cron_parse("*/5 * * * *")
    zone = zone_get(zone_name)
    slot = datetime(2026, 6, 1, 10, 5, tzinfo=zone).astimezone(UTC)
    assert next_fires(cron, zone, slot - timedelta(microseconds=1), 1) == [slot]
    assert next_fires(cron, zone, slot - timedelta(seconds=59), 2) == [slot, slot + timedelta(minutes=5)]
    assert next_fires(cron, zone, slot, 1) == [slot + timedelta(minutes=5)]
    assert next_fires(cron, zone, slot + timedelta(seconds=59, microseconds=999_999), 1) == [slot + timedelta(minutes=5)]


def test_fires_asked_from_the_second_pass_of_a_repeated_hour_are_those_after_it():
    # The cache of next_fires was keyed by the local time, and two local times of one zone that
    # differ only by their pass (fold) are equal keys: asked from 01:31 EST, it answered what it
    # had worked out for 01:31 EDT, an hour before (runs already past on the pages and the preview).
    cron, zone = cron_parse("*/30 * * * *"), zone_get("America/New_York")
    first_pass = next_fires(cron, zone, datetime(2026, 11, 1, 5, 31, tzinfo=UTC), 2)
    second_pass = next_fires(cron, zone, datetime(2026, 11, 1, 6, 31, tzinfo=UTC), 2)
    assert local(first_pass, "America/New_York") == ["11-01 01:00-0500", "11-01 01:30-0500"]
    assert local(second_pass, "America/New_York") == ["11-01 02:00-0500", "11-01 02:30-0500"]
