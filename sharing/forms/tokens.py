"""The form a staff member fills to create a personal API token."""

from __future__ import annotations

import datetime

from django import forms
from django.utils import timezone

from sharing.models import ApiToken
from sharing.services.tokens import DEFAULT_LIFETIME, MAX_LIFETIME

EXPIRY_CHOICES = [
    ("30d", "30 days"),
    ("90d", "90 days"),
    ("365d", "A year"),
    ("date", "Until a date…"),
]
_EXPIRY_DAYS = {"30d": 30, "90d": DEFAULT_LIFETIME.days, "365d": MAX_LIFETIME.days}


class ApiTokenCreateForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        label="Name",
        help_text="What will use it, e.g. “nightly import from the PACS gateway”.",
        error_messages={"required": "Name the token after the script or machine that will use it."},
    )
    scopes = forms.MultipleChoiceField(
        choices=ApiToken.Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        label="It may",
        error_messages={"required": "Choose at least one scope."},
    )
    expiry = forms.ChoiceField(
        choices=EXPIRY_CHOICES, initial="90d", widget=forms.RadioSelect, label="It works for"
    )
    expiry_date = forms.DateField(
        required=False,
        label="Until (at most a year from today)",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )

    def clean_expiry_date(self) -> datetime.date | None:
        day: datetime.date | None = self.cleaned_data.get("expiry_date")
        if self.data.get("expiry") != "date":
            return None
        today = timezone.localdate()
        if day is None:
            raise forms.ValidationError("Choose the last day the token works.")
        if day <= today:
            raise forms.ValidationError("Choose a day after today.")
        if day > today + MAX_LIFETIME:
            raise forms.ValidationError("A token lasts at most a year.")
        return day

    def scope_values(self) -> list[ApiToken.Scope]:
        return [ApiToken.Scope(value) for value in self.cleaned_data["scopes"]]

    def expires_at(self, *, now: datetime.datetime) -> datetime.datetime:
        choice = self.cleaned_data["expiry"]
        if choice in _EXPIRY_DAYS:
            return now + datetime.timedelta(days=_EXPIRY_DAYS[choice])
        day: datetime.date = self.cleaned_data["expiry_date"]
        end_of_day = timezone.make_aware(datetime.datetime.combine(day, datetime.time(23, 59)))
        return min(end_of_day, now + MAX_LIFETIME)
