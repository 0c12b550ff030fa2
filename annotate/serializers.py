"""API representations. They shape data only; every write goes through annotate.services.

Two rules hold here rather than in the views, so no view can forget them:
- Nothing an annotator can receive has a `model` field (which model wrote a response, or which
  response model a judge is): annotator serializers are separate classes without it.
- Names are unique across the module because drf-spectacular names schema components after them.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from . import importers
from .bounds import BIGINT_MAX, INTEGER_MAX, json_problem, name_problem
from .models import (
    Attribute,
    Item,
    Pair,
    Preference,
    Project,
    Rater,
    Rating,
    Response,
    ShownOrder,
)


@extend_schema_field(OpenApiTypes.INT)
class RawIntegerField(serializers.JSONField):
    """An integer the service validates itself (type and scale), so its error names the field."""


def storable_json(value: object) -> None:
    """A JSON value a jsonb column can hold (no NUL in keys or strings, bounded depth)."""
    problem = json_problem(value)
    if problem:
        raise serializers.ValidationError(f"This value {problem}.")


def project_name(value: str) -> None:
    problem = name_problem(value)
    if problem:
        raise serializers.ValidationError(f"A project name {problem}.")


class IdField(serializers.IntegerField):
    """A row id: a positive bigint."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=1, max_value=BIGINT_MAX, **kwargs)


class MillisecondsField(serializers.IntegerField):
    """Time on task, optional: a PositiveIntegerField (32 bits, about 24 days)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=0, max_value=INTEGER_MAX, required=False, allow_null=True, default=None, **kwargs)


# --- Projects ---------------------------------------------------------------------------------


class AttributeSerializer(serializers.ModelSerializer):
    class Meta:
        model = Attribute
        fields = ["id", "name", "description", "min_value", "max_value", "anchors", "position"]


class AttributeInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    min_value = serializers.IntegerField(required=False, default=0, min_value=-100, max_value=100)
    max_value = serializers.IntegerField(required=False, default=4, min_value=-100, max_value=100)
    anchors = serializers.DictField(
        child=serializers.CharField(), required=False, default=dict, validators=[storable_json]
    )


class ProjectSerializer(serializers.ModelSerializer):
    attributes = AttributeSerializer(many=True, read_only=True)

    class Meta:
        model = Project
        fields = [
            "id", "name", "guidelines", "protocols", "ranking_scale", "overlap",
            "justification_required_above", "gold_rate", "attention_rate", "claim_seconds",
            "same_rater_both_protocols", "created_at", "attributes",
        ]


class ProjectUpdateSerializer(serializers.Serializer):
    """The settings a project may change after creation; attributes stay fixed because stored
    ratings were given on their scales."""

    # Not trimmed: a name with a newline is refused, not silently changed.
    name = serializers.CharField(max_length=200, trim_whitespace=False, validators=[project_name])
    guidelines = serializers.CharField(allow_blank=True, required=False)
    protocols = serializers.ChoiceField(choices=Project.Protocols.choices, required=False)
    ranking_scale = serializers.ChoiceField(choices=Project.RankingScale.choices, required=False)
    overlap = serializers.IntegerField(min_value=1, max_value=1000, required=False)
    justification_required_above = serializers.IntegerField(min_value=0, max_value=3, required=False)
    gold_rate = serializers.FloatField(min_value=0, max_value=1, required=False)
    attention_rate = serializers.FloatField(min_value=0, max_value=1, required=False)
    claim_seconds = serializers.IntegerField(min_value=1, max_value=INTEGER_MAX, required=False)
    same_rater_both_protocols = serializers.BooleanField(required=False)


class ProjectCreateSerializer(ProjectUpdateSerializer):
    attributes = AttributeInputSerializer(
        many=True, required=False, help_text="Rating attributes; HelpSteer2's five 0-4 when omitted."
    )


class ProjectImportSerializer(serializers.Serializer):
    project = serializers.CharField(
        max_length=200, trim_whitespace=False, validators=[project_name],
        help_text="Project name; created if it does not exist.",
    )
    format = serializers.ChoiceField(choices=importers.FORMATS)
    files = serializers.ListField(
        child=serializers.FileField(), min_length=1, help_text="The format's files, in its order."
    )


class ImportResultSerializer(serializers.Serializer):
    project = serializers.DictField(help_text='{"id": ..., "name": ...}')
    created_project = serializers.BooleanField()
    created = serializers.DictField(
        child=serializers.IntegerField(), help_text="Rows created, by table (0 for a re-import)."
    )
    in_files = serializers.DictField(child=serializers.IntegerField(), help_text="Rows the files name, by table.")


class ImportErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    file = serializers.CharField(allow_null=True)
    line = serializers.IntegerField(allow_null=True)
    field = serializers.CharField(allow_null=True)


class ServiceErrorSerializer(serializers.Serializer):
    """A rejected write: the message and the field it is about (an attribute name for ratings)."""

    detail = serializers.CharField()
    field = serializers.CharField(allow_null=True)


# --- Items, responses, pairs (researchers and admins only) -------------------------------------


class ResponseSerializer(serializers.ModelSerializer):
    class Meta:
        model = Response
        fields = ["id", "item", "external_id", "text", "model", "gold_ratings", "created_at"]


class ItemResponseSerializer(serializers.ModelSerializer):
    class Meta:
        model = Response
        fields = ["id", "external_id", "text", "model"]


class ItemSerializer(serializers.ModelSerializer):
    responses = ItemResponseSerializer(many=True, read_only=True)
    checklist = serializers.SerializerMethodField(help_text="The item's live checklist questions (TICK), in order.")

    class Meta:
        model = Item
        fields = ["id", "project", "external_id", "prompt", "context", "metadata", "role", "created_at", "responses",
                  "checklist"]

    def get_checklist(self, item: Item) -> list[str]:
        # Read from the prefetched rows (ItemListApi prefetches "checklist"): no query per item.
        return [q.text for q in sorted(item.checklist.all(), key=lambda q: (q.position, q.pk)) if q.retired_at is None]


class ResponseInputSerializer(serializers.Serializer):
    external_id = serializers.CharField(max_length=200)
    text = serializers.CharField()
    model = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class ItemCreateSerializer(serializers.Serializer):
    project = IdField()
    external_id = serializers.CharField(max_length=200)
    prompt = serializers.CharField()
    # DRF's serializer metaclass pops declared fields off the class, so this does not shadow
    # Serializer.context at run time; the stubs cannot see that.
    context = serializers.CharField(required=False, allow_blank=True, default="")  # type: ignore[assignment]
    metadata = serializers.DictField(required=False, default=dict, validators=[storable_json])
    role = serializers.ChoiceField(choices=Item.Role.choices, required=False, default=Item.Role.TASK)
    responses = ResponseInputSerializer(many=True, required=False, default=list)
    pairs = serializers.ListField(
        child=serializers.ListField(child=serializers.CharField(), min_length=2, max_length=2),
        required=False,
        allow_null=True,
        default=None,
        help_text="Pairs as [response external id, response external id]; every two responses when omitted.",
    )
    checklist = serializers.ListField(
        child=serializers.CharField(), required=False, default=list, max_length=50,
        help_text="Yes/no checklist questions (TICK), one line each.",
    )

    def validate(self, attrs: dict) -> dict:
        ids = [r["external_id"] for r in attrs["responses"]]
        if len(ids) != len(set(ids)):
            raise serializers.ValidationError({"responses": "Response external ids must be unique."})
        for a, b in attrs["pairs"] or []:
            if a == b or a not in ids or b not in ids:
                raise serializers.ValidationError(
                    {"pairs": f"Pair [{a}, {b}] must name two different responses of this item."}
                )
        return attrs


class PairSerializer(serializers.ModelSerializer):
    model_a = serializers.CharField(source="response_a.model", read_only=True)
    model_b = serializers.CharField(source="response_b.model", read_only=True)

    class Meta:
        model = Pair
        fields = ["id", "item", "response_a", "response_b", "model_a", "model_b", "gold_strength", "created_at"]


# --- Raters -----------------------------------------------------------------------------------


class RaterSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Rater
        fields = ["id", "kind", "name", "label", "model", "username", "created_at"]


class AnnotatorRaterSerializer(serializers.ModelSerializer):
    """What an annotator sees of a rater (only ever their own): no `model`."""

    class Meta:
        model = Rater
        fields = ["id", "kind", "name", "label"]


# --- Ratings and preferences (no `model`: annotators receive these) ----------------------------


class RatingSerializer(serializers.ModelSerializer):
    rater_label = serializers.CharField(source="rater.label", read_only=True)
    item = serializers.IntegerField(source="response.item_id", read_only=True)
    attribute = serializers.CharField(source="attribute.name", read_only=True)

    class Meta:
        model = Rating
        fields = [
            "id", "rater", "rater_label", "item", "response", "attribute", "value", "probabilities",
            "expected_value", "time_on_task_ms", "created_at", "updated_at",
        ]


class RatingCreateSerializer(serializers.Serializer):
    response = IdField()
    # Values pass through unconverted so the service's check (integer, inside the attribute's
    # scale) is the one that answers, naming the attribute.
    values = serializers.DictField(
        child=RawIntegerField(), allow_empty=False, help_text='{"helpfulness": 3, ...}', validators=[storable_json]
    )
    rater = IdField(required=False, help_text="Only the caller's own rater id (or omit it): another rater's is refused with 403.")
    time_on_task_ms = MillisecondsField()
    probabilities = serializers.DictField(
        child=serializers.DictField(), required=False, allow_null=True, default=None, validators=[storable_json]
    )
    expected_values = serializers.DictField(
        child=serializers.FloatField(), required=False, allow_null=True, default=None, validators=[storable_json]
    )


class PreferenceSerializer(serializers.ModelSerializer):
    rater_label = serializers.CharField(source="rater.label", read_only=True)
    # A plain string: the same choices as Rater.kind under a second name would make
    # drf-spectacular warn about one enum with two names.
    rater_kind = serializers.CharField(read_only=True, help_text="human or judge")
    item = serializers.IntegerField(source="pair.item_id", read_only=True)

    class Meta:
        model = Preference
        fields = [
            "id", "rater", "rater_label", "rater_kind", "item", "pair", "strength", "shown_order",
            "justification", "probabilities", "time_on_task_ms", "created_at", "updated_at",
            "verdict_only",  # strength is then a verdict's sign (-1, 0, 1), not a strength
        ]
        read_only_fields = ["verdict_only"]


class PreferenceCreateSerializer(serializers.Serializer):
    pair = IdField()
    strength = RawIntegerField(help_text="Negative: A (stored order) better; inside the project's scale.")
    shown_order = serializers.ChoiceField(choices=ShownOrder.choices, required=False, default=ShownOrder.AB)
    justification = serializers.CharField(required=False, allow_blank=True, default="")
    rater = IdField(required=False, help_text="Only the caller's own rater id (or omit it): another rater's is refused with 403.")
    time_on_task_ms = MillisecondsField()
    probabilities = serializers.DictField(
        child=serializers.FloatField(), required=False, allow_null=True, default=None, validators=[storable_json]
    )
