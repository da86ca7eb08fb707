"""The overview app's forms: the activity history's filter."""

from __future__ import annotations

from typing import Any

from django import forms

from pulse_site.activity import FAMILIES
from pulse_site.errors import choose_one_of
from pulse_site.live.selectors import Audience


class ActivityFilterForm(forms.Form):
    family = forms.ChoiceField(required=False, choices=[("", "Everything"), *FAMILIES.items()],
                               error_messages={"invalid_choice": choose_one_of(list(FAMILIES))})
    subject = forms.CharField(required=False, max_length=64, widget=forms.TextInput(attrs={
        "placeholder": "JB_… or SP_… id", "autocomplete": "off", "spellcheck": "false", "size": 30}))
    all = forms.BooleanField(required=False)
    cursor = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1, widget=forms.HiddenInput, error_messages={
        "invalid": "An event id (a whole number).", "min_value": "An event id (a whole number).",
        "max_value": "An event id (a whole number)."})

    def __init__(self, data: Any, *, audience: Audience) -> None:
        super().__init__(data)
        # Only the families this reader sees events of (members and viewers see no token events).
        families = {key: label for key, label in FAMILIES.items() if audience.sees(f"{key}.")}
        field = self.fields["family"]
        field.choices = [("", "Everything"), *families.items()]  # type: ignore[attr-defined]
        field.error_messages["invalid_choice"] = choose_one_of(list(families))
