"""The export form of the export page; it only parses input into ExportOptions."""

from __future__ import annotations

from django import forms

from annotate.models import GOLD_SOURCE_CHOICES

from .formats import DPO_SOURCES
from .selectors import RATER_GROUPS, ExportFilters, parse_splits
from .services import FORMATS, ExportOptions

JUDGE_HELP = "Only this judge; needed for DPO from a judge."


class ExportForm(forms.Form):
    format = forms.ChoiceField(choices=[(f, f) for f in FORMATS], initial="helpsteer2-preference")
    raters = forms.ChoiceField(choices=[(g, g) for g in RATER_GROUPS], initial="humans", label="Rater group")
    # A choice of the project's judges (set in __init__): a typed name that matches none would
    # silently export nothing.
    judge = forms.ChoiceField(choices=[("", "any")], required=False, help_text=JUDGE_HELP)
    dpo_source = forms.ChoiceField(choices=[(s, s) for s in DPO_SOURCES], initial="human", label="DPO source")
    min_agreement = forms.FloatField(min_value=0, max_value=1, initial=0, label="Minimum agreement")
    exclude_gold = forms.BooleanField(required=False, label="Exclude gold items")
    exclude_attention = forms.BooleanField(required=False, label="Exclude attention items")
    gold = forms.ChoiceField(
        choices=GOLD_SOURCE_CHOICES, initial="majority", required=False,
        help_text="Gold for DPO from humans: the majority, or a reviewer's final verdict where there is one.",
    )
    splits = forms.CharField(initial="train=1", help_text="e.g. train=0.9,validation=0.1 (assigned by item)")
    seed = forms.IntegerField(initial=0)
    licence = forms.CharField(initial="other", help_text="Licence field of the dataset card.")

    def __init__(self, *args: object, judges: list[str] | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        field = self.fields["judge"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", "any")] + [(j, j) for j in judges or []]
        if not judges:
            field.help_text = "No judge has annotated this project yet."

    def clean_splits(self) -> tuple[tuple[str, float], ...]:
        try:
            return parse_splits(self.cleaned_data["splits"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def options(self) -> ExportOptions:
        data = self.cleaned_data
        filters = ExportFilters(
            rater_group=data["raters"], judge=data.get("judge") or None,
            min_agreement=data["min_agreement"] or 0.0, exclude_gold=data["exclude_gold"],
            exclude_attention=data["exclude_attention"], splits=data["splits"], seed=data["seed"] or 0,
            gold=data.get("gold") or "majority",
        )
        return ExportOptions(format=data["format"], filters=filters, dpo_source=data["dpo_source"],
                             licence=data["licence"] or "other")
