"""A corpus of bad cron expressions, sent through every door a schedule has (API create and edit, the
dashboard's new and edit forms): each is refused on the cron field, and nothing is stored or changed."""

from __future__ import annotations

import json

import pytest

from schedules.models import Schedule
from schedules.services import schedule_create

pytestmark = pytest.mark.django_db

CORPUS = {
    "never fires (30 February)": "0 0 30 2 *",
    "never fires (31 April)": "0 0 31 4 *",
    "never fires (31 of every 30-day month)": "0 0 31 4,6,9,11 *",
    "minute out of range": "60 * * * *",
    "hour out of range": "0 24 * * *",
    "day of month zero": "0 0 0 * *",
    "month thirteen": "0 0 1 13 *",
    "day of week eight": "0 0 * * 8",
    "negative value": "-1 * * * *",
    "inverted range with a step of zero": "0 0 */0 * *",
    "four fields": "0 3 * *",
    "six fields (seconds)": "0 0 3 * * *",
    "seven fields (years)": "0 0 3 * * * 2030",
    "@reboot": "@reboot",
    "unknown macro": "@fortnightly",
    "more often than the minimum interval": "* * * * *",
    "empty": "",
    "only spaces": "     ",
    "letters": "every day at noon",
    "a huge string": "0 " * 5_000,
    "a huge list": ",".join(str(m) for m in range(60)) * 100 + " * * * *",
    "NUL in the middle": "0 3 \u0000 * *",
    "newline injection": "0 3 * * *\n* * * * *",
    "non-ASCII digits": "\u0660 3 * * *",
    # croniter takes these, but what they run is not what the preview shows (a random time drawn
    # anew at every evaluation; a day field's own pick set beside the other day field).
    "random minute (R)": "R 3 * * *",
    "random hour in a range (R(0-5))": "0 R(0-5) * * *",
    "hashed minute (H)": "H 3 * * *",
    "third Friday and the 15th": "0 0 15 * 5#3",
    "last Friday and the 1st": "0 0 1 * L5",
    "weekday nearest the 15th and Fridays": "0 0 15W * 5",
    # croniter refuses these in its own words, naming no field.
    "last Friday written 5L": "0 0 * * 5L",
    "last weekday LW": "0 0 LW * *",
    "sixth Monday": "0 0 * * 1#6",
    "question mark in the minute": "? 3 * * *",
}


@pytest.fixture(autouse=True)
def _minimum_interval(settings):
    settings.PULSE_SCHEDULE_MIN_INTERVAL_SECONDS = 300


def api_body(cron: str) -> dict:
    return {"name": "Nightly", "handler": "pulse.noop", "cron": cron, "time_zone": "UTC", "payload": {}}


def form_body(cron: str) -> dict:
    return {"name": "Nightly", "handler": "pulse.noop", "cron": cron, "time_zone": "UTC", "payload": "{}",
            "enabled": "on", "overlap_policy": "skip", "misfire_policy": "once", "estimate_override": ""}


@pytest.mark.parametrize("case", CORPUS, ids=list(CORPUS))
def test_a_bad_cron_is_refused_by_the_api_at_create_and_at_edit(acme_api, case):
    cron = CORPUS[case]
    created = acme_api.post("/api/v1/schedules/", api_body(cron), format="json")
    assert created.status_code == 400, created.content[:300]
    assert list(created.json()["error"]["fields"]) == ["cron"]
    assert not Schedule.objects.exists()

    good = acme_api.post("/api/v1/schedules/", api_body("0 3 * * *"), format="json").json()
    before = list(Schedule.objects.values())
    edited = acme_api.patch(f"/api/v1/schedules/{good['id']}/", {"cron": cron}, format="json")
    assert edited.status_code == 400, edited.content[:300]
    assert list(edited.json()["error"]["fields"]) == ["cron"]
    assert list(Schedule.objects.values()) == before


# The form calls the same service as the API; one case of each kind keeps the run short (each
# form render lists every time zone).
FORM_CASES = ["never fires (30 February)", "minute out of range", "four fields", "six fields (seconds)", "@reboot",
              "more often than the minimum interval", "a huge string", "NUL in the middle", "random minute (R)",
              "third Friday and the 15th", "last Friday written 5L"]


@pytest.mark.parametrize("case", FORM_CASES)
def test_a_bad_cron_is_refused_by_the_dashboard_at_create_and_at_edit(acme, alice_client, case):
    cron = CORPUS[case]
    response = alice_client.post("/schedules/new/", form_body(cron))
    assert response.status_code == 400
    assert "cron" in response.context["form"].errors
    assert not Schedule.objects.exists()

    schedule = schedule_create(team=acme, name="Nightly", handler="pulse.noop", cron="0 3 * * *", time_zone="UTC")
    before = list(Schedule.objects.values())
    response = alice_client.post(f"/schedules/{schedule.public_id}/edit/", form_body(cron))
    assert response.status_code == 400
    assert "cron" in response.context["form"].errors
    assert list(Schedule.objects.values()) == before


@pytest.mark.parametrize("case", ["@reboot", "four fields", "a huge string", "never fires (30 February)",
                                  "random minute (R)", "third Friday and the 15th", "last Friday written 5L"])
def test_the_preview_refuses_a_bad_cron_without_a_crash(acme_api, case):
    response = acme_api.post("/api/v1/schedules/preview/", {"cron": CORPUS[case], "time_zone": "UTC"}, format="json")
    assert response.status_code == 400
    assert "cron" in json.dumps(response.json()["error"]["fields"])


def test_every_refusal_says_in_pulses_words_what_is_wrong(acme_api):
    # croniter's own messages name the expression, lower-cased, not the field ("[0 0 * * 5l] is
    # not acceptable"): each refusal names the field at fault, or the whole expression's fault.
    fields = ("minute", "hour", "day of month", "month", "day of week")
    for case, cron in CORPUS.items():
        response = acme_api.post("/api/v1/schedules/preview/", {"cron": cron, "time_zone": "UTC"}, format="json")
        [message] = response.json()["error"]["fields"]["cron"]
        assert "acceptable" not in message, case
        if message.startswith("Not a valid cron expression: "):
            assert message.split(": ", 1)[1].startswith(fields), (case, message)
