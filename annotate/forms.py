"""Parsing of the annotator pages' posts. Only types and shapes here; rules live in annotate.queue."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from django import forms

from .errors import ValidationError
from .models import Attribute
from .queue import SKIP_REASONS


class TaskViewForm(forms.Form):
    """What every post about a task view carries."""

    view_key = forms.UUIDField()
    time_on_task_ms = forms.IntegerField(required=False, min_value=0)


class RankingForm(TaskViewForm):
    shown_strength = forms.IntegerField(
        min_value=-3, max_value=3, error_messages={"required": "Please choose which response is better."}
    )
    justification = forms.CharField(required=False, max_length=5000, strip=True)


class SkipForm(forms.Form):
    view_key = forms.UUIDField()
    reason = forms.ChoiceField(choices=list(SKIP_REASONS.items()))
    detail = forms.CharField(required=False, max_length=1000, strip=True)

    def reason_text(self) -> str:
        reason = SKIP_REASONS[self.cleaned_data["reason"]]
        detail = self.cleaned_data.get("detail", "")
        return f"{reason}: {detail}" if detail else reason


def rating_values(data: Mapping[str, str], attributes: Iterable[Attribute]) -> dict[str, int]:
    """The attribute values present in a post, as integers; missing ones are left out."""
    values: dict[str, int] = {}
    for attribute in attributes:
        raw = data.get(f"attr-{attribute.name}", "")
        if raw == "":
            continue
        try:
            values[attribute.name] = int(raw)
        except ValueError as exc:
            raise ValidationError(f"{attribute.name}: {raw!r} is not a number.", field=attribute.name) from exc
    return values


def first_error(form: forms.Form) -> ValidationError:
    field, messages = next(iter(form.errors.items()))
    return ValidationError(str(messages[0]), field=None if field == "__all__" else field)
