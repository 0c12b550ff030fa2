from __future__ import annotations

import json

from django import forms
from django.contrib.auth.models import AnonymousUser, User

from annotate import access
from annotate.models import Item, Project, Response

from .models import Judge, Run


class RunStartForm(forms.Form):
    # Narrowed in __init__ to the judges the user may run on the project (annotate.access).
    judge = forms.ModelChoiceField(queryset=Judge.objects.none())
    kind = forms.ChoiceField(choices=Run.Kind.choices, initial=Run.Kind.JUDGE)
    protocols = forms.MultipleChoiceField(
        choices=[("rating", "Rating"), ("ranking", "Ranking"), ("checklist", "Checklist questions")],
        initial=["rating", "ranking"],
        widget=forms.CheckboxSelectMultiple, required=False,
    )
    limit = forms.IntegerField(min_value=1, required=False, help_text="At most this many items.")
    roles = forms.MultipleChoiceField(
        choices=Item.Role.choices, widget=forms.CheckboxSelectMultiple, required=False, label="Item roles",
        help_text="None ticked: every item.",
    )
    models = forms.MultipleChoiceField(
        choices=[], widget=forms.CheckboxSelectMultiple, required=False, label="Responses by",
        help_text="Ratings of these models' responses, and pairs holding at least one (self-preference). "
                  "None ticked: all.",
    )
    items = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), required=False, label="Only items",
        help_text="External ids, separated by commas or new lines. Empty: all.",
    )
    unjudged_only = forms.BooleanField(required=False, label="Only what this judge has not annotated yet")

    def __init__(
        self, *args, project: Project | None = None, user: User | AnonymousUser | None = None, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        if project is not None and user is not None:
            judge_field = self.fields["judge"]
            assert isinstance(judge_field, forms.ModelChoiceField)
            judge_field.queryset = access.judges_usable(user, project)
        if project is not None:
            names = (
                Response.objects.filter(item__project=project).exclude(model="")
                .values_list("model", flat=True).distinct().order_by("model")
            )
            models_field = self.fields["models"]
            assert isinstance(models_field, forms.MultipleChoiceField)
            models_field.choices = [(m, m) for m in names]

    SCOPE_FIELDS = ("roles", "models", "items", "unjudged_only")

    def main_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name not in self.SCOPE_FIELDS]

    def scope_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.SCOPE_FIELDS]

    def filters(self) -> dict:
        data = self.cleaned_data
        items = [i.strip() for i in data.get("items", "").replace(",", "\n").splitlines() if i.strip()]
        return {"roles": data.get("roles") or [], "models": data.get("models") or [], "items": items,
                "unjudged_only": bool(data.get("unjudged_only"))}


class JudgeForm(forms.Form):
    """A judge's settings; `name` only when creating (a judge's name is its rater's, fixed)."""

    name = forms.CharField(max_length=200, help_text="Shown in reports as the rater's name.")
    response_model = forms.CharField(
        max_length=200, required=False,
        help_text="The response model this judge is (for self-preference), e.g. SmolLM2-135M-Instruct.",
    )
    backend = forms.ChoiceField(choices=Judge.Backend.choices)
    model_ref = forms.CharField(max_length=500, label="Model",
                                help_text="Local directory, cached hub id, or the model name on the server.")
    gguf_file = forms.CharField(max_length=300, required=False, label="GGUF file",
                                help_text="A .gguf file inside the model directory.")
    revision = forms.CharField(max_length=100, required=False)
    dtype = forms.ChoiceField(choices=Judge.Dtype.choices, initial=Judge.Dtype.AUTO)
    device = forms.CharField(max_length=20, initial="auto", help_text="auto: cuda if present.")
    base_url = forms.CharField(max_length=500, required=False, label="Server URL",
                               help_text="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    api_key_env = forms.CharField(max_length=100, required=False, label="API key variable",
                                  help_text="Name of the environment variable holding the key, never the key.")
    rationale = forms.BooleanField(required=False, help_text="Write a rationale before the verdict.")
    decoding = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}), required=False, initial="{}",
        help_text='JSON, e.g. {"temperature": 0, "max_batch_size": 64, "min_valid_mass": null}',
    )

    shared_with = forms.ModelMultipleChoiceField(
        queryset=Project.objects.none(), required=False, widget=forms.CheckboxSelectMultiple,
        label="Shared with projects", help_text="Researchers of these projects may use it (not change it).",
    )
    shared_with_owner_projects = forms.BooleanField(
        required=False, initial=True, label="Shared with all my projects",
        help_text="Usable in every project you research, not only those ticked.",
    )
    SHARING_FIELDS = ("shared_with", "shared_with_owner_projects")

    def __init__(self, *args, editing: bool = False, user: User | AnonymousUser | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if editing:
            del self.fields["name"]
        shared = self.fields["shared_with"]
        assert isinstance(shared, forms.ModelMultipleChoiceField)
        if user is not None:
            shared.queryset = access.projects_visible(user, need="research")

    def settings_data(self) -> dict:
        """The judge's own fields, for judge_create / judge_update (sharing is set apart)."""
        return {k: v for k, v in self.cleaned_data.items() if k not in self.SHARING_FIELDS}

    def clean_decoding(self) -> dict:
        text = (self.cleaned_data.get("decoding") or "").strip() or "{}"
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.") from exc
        if not isinstance(value, dict):
            raise forms.ValidationError("decoding must be a JSON object.")
        return value


class TemplateForm(forms.Form):
    protocol = forms.ChoiceField(choices=[("rating", "Rating"), ("ranking", "Ranking")], widget=forms.HiddenInput)
    system = forms.CharField(widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}), required=False,
                             strip=False)
    user = forms.CharField(widget=forms.Textarea(attrs={"rows": 9, "spellcheck": "false"}), strip=False)


class ProbeStartForm(forms.Form):
    """Start a probe of a judge on a project (judges.probes), from the bias page."""

    judge = forms.ModelChoiceField(queryset=Judge.objects.none())
    probe = forms.ChoiceField(choices=[c for c in Run.Probe.choices if c[0]], initial=Run.Probe.INJECTION)
    limit = forms.IntegerField(min_value=1, required=False, initial=20, label="Sample",
                               help_text="At most this many items (their pairs, both shown orders). Empty: all.")

    def __init__(self, *args, project: Project, user: User | AnonymousUser, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        judge_field = self.fields["judge"]
        assert isinstance(judge_field, forms.ModelChoiceField)
        judge_field.queryset = access.judges_usable(user, project)
