"""Django admin for every annotate model.

Imported datasets put 10^5-10^6 rows in Rating, Preference, Pair and Response, so every foreign
key is a raw id (no <select> of a whole table), list pages join what they show in one query, and
the big lists skip the unfiltered COUNT(*) Django would otherwise run on each page.
"""

from __future__ import annotations

from django.contrib import admin

from .models import (
    Assignment,
    Attribute,
    Item,
    Membership,
    Pair,
    Preference,
    Project,
    Rater,
    Rating,
    Response,
)


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
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "protocols", "ranking_scale", "overlap", "gold_rate", "attention_rate", "created_at"]
    list_filter = ["protocols", "ranking_scale"]
    search_fields = ["name"]
    inlines = [MembershipInline, AttributeInline]


@admin.register(Attribute)
class AttributeAdmin(admin.ModelAdmin):
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
class RatingAdmin(admin.ModelAdmin):
    list_display = ["id", "rater", "response", "attribute", "value", "created_at"]
    list_filter = ["rater__kind", "attribute__name", "response__item__project"]
    search_fields = ["=rater__name"]
    list_select_related = ["rater", "response", "attribute"]
    raw_id_fields = ["rater", "response", "attribute"]
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(Preference)
class PreferenceAdmin(admin.ModelAdmin):
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
