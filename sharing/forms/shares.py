"""Forms for share links: creating one, extending it, and the recipient's check."""

from __future__ import annotations

import datetime
from typing import Any

from django import forms
from django.db.models import QuerySet
from django.utils import timezone

from sharing.models import Share, Study

EXPIRY_CHOICES = [
    ("1h", "1 hour"),
    ("24h", "24 hours"),
    ("7d", "7 days"),
    ("30d", "30 days"),
    ("90d", "90 days"),
    ("date", "Until a date…"),
]
_EXPIRY_DELTAS = {
    "1h": datetime.timedelta(hours=1),
    "24h": datetime.timedelta(hours=24),
    "7d": datetime.timedelta(days=7),
    "30d": datetime.timedelta(days=30),
    "90d": datetime.timedelta(days=90),
}
MAX_DAYS = 90


class StudyChoiceField(forms.ModelMultipleChoiceField[Study]):
    def label_from_instance(self, obj: Any) -> str:
        assert isinstance(obj, Study)
        date = obj.study_date.strftime("%d %b %Y") if obj.study_date else "Date unknown"
        return (
            f"{obj.description or 'Imaging study'} · {date} · {obj.modalities.replace(chr(92), ', ') or '—'}"
        )


def _end_of_day(day: datetime.date) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time(23, 59)))


def expiry_from(choice: str, day: datetime.date | None, *, now: datetime.datetime) -> datetime.datetime:
    if choice in _EXPIRY_DELTAS:
        return now + _EXPIRY_DELTAS[choice]
    assert day is not None
    return min(_end_of_day(day), now + datetime.timedelta(days=MAX_DAYS))


class _ExpiryForm(forms.Form):
    """An expiry chosen from the list, or a date up to 90 days away."""

    def clean_expiry_date(self) -> datetime.date | None:
        day: datetime.date | None = self.cleaned_data.get("expiry_date")
        if self.data.get("expiry") != "date":
            return None
        today = timezone.localdate()
        if day is None:
            raise forms.ValidationError("Choose the last day the link works.")
        if day < today:
            raise forms.ValidationError("That date has passed.")
        if day > today + datetime.timedelta(days=MAX_DAYS):
            raise forms.ValidationError("A share lasts at most 90 days.")
        return day

    def expires_at(self, *, now: datetime.datetime) -> datetime.datetime:
        return expiry_from(self.cleaned_data["expiry"], self.cleaned_data.get("expiry_date"), now=now)


class ShareCreateForm(_ExpiryForm):
    studies = StudyChoiceField(
        queryset=Study.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        label="Studies to share",
        error_messages={"required": "Choose at least one study."},
    )
    expiry = forms.ChoiceField(
        choices=EXPIRY_CHOICES, initial="7d", widget=forms.RadioSelect, label="The link works for"
    )
    expiry_date = forms.DateField(
        required=False,
        label="Until (at most 90 days from today)",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    protection = forms.ChoiceField(
        choices=[
            (Share.Protection.CODE.value, "An access code (recommended): you send it separately"),
            (Share.Protection.BIRTH_DATE.value, "The recipient types my date of birth"),
            (Share.Protection.NONE.value, "No check: anyone with the link can see the images"),
        ],
        initial=Share.Protection.CODE.value,
        widget=forms.RadioSelect,
        label="Protect the link with",
    )
    allow_download = forms.BooleanField(
        required=False,
        label="Let the recipient download the images",
        help_text="Otherwise they can look at the images in their browser but not save the files.",
    )
    recipient_name = forms.CharField(required=False, max_length=200, label="Recipient's name")
    recipient_email = forms.EmailField(
        required=False,
        label="Recipient's email",
        help_text="Lightbox emails the link. The access code is never in that email.",
    )
    max_opens = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=1000,
        label="Maximum number of opens",
        help_text="Leave empty for no limit.",
    )
    message = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Message to the recipient",
    )
    notify_on_open = forms.BooleanField(
        required=False, initial=True, label="Email me when the link is first opened"
    )

    def __init__(self, *args: Any, studies: QuerySet[Study], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["studies"]
        assert isinstance(field, forms.ModelMultipleChoiceField)
        field.queryset = studies


class ShareExtendForm(_ExpiryForm):
    expiry = forms.ChoiceField(choices=EXPIRY_CHOICES, initial="7d", label="Make it work for")
    expiry_date = forms.DateField(
        required=False, label="Until", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )


class ShareCheckForm(forms.Form):
    """What the recipient types: the access code, or the patient's date of birth."""

    answer = forms.CharField(max_length=64, strip=True)

    def __init__(self, *args: Any, protection: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["answer"]
        if protection == Share.Protection.BIRTH_DATE:
            field.label = "The patient's date of birth"
            field.widget = forms.DateInput(attrs={"type": "date", "autocomplete": "off"})
        else:
            field.label = "Access code"
            field.widget = forms.TextInput(
                attrs={"autocomplete": "off", "autocapitalize": "characters", "spellcheck": "false"}
            )
            field.help_text = "The patient gave it to you separately from the link, like ABCDE-23456."
