"""Judges and templates are changed here as on their pages, and recorded in the audit trail;
judgments are the record of what a judge answered, so they are read-only (a POST to the change
form is refused), like the ratings and preferences they produced."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from annotate.admin import AuditedAdmin, ReadOnlyAdmin
from annotate.errors import ValidationError

from .models import Judge, Judgment, PromptTemplate, Run
from .services import decoding_validate


class JudgeAdminForm(forms.ModelForm):
    class Meta:
        model = Judge
        exclude: list[str] = []  # the admin lists the fields

    def clean_decoding(self) -> dict:
        # The same check as the API's, so a typo here fails now, not in a worker mid-run.
        try:
            return decoding_validate(self.cleaned_data.get("decoding"))
        except ValidationError as exc:
            raise forms.ValidationError(str(exc)) from exc


@admin.register(PromptTemplate)
class PromptTemplateAdmin(AuditedAdmin):
    list_display = ["name", "version", "protocol", "created_at"]
    list_filter = ["protocol"]

    def has_change_permission(self, request, obj=None) -> bool:
        # A version is what judgments point at: editing one in place would rewrite history.
        # New versions come from the judge page or POST /api/judges/ID/templates/.
        return obj is None and super().has_change_permission(request, obj)


@admin.register(Judge)
class JudgeAdmin(AuditedAdmin):
    form = JudgeAdminForm
    list_display = ["__str__", "backend", "model_ref", "gguf_file", "dtype", "device", "rationale"]
    list_select_related = ["rater"]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["id", "judge", "project", "kind", "status", "total", "created_at"]
    list_filter = ["status", "kind"]
    list_select_related = ["judge__rater", "project"]


@admin.register(Judgment)
class JudgmentAdmin(ReadOnlyAdmin):
    list_display = ["id", "run", "protocol", "status", "verdict", "latency_ms", "completed_at"]
    list_filter = ["status", "protocol"]
    raw_id_fields = ["run", "item", "response", "attribute", "pair", "rating", "preference", "generated"]
