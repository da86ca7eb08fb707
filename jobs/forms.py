"""Dashboard forms for jobs: list filters, bulk actions, and the submit form (its payload's inputs are
jobs.payload_form's, shared with the schedule form)."""

from __future__ import annotations

import re
import shlex
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.core.validators import RegexValidator
from django.utils import timezone

from jobs.bulk import BULK_MAX
from jobs.error_codes import ErrorCode
from jobs.handlers.registry import Handler, registered_handlers
from jobs.models import Job
from jobs.payload_form import PayloadForm
from jobs.selectors import JobFilter
from pulse_site.errors import choose_one_of

SEARCH_HELP = ("A job id, or words that filter: a status (failed, held…), a handler name, an error code "
               "(network_error…), key=value for a payload field (user=42 matches 42 or \"42\").")
# A payload key is a plain identifier: never a nested path or another ORM lookup ("a__contains").
# Job.handler's length: a longer name is no handler's, deployed or not.
HANDLER_NAME_MAX = 100
PAYLOAD_KEY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
STATUS_WORDS = {**{v: v for v in Job.Status.values}, **{str(label).lower(): v for v, label in Job.Status.choices}}


@dataclass(frozen=True)
class Search:
    """What the search box said: each word is a status, a handler or a payload key=value."""

    status: str = ""
    handler: str = ""
    error_code: str = ""
    payload: tuple[tuple[str, str], ...] = ()
    errors: tuple[str, ...] = ()


def job_filter(data: Mapping[str, Any], search: Search | None) -> JobFilter:
    """The jobs list's filter (the dashboard's form, the API's query) from its fields and its search
    words (None: none): a field set wins over the same one typed in the search."""
    search = search or Search()
    return JobFilter(
        status=data.get("status") or search.status,
        handler=data.get("handler") or search.handler,
        source=data.get("source") or "",
        error_code=data.get("error_code") or search.error_code,
        payload=search.payload,
        created_after=data.get("created_after"),
        created_before=data.get("created_before"),
        origin=data.get("schedule") or "",
    )


def parse_search(text: str) -> Search:
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    handlers = {h.name for h in registered_handlers(internal=True)}  # deliveries are the team's jobs too
    status = handler = error_code = ""
    payload: list[tuple[str, str]] = []
    errors: list[str] = []
    for word in words:
        key, sep, value = word.partition("=")
        if sep:
            if PAYLOAD_KEY_RE.match(key) and "__" not in key:
                payload.append((key, value))
            else:
                errors.append(f"“{key}” is not a payload key (letters, digits, _ and -).")
        elif word.lower() in STATUS_WORDS:
            status = STATUS_WORDS[word.lower()]
        elif word in handlers:
            handler = word
        elif word.lower() in ErrorCode.values:
            error_code = word.lower()
        else:
            errors.append(f"“{word}” is not a status, a handler, an error code or key=value.")
    return Search(status=status, handler=handler, error_code=error_code, payload=tuple(payload), errors=tuple(errors))


def _blank(choices: list[tuple[str, str]], label: str = "Any") -> list[tuple[str, str]]:
    return [("", label), *choices]


class JobFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=_blank(Job.Status.choices))
    handler = forms.ChoiceField(required=False)
    source = forms.ChoiceField(required=False, choices=_blank(Job.Source.choices))
    error_code = forms.ChoiceField(required=False, label="Error", choices=_blank(ErrorCode.choices))
    period = forms.ChoiceField(required=False, label="Created", choices=[
        ("", "Any time"), ("1h", "Last hour"), ("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("30d", "Last 30 days")])
    created_after = forms.DateTimeField(required=False, label="From (UTC)",
                                        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    created_before = forms.DateTimeField(required=False, label="To (UTC)",
                                         widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    schedule = forms.CharField(required=False, max_length=29, label="Schedule id", strip=True,
                               validators=[RegexValidator(r"^SP_[0-9A-Z]{26}$", "A schedule id (SP_…).")])
    q = forms.CharField(required=False, max_length=200, label="Search", strip=True,
                        help_text=SEARCH_HELP, widget=forms.TextInput(attrs={"placeholder": "JB_… or failed resize user=42"}))

    PERIODS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        # Bounds the wrong way round match nothing: an empty list would read as no jobs then (the
        # API refuses them too).
        after, before = cleaned.get("created_after"), cleaned.get("created_before")
        if after is not None and before is not None and before <= after:
            self.add_error("created_before", "Later than From.")
        return cleaned

    def created_range(self) -> tuple[datetime | None, datetime | None]:
        """The time filter: an explicit From wins over a period."""
        data = self.cleaned_data if self.is_valid() else {}
        after = data.get("created_after")
        if after is None and data.get("period") in self.PERIODS:
            after = timezone.now() - self.PERIODS[data["period"]]
        return after, data.get("created_before")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = [h.name for h in registered_handlers(internal=True)]
        choices = [(name, name) for name in names]
        given = self.data.get("handler", "") if self.is_bound else ""
        if isinstance(given, str) and given and given not in names and len(given) <= HANDLER_NAME_MAX:
            # A handler no longer deployed (or renamed) still has its jobs in the history.
            choices.append((given, f"{given} (not deployed)"))
        self.fields["handler"].choices = _blank(choices)  # type: ignore[attr-defined]
        for name in ("status", "source", "error_code"):
            field = self.fields[name]
            values = [value for value, _ in field.choices if value]  # type: ignore[attr-defined]
            field.error_messages["invalid_choice"] = f"No such value “%(value)s”. {choose_one_of(values)}"


BULK_ACTIONS = [("cancel", "Cancel"), ("retry", "Retry"), ("delete", "Delete finished")]


class BulkForm(forms.Form):
    action = forms.ChoiceField(choices=BULK_ACTIONS)

    def __init__(self, data: Any) -> None:
        super().__init__(data)
        self.ids: list[str] = [i for i in dict.fromkeys(data.getlist("ids")) if i][:BULK_MAX]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not self.ids:
            raise forms.ValidationError("Select at least one job.")
        return cleaned


class BulkMatchingForm(forms.Form):
    """One batch of an action on every job matching the list's filter; `cursor` is where the last
    batch stopped, as it answered it (the batches walk the matching jobs newest first)."""

    action = forms.ChoiceField(choices=BULK_ACTIONS)
    cursor = forms.CharField(required=False)  # its length too is cursor_open's to refuse, by name
    confirm = forms.BooleanField(required=True, error_messages={"required": "Confirm the action on all matching jobs."})


class SubmitForm(PayloadForm):
    """The new-job form: the handler's payload (PayloadForm, defaults filled in), a priority and a
    start time; a submit's `run_after` error lands on the start."""

    aliases = {"run_after": "start_at"}

    priority = forms.IntegerField(initial=0, min_value=-100, max_value=100,
                                  help_text="From -100 to 100; higher runs first.")
    start_at = forms.DateTimeField(required=False, label="Start at",
                                   widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                   help_text="Empty: at once. A time in the team's zone.")

    def __init__(self, handler: Handler, *args: Any, time_zone: str = "UTC", **kwargs: Any) -> None:
        super().__init__(handler, *args, **kwargs)
        self.zone = zoneinfo.ZoneInfo(time_zone)
        self.fields["start_at"].label = f"Start at ({time_zone})"

    def start_from(self, job: Job) -> list[str]:
        """Fill the unbound form with an earlier job's payload and priority ("Run again"). Returns
        the payload keys the form has no field for, which are left out (the handler's schema
        changed since, or the job came from the API with keys the form does not show)."""
        self.initial["priority"] = job.priority
        return self.fill_payload(job.payload)

    def submission(self) -> dict[str, Any]:
        """What the form asks job_submit (and its preview) for: the payload, priority and start."""
        return {"payload": self.payload(), "priority": self.cleaned_data["priority"], "run_after": self.run_after()}

    def run_after(self) -> datetime | None:
        """The start asked for, read in the team's zone (the browser sends a wall-clock time)."""
        value = self.cleaned_data.get("start_at")
        return None if value is None else value.replace(tzinfo=None).replace(tzinfo=self.zone)
