"""Django admin for every annotate model.

Imported datasets put 10^5-10^6 rows in Rating, Preference, Pair and Response, so every foreign
key is a raw id (no <select> of a whole table), list pages join what they show in one query, and
the big lists skip the unfiltered COUNT(*) Django would otherwise run on each page.

Annotations are read-only here (ReadOnlyAdmin): they change only through the services, which
check them and record each change in the audit trail. What the admin may still change (projects
and their attributes and members, judges, templates) it records itself (AuditedAdmin). Every
audited object's page links to its trail; the trail itself (Audit events) is read-only.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.db import models
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from .audit import audit_record, audit_snapshot
from .models import (
    Adjudication,
    Assignment,
    Attribute,
    AuditEvent,
    Invite,
    Item,
    Membership,
    Pair,
    Participant,
    Preference,
    Project,
    Rater,
    Rating,
    Response,
    Standing,
    Study,
)


def audit_trail_url(**filters: str | int) -> str:
    return reverse("admin:annotate_auditevent_changelist") + "?" + urlencode(filters)


class AuditTrailLink(admin.ModelAdmin):
    """An "Audit trail" line on the object's page: its events, newest first."""

    @admin.display(description="audit trail")
    def audit_trail(self, obj: models.Model) -> str:
        if obj.pk is None:
            return "-"
        meta = obj._meta
        url = audit_trail_url(object_type=f"{meta.app_label}.{meta.model_name}", object_id=obj.pk)
        return format_html('<a href="{}">Changes to this {}</a>', url, meta.verbose_name)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [*super().get_readonly_fields(request, obj), "audit_trail"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Shown, never added, changed or deleted here: a POST to the change form is refused (403).

    It also guards what cascades to these rows: the admin refuses to delete a project or a judge
    while it has annotations or judgments, as the delete would take them along."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AuditedAdmin(AuditTrailLink):
    """Records what the admin saves or deletes, with the signed-in admin as the actor."""

    def audit_state(self, obj: Any) -> dict[str, Any]:
        return audit_snapshot(obj)

    def _action(self, verb: str) -> str:
        return f"{self.model._meta.model_name}.{verb}"

    def save_model(self, request: HttpRequest, obj: Any, form: ModelForm, change: bool) -> None:
        # The form has already written its values onto obj: the "before" comes from the database.
        stored = type(obj)._default_manager.filter(pk=obj.pk).first() if change else None
        request._audit_before = self.audit_state(stored) if stored is not None else None  # type: ignore[attr-defined]
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: ModelForm, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        # After the inlines, so a project's attributes are in its "after".
        audit_record(
            actor=request.user, action=self._action("update" if change else "create"), obj=form.instance,
            before=getattr(request, "_audit_before", None), after=self.audit_state(form.instance),
        )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        audit_record(actor=request.user, action=self._action("delete"), obj=obj, before=self.audit_state(obj), after=None)
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            audit_record(actor=request.user, action=self._action("delete"), obj=obj, before=self.audit_state(obj), after=None)
        super().delete_queryset(request, queryset)


class AttributeInline(admin.TabularInline):
    model = Attribute
    extra = 0
    fields = ["position", "name", "min_value", "max_value", "description", "anchors"]


class MembershipInline(admin.TabularInline):
    # Members carry a per-project role (annotate.access), so they are edited as rows.
    model = Membership
    extra = 1
    raw_id_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(AuditedAdmin):
    list_display = ["name", "protocols", "ranking_scale", "overlap", "gold_rate", "attention_rate", "created_at"]
    list_filter = ["protocols", "ranking_scale"]
    search_fields = ["name"]
    inlines = [MembershipInline, AttributeInline]

    def audit_state(self, obj: Any) -> dict[str, Any]:
        # The attributes are part of a project's settings; members are recorded on their own
        # (annotate.audit records every change of Project.members).
        return {**audit_snapshot(obj), "attributes": [audit_snapshot(a) for a in obj.attributes.all()]}


@admin.register(Attribute)
class AttributeAdmin(AuditedAdmin):
    list_display = ["name", "project", "min_value", "max_value", "position"]
    list_filter = ["project"]
    search_fields = ["name", "project__name"]
    list_select_related = ["project"]
    raw_id_fields = ["project"]


class ResponseInline(admin.TabularInline):
    model = Response
    extra = 0
    fields = ["external_id", "model", "text", "gold_ratings"]


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["external_id", "project", "role", "short_prompt", "created_at"]
    list_filter = ["role", "project"]
    search_fields = ["=external_id", "prompt"]
    list_select_related = ["project"]
    raw_id_fields = ["project"]
    show_full_result_count = False
    inlines = [ResponseInline]

    @admin.display(description="prompt")
    def short_prompt(self, item: Item) -> str:
        return item.prompt[:80]


@admin.register(Response)
class ResponseAdmin(admin.ModelAdmin):
    list_display = ["external_id", "item", "model", "created_at"]
    list_filter = ["item__project"]
    search_fields = ["=external_id", "=model"]
    list_select_related = ["item"]
    raw_id_fields = ["item"]
    show_full_result_count = False


@admin.register(Pair)
class PairAdmin(admin.ModelAdmin):
    list_display = ["id", "item", "response_a", "response_b", "gold_strength", "created_at"]
    list_filter = ["item__project"]
    search_fields = ["=item__external_id"]
    list_select_related = ["item", "response_a", "response_b"]
    raw_id_fields = ["item", "response_a", "response_b"]
    show_full_result_count = False


@admin.register(Rater)
class RaterAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "user", "model", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name", "model", "user__username"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]


@admin.register(Rating)
class RatingAdmin(ReadOnlyAdmin, AuditTrailLink):
    list_display = ["id", "rater", "response", "attribute", "value", "created_at"]
    list_filter = ["rater__kind", "attribute__name", "response__item__project"]
    search_fields = ["=rater__name"]
    list_select_related = ["rater", "response", "attribute"]
    raw_id_fields = ["rater", "response", "attribute"]
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(Preference)
class PreferenceAdmin(ReadOnlyAdmin, AuditTrailLink):
    list_display = ["id", "rater", "pair", "strength", "shown_order", "created_at"]
    list_filter = ["rater_kind", "shown_order", "pair__item__project"]
    search_fields = ["=rater__name"]
    list_select_related = ["rater", "pair"]
    raw_id_fields = ["rater", "pair"]
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "rater", "protocol", "status", "claimed_at", "expires_at", "completed_at"]
    list_filter = ["status", "protocol", "project"]
    search_fields = ["=rater__name"]
    list_select_related = ["project", "rater"]
    raw_id_fields = ["project", "rater", "response", "pair"]
    show_full_result_count = False


# Invitations, studies and participants are made and changed on the project's pages (members,
# studies), which check the roles and audit every change; the admin only shows them.
@admin.register(Invite)
class InviteAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "role", "email", "created_by", "expires_at", "revoked_at", "uses"]
    list_filter = ["project", "role"]
    exclude = ["key"]  # half of the signed link: not for screens


@admin.register(Study)
class StudyAdmin(ReadOnlyAdmin):
    list_display = ["id", "name", "project", "quota", "created_by", "created_at", "closed_at"]
    list_filter = ["project"]


@admin.register(Participant)
class ParticipantAdmin(ReadOnlyAdmin):
    list_display = ["id", "study", "external_id", "user", "started_at", "completed_at", "returned_at"]
    list_filter = ["study"]
    search_fields = ["=external_id"]
    list_select_related = ["study", "user"]


AUDIT_EVENT_FIELDS = ["at", "actor", "actor_name", "action", "object_type", "object_id", "object_repr", "before", "after"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """The trail, per object (object type and id) and per user (actor); never edited."""

    list_display = ["at", "actor_link", "action", "object_type", "object_id", "object_repr"]
    list_filter = ["action", "object_type", "actor"]
    search_fields = ["=object_id", "=actor_name", "object_repr"]
    list_select_related = ["actor"]
    date_hierarchy = "at"
    show_full_result_count = False
    fields = tuple(AUDIT_EVENT_FIELDS)

    @admin.display(description="actor", ordering="actor_name")
    def actor_link(self, event: AuditEvent) -> str:
        if event.actor_id is None:
            return event.actor_name or "system"
        return format_html('<a href="{}">{}</a>', audit_trail_url(actor__id__exact=event.actor_id), event.actor_name)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return AUDIT_EVENT_FIELDS


class AuditedUserAdmin(UserAdmin, AuditTrailLink):
    """Django's user admin, plus a link to everything the user changed."""

    fieldsets = [*(UserAdmin.fieldsets or []), ("Audit", {"fields": ["audit_trail"]})]

    @admin.display(description="audit trail")
    def audit_trail(self, obj: models.Model) -> str:
        if obj.pk is None:
            return "-"
        return format_html('<a href="{}">Changes made by this user</a>', audit_trail_url(actor__id__exact=obj.pk))


admin.site.unregister(User)
admin.site.register(User, AuditedUserAdmin)


@admin.register(Standing)
class StandingAdmin(ReadOnlyAdmin):
    """Annotators' onboarding and check states; decided on the project dashboard (audited there)."""

    list_display = ["rater", "project", "state", "changed_at", "decided_by"]
    list_filter = ["state", "project"]
    raw_id_fields = ["rater", "decided_by"]


@admin.register(Adjudication)
class AdjudicationAdmin(ReadOnlyAdmin):
    """Reviewers' final verdicts; made on the review page, never edited (a new decision is a new row)."""

    list_display = ["pair", "strength", "reviewer", "created_at"]
    raw_id_fields = ["pair", "reviewer"]
