"""An operator sets a team's retention ages and its handlers' budget caps on the team's admin page,
through the same services as the team's own pages (team_update, budget_policy_update): the same
checks, each refusal on its field and nothing written; the team's events name the operator; the
change is in Django's admin log. Who may only view the team changes nothing there."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.test import Client
from django.urls import reverse

from budgets.models import HandlerCap, PolicyChange
from budgets.services import budget_policy_update
from pulse_site.live.models import Event
from tests.conftest import staff_client


class _Inputs(HTMLParser):
    """The values a browser would post from the page's change form, as it shows them."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, str] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("submit", "button", "checkbox"):
            self.data[name] = a.get("value") or ""
        elif tag == "input" and name and a.get("type") == "checkbox" and "checked" in a:
            self.data[name] = a.get("value") or "on"
        elif tag == "select" and name:
            self._select = name
            self.data.setdefault(name, "")
        elif tag == "option" and self._select and "selected" in a:
            self.data[self._select] = a.get("value") or ""
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.data[self._textarea] += data.strip()


def team_form(client: Client, team) -> dict[str, str]:
    page = client.get(reverse("admin:teams_team_change", args=[team.pk]))
    assert page.status_code == 200
    parser = _Inputs()
    parser.feed(page.content.decode())
    return {name: value for name, value in parser.data.items() if name not in ("csrfmiddlewaretoken", "_save")}


def save(client: Client, team, **changes: str):
    data = {**team_form(client, team), **changes}
    return client.post(reverse("admin:teams_team_change", args=[team.pk]), data)


def test_an_operator_sets_a_teams_retention_ages_through_the_team_service(admin_client, acme):
    response = save(admin_client, acme, job_retention_days="45", event_retention_days="3")

    assert response.status_code == 302, response.content.decode()[:3000]
    acme.refresh_from_db()
    assert (acme.job_retention_days, acme.execution_retention_days, acme.event_retention_days) == (45, None, 3)
    event = Event.objects.get(team=acme, kind="team.retention")
    assert event.payload == {"by": "admin admin", "before": {"job_retention_days": None, "event_retention_days": None},
                             "after": {"job_retention_days": 45, "event_retention_days": 3}}
    entry = LogEntry.objects.get()
    assert (entry.user.username, entry.action_flag, entry.object_id) == ("admin", CHANGE, str(acme.pk))
    assert "Finished jobs" in entry.get_change_message() and "Live events" in entry.get_change_message()


def test_emptying_a_retention_age_puts_the_default_back(admin_client, acme):
    from pulse_site.teams.services import team_update

    team_update(team=acme, changes={"job_retention_days": 10}, by=None)

    save(admin_client, acme, job_retention_days="")

    acme.refresh_from_db()
    assert acme.job_retention_days is None


@pytest.mark.parametrize("value", ["0", "3651", "ten", "-1"])
def test_a_refused_retention_age_is_the_services_error_on_its_field_and_changes_nothing(admin_client, acme, value):
    response = save(admin_client, acme, job_retention_days=value, name="Acme Labs")

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "job_retention_days": ["A whole number of days from 1 to 3650, or empty for the default."]}
    acme.refresh_from_db()
    assert (acme.name, acme.job_retention_days) == ("Acme", None)
    assert not Event.objects.filter(kind__in=["team.retention", "team.changed"]).exists()
    assert not LogEntry.objects.exists()


def _cap_rows(form: dict[str, str]) -> int:
    return int(form["handler_caps-TOTAL_FORMS"])


def test_an_operator_adds_a_handlers_cap_through_the_budget_service(admin_client, acme):
    form = team_form(admin_client, acme)
    row = _cap_rows(form) - 1  # the blank row the page offers

    response = save(admin_client, acme, **{f"handler_caps-{row}-handler": "pulse.noop",
                                           f"handler_caps-{row}-daily_amount": "1.50",
                                           f"handler_caps-{row}-monthly_amount": "20"})

    assert response.status_code == 302, response.content.decode()[:3000]
    cap = HandlerCap.objects.get(team=acme)
    assert (cap.handler, cap.daily_limit, cap.weekly_limit, cap.monthly_limit) == ("pulse.noop", 1_500_000, None,
                                                                                   20_000_000)
    event = Event.objects.get(team=acme, kind="budget.policy")
    assert event.payload["by"] == "admin admin"
    assert event.payload["after"]["handler_caps"] == {"pulse.noop": {"daily": "1.5", "weekly": None, "monthly": "20"}}
    assert PolicyChange.objects.get(team=acme).by_label == "admin admin"
    entry = LogEntry.objects.get()
    assert (entry.action_flag, entry.object_id) == (CHANGE, str(acme.pk))
    assert "Added handler cap" in entry.get_change_message()


def test_an_operator_changes_and_removes_caps_through_the_budget_service(admin_client, acme, temp_handler):
    temp_handler("reports.build")(lambda ctx: None)
    budget_policy_update(team=acme, by=None, changes={"handler_caps": {
        "pulse.noop": {"daily": "1"}, "reports.build": {"weekly": "5"}}})
    form = team_form(admin_client, acme)
    rows = {form[f"handler_caps-{n}-handler"]: n for n in range(_cap_rows(form)) if form.get(f"handler_caps-{n}-id")}

    response = save(admin_client, acme, **{f"handler_caps-{rows['pulse.noop']}-daily_amount": "2.5",
                                           f"handler_caps-{rows['reports.build']}-DELETE": "on"})

    assert response.status_code == 302, response.content.decode()[:3000]
    assert list(HandlerCap.objects.filter(team=acme).values_list("handler", "daily_limit")) == [("pulse.noop",
                                                                                                 2_500_000)]
    event = Event.objects.filter(team=acme, kind="budget.policy").latest("id")
    assert (event.payload["by"], event.payload["after"]["handler_caps"]) == (
        "admin admin", {"pulse.noop": {"daily": "2.5", "weekly": None, "monthly": None}})
    message = LogEntry.objects.get().get_change_message()
    assert "Changed" in message and "Deleted handler cap" in message


def test_renaming_a_caps_handler_moves_the_cap(admin_client, acme, temp_handler):
    temp_handler("reports.build")(lambda ctx: None)
    budget_policy_update(team=acme, by=None, changes={"handler_caps": {"pulse.noop": {"daily": "1"}}})

    save(admin_client, acme, **{"handler_caps-0-handler": "reports.build"})

    assert list(HandlerCap.objects.values_list("handler", "daily_limit")) == [("reports.build", 1_000_000)]


@pytest.mark.parametrize(("row", "field", "reason"), [
    ({"handler": "nope.such", "daily_amount": "1"}, "handler", "Unknown handler 'nope.such'."),
    ({"handler": "pulse.notify", "daily_amount": "1"}, "handler", "Unknown handler 'pulse.notify'."),  # internal
    ({"handler": "pulse.noop", "daily_amount": "-1"}, "daily_amount", None),
    ({"handler": "pulse.noop", "weekly_amount": "lots"}, "weekly_amount", None),
], ids=["unknown", "internal", "negative", "not-money"])
def test_a_refused_cap_is_the_services_error_on_its_field_and_changes_nothing(admin_client, acme, row, field,
                                                                             reason):
    from budgets.services import budget_policy_validate
    from pulse_site.errors import ValidationError

    form = team_form(admin_client, acme)
    n = _cap_rows(form) - 1

    response = save(admin_client, acme, job_retention_days="40", **{f"handler_caps-{n}-{k}": v for k, v in row.items()})

    assert response.status_code == 200
    (inline,) = [f for f in response.context["inline_admin_formsets"] if f.formset.prefix == "handler_caps"]
    if reason is None:  # the service's own words, whatever they are
        limits = {k.removesuffix("_amount"): v for k, v in row.items() if k != "handler"}
        with pytest.raises(ValidationError) as refused:
            budget_policy_validate(changes={"handler_caps": {row["handler"]: limits}})
        reason = next(iter(refused.value.fields.values()))[0]
    assert inline.formset.forms[n].errors == {field: [reason]}
    acme.refresh_from_db()
    assert (acme.job_retention_days, HandlerCap.objects.count(), Event.objects.filter(kind="budget.policy").count(),
            LogEntry.objects.count()) == (None, 0, 0, 0)


def test_a_second_cap_for_the_same_handler_is_refused(admin_client, acme):
    budget_policy_update(team=acme, by=None, changes={"handler_caps": {"pulse.noop": {"daily": "1"}}})
    form = team_form(admin_client, acme)
    n = _cap_rows(form) - 1

    response = save(admin_client, acme, **{f"handler_caps-{n}-handler": "pulse.noop",
                                           f"handler_caps-{n}-daily_amount": "9"})

    assert response.status_code == 200
    (inline,) = [f for f in response.context["inline_admin_formsets"] if f.formset.prefix == "handler_caps"]
    assert inline.formset.non_form_errors() == ["Please correct the duplicate data for handler."]
    assert list(HandlerCap.objects.values_list("daily_limit", flat=True)) == [1_000_000]


def test_a_new_cap_without_a_limit_is_refused_rather_than_dropped_unsaid(admin_client, acme):
    form = team_form(admin_client, acme)
    n = _cap_rows(form) - 1

    response = save(admin_client, acme, **{f"handler_caps-{n}-handler": "pulse.noop"})

    assert response.status_code == 200
    (inline,) = [f for f in response.context["inline_admin_formsets"] if f.formset.prefix == "handler_caps"]
    assert inline.formset.forms[n].non_field_errors() == ["Give at least one limit (a cap with none is no cap)."]
    assert not HandlerCap.objects.exists()


# --- who may ---------------------------------------------------------------------------------



def test_people_who_are_not_staff_never_reach_the_team_settings(alice_client, acme):
    url = reverse("admin:teams_team_change", args=[acme.pk])

    page = alice_client.get(url)
    post = alice_client.post(url, {"name": "Acme", "time_zone": "UTC", "job_retention_days": "1"})

    assert page.status_code == post.status_code == 302
    assert page.url.startswith(reverse("admin:login"))
    acme.refresh_from_db()
    assert acme.job_retention_days is None


def test_a_staff_member_who_may_only_view_sees_the_settings_and_changes_none(admin_client, acme):
    budget_policy_update(team=acme, by=None, changes={"handler_caps": {"pulse.noop": {"daily": "1"}}})
    data = {**team_form(admin_client, acme), "job_retention_days": "2", "handler_caps-0-daily_amount": "9"}
    watcher = staff_client("watcher", "view_team", "view_handlercap")
    url = reverse("admin:teams_team_change", args=[acme.pk])

    page = watcher.get(url).content.decode()
    response = watcher.post(url, data)

    assert 'name="job_retention_days"' not in page and 'name="handler_caps-0-daily_amount"' not in page
    assert "pulse.noop" in page  # shown, read-only
    assert response.status_code == 403
    acme.refresh_from_db()
    assert (acme.job_retention_days, HandlerCap.objects.get().daily_limit) == (None, 1_000_000)
    assert Event.objects.filter(kind__in=["team.retention"]).count() == 0


def test_a_staff_member_who_may_change_teams_but_not_caps_changes_no_cap(acme):
    budget_policy_update(team=acme, by=None, changes={"handler_caps": {"pulse.noop": {"daily": "1"}}})
    editor = staff_client("editor", "view_team", "change_team")
    url = reverse("admin:teams_team_change", args=[acme.pk])
    data = {**team_form(editor, acme), "job_retention_days": "20",
            "handler_caps-TOTAL_FORMS": "1", "handler_caps-INITIAL_FORMS": "1",
            "handler_caps-0-id": str(HandlerCap.objects.get().pk), "handler_caps-0-handler": "pulse.noop",
            "handler_caps-0-daily_amount": "9"}

    page = editor.get(url).content.decode()
    response = editor.post(url, data)

    assert "handler_caps" not in page
    assert response.status_code == 302
    acme.refresh_from_db()
    assert (acme.job_retention_days, HandlerCap.objects.get().daily_limit) == (20, 1_000_000)
