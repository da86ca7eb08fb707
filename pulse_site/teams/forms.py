"""Forms for the team page: they parse input; every rule about teams lives in services."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django import forms

from pulse_site.errors import PulseError
from pulse_site.teams.models import RETENTION_KINDS, RETENTION_MAX_DAYS, ApiToken, Membership, Team, retention_default
from pulse_site.zones import zone_names


class TeamSwitchForm(forms.Form):
    team = forms.CharField(max_length=29)


class PasswordChangeForm(forms.Form):
    old_password = forms.CharField(label="Current password", strip=False,
                                   widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))
    new_password = forms.CharField(label="New password", strip=False,
                                   widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    new_password_again = forms.CharField(label="New password, again", strip=False,
                                         widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def clean(self) -> dict[str, object]:
        cleaned = super().clean() or {}
        if cleaned.get("new_password") != cleaned.get("new_password_again"):
            self.add_error("new_password_again", "The two new passwords differ.")
        return cleaned


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)


class TokenCreateForm(forms.Form):
    name = forms.CharField(max_length=100)
    access = forms.ChoiceField(
        choices=ApiToken.Access.choices, initial=ApiToken.Access.READ, widget=forms.RadioSelect
    )
    expires_on = forms.DateField(
        required=False,
        label="Expires on",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Optional. The token stops working at 00:00 on this day, in the team's time zone.",
    )

    def expires_at(self, team: Team) -> dt.datetime | None:
        day = self.cleaned_data.get("expires_on")
        if day is None:
            return None
        return dt.datetime.combine(day, dt.time.min, tzinfo=zoneinfo.ZoneInfo(team.time_zone))


class TeamSettingsForm(forms.Form):
    """The team's name and time zone."""

    name = forms.CharField(label="Name", max_length=100)
    time_zone = forms.ChoiceField(label="Time zone", help_text="New schedules start in it, and the budget's "
                                  "windows follow it unless the budget sets a zone of its own.")

    def __init__(self, *args: object, team: Team | None = None, **kwargs: object) -> None:
        if team is not None and not args and "initial" not in kwargs:
            kwargs["initial"] = {"name": team.name, "time_zone": team.time_zone}
        kwargs.setdefault("auto_id", "id_team_%s")  # the token form on the same page has its own `name`
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["time_zone"].choices = [(z, z) for z in sorted(zone_names())]  # type: ignore[attr-defined]


class RetentionForm(forms.Form):
    """The team's retention ages; an empty field means the deployment's default (its placeholder)."""

    job_retention_days = forms.IntegerField(label="Finished jobs", required=False, min_value=1,
                                            max_value=RETENTION_MAX_DAYS,
                                            help_text="With their attempts and logs.")
    execution_retention_days = forms.IntegerField(label="Schedule executions", required=False, min_value=1,
                                                  max_value=RETENTION_MAX_DAYS)
    event_retention_days = forms.IntegerField(label="Live events", required=False, min_value=1,
                                              max_value=RETENTION_MAX_DAYS,
                                              help_text="The activity history clients replay from.")

    def __init__(self, *args: object, team: Team | None = None, **kwargs: object) -> None:
        if team is not None and not args and "initial" not in kwargs:
            kwargs["initial"] = {f"{kind}_retention_days": getattr(team, f"{kind}_retention_days")
                                 for kind in RETENTION_KINDS}
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        for kind in RETENTION_KINDS:
            field = self.fields[f"{kind}_retention_days"]
            field.widget.attrs.update({"placeholder": f"default {retention_default(kind)}", "inputmode": "numeric"})


# Service errors name the API's fields; the form's fields are named for people.
_FORM_FIELD = {"expires_at": "expires_on", "run_after": "start_at"}


def add_service_error(form: forms.Form, error: PulseError) -> bool:
    """Attach `error` to the form fields it names; False when it names none of them."""
    attached = False
    for field, reasons in error.fields.items():
        name = _FORM_FIELD.get(field, field)
        if name in form.fields:
            for reason in reasons:
                form.add_error(name, reason)
            attached = True
    return attached
