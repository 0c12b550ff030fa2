from __future__ import annotations

from django import forms

from .models import Judge, Run


class RunStartForm(forms.Form):
    judge = forms.ModelChoiceField(queryset=Judge.objects.select_related("rater"))
    kind = forms.ChoiceField(choices=Run.Kind.choices, initial=Run.Kind.JUDGE)
    protocols = forms.MultipleChoiceField(
        choices=[("rating", "Rating"), ("ranking", "Ranking")], initial=["rating", "ranking"],
        widget=forms.CheckboxSelectMultiple, required=False,
    )
    limit = forms.IntegerField(min_value=1, required=False, help_text="At most this many items.")
