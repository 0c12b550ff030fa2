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
from .conversation import conversation_problem, last_user_turn
from .models import (
    GOLD_SOURCE_CHOICES,
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
            "same_rater_both_protocols", "training_size", "qualification_bar", "gold_window",
            "review_agreement_below", "gold_source", "created_at", "attributes",
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
    # Onboarding and the continuous check (annotate.training); adjudication (annotate.adjudication).
    training_size = serializers.IntegerField(min_value=0, max_value=1000, required=False)
    qualification_bar = serializers.FloatField(min_value=0, max_value=1, required=False)
    gold_window = serializers.IntegerField(min_value=1, max_value=1000, required=False)
    review_agreement_below = serializers.FloatField(min_value=0, max_value=1, required=False)
    gold_source = serializers.ChoiceField(choices=GOLD_SOURCE_CHOICES, required=False)


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
    gold_share = serializers.FloatField(
        min_value=0, max_value=1, required=False, default=0.0,
        help_text="Share of the items with human labels made gold items, their known answer the humans' labels.",
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


class GoldRatingSerializer(serializers.Serializer):
    response = serializers.CharField(max_length=200, help_text="A response's external id in this item.")
    attribute = serializers.CharField(max_length=100)
    value = RawIntegerField(help_text="Inside the attribute's scale.")


class GoldPairSerializer(serializers.Serializer):
    pair = serializers.ListField(
        child=serializers.CharField(max_length=200), min_length=2, max_length=2,
        help_text="[response external id, response external id]",
    )
    strength = RawIntegerField(help_text="Negative: the first named is better; inside the project's scale.")


class GoldSerializer(serializers.Serializer):
    """The known answer of a gold, attention or sanity item (the jsonl import's "gold")."""

    ratings = GoldRatingSerializer(many=True, required=False, default=list)
    pairs = GoldPairSerializer(many=True, required=False, default=list)


class ItemSerializer(serializers.ModelSerializer):
    responses = ItemResponseSerializer(many=True, read_only=True)
    gold = serializers.SerializerMethodField(help_text="The known answer, in the pairs' stored order; null for a task.")
    checklist = serializers.SerializerMethodField(help_text="The item's live checklist questions (TICK), in order.")

    class Meta:
        model = Item
        fields = [
            "id", "project", "external_id", "prompt", "conversation", "context", "metadata", "role", "gold", "created_at",
            "responses", "checklist",
        ]

    @extend_schema_field(GoldSerializer(allow_null=True))
    def get_gold(self, item: Item) -> dict | None:
        if item.role == Item.Role.TASK:
            return None
        responses = {r.pk: r.external_id for r in item.responses.all()}
        ratings = [
            {"response": r.external_id, "attribute": name, "value": value}
            for r in item.responses.all() for name, value in (r.gold_ratings or {}).items()
        ]
        pairs = [
            {"pair": [responses.get(p.response_a_id, str(p.response_a_id)), responses.get(p.response_b_id, str(p.response_b_id))],
             "strength": p.gold_strength}
            for p in item.pairs.all() if p.gold_strength is not None
        ]
        return {"ratings": ratings, "pairs": pairs}

    def get_checklist(self, item: Item) -> list[str]:
        # Read from the prefetched rows (ItemListApi prefetches "checklist"): no query per item.
        return [q.text for q in sorted(item.checklist.all(), key=lambda q: (q.position, q.pk)) if q.retired_at is None]


class ResponseInputSerializer(serializers.Serializer):
    external_id = serializers.CharField(max_length=200)
    text = serializers.CharField()
    model = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


@extend_schema_field({"type": "array", "nullable": True, "items": {
    "type": "object", "required": ["role", "content"], "additionalProperties": False,
    "properties": {"role": {"enum": ["system", "user", "assistant"]}, "content": {"type": "string"}}}})
class ConversationField(serializers.JSONField):
    """An item's turns, checked by the one rule (annotate.conversation); the error says which turn."""

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        if value is None:
            return None
        problem = conversation_problem(value)
        if problem:
            raise serializers.ValidationError(f"{problem.where} {problem.message}".strip())
        return value


class ItemCreateSerializer(serializers.Serializer):
    project = IdField()
    external_id = serializers.CharField(max_length=200)
    prompt = serializers.CharField(required=False, help_text="The user's question; with a conversation, its last user turn (may be omitted).")
    conversation = ConversationField(
        required=False, allow_null=True, default=None,
        help_text='Earlier turns and the last user turn: [{"role": "system"|"user"|"assistant", "content": "..."}], ending with the user\'s.',
    )
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
    gold = GoldSerializer(
        required=False, allow_null=True, default=None,
        help_text="The known answer; required for role gold, attention or sanity, refused for a task.",
    )
    checklist = serializers.ListField(
        child=serializers.CharField(), required=False, default=list, max_length=50,
        help_text="Yes/no checklist questions (TICK), one line each.",
    )

    def validate(self, attrs: dict) -> dict:
        turns = attrs.get("conversation")
        if turns is not None:
            # One text, not two that could disagree: the prompt is the conversation's last user turn.
            if attrs.get("prompt") not in (None, last_user_turn(turns)):
                raise serializers.ValidationError({"prompt": "The prompt differs from the conversation's last user turn; give one of them, or the same text."})
            attrs["prompt"] = last_user_turn(turns)
        elif not attrs.get("prompt"):
            raise serializers.ValidationError({"prompt": "A prompt or a conversation is required."})
        ids = [r["external_id"] for r in attrs["responses"]]
        if len(ids) != len(set(ids)):
            raise serializers.ValidationError({"responses": "Response external ids must be unique."})
        for a, b in attrs["pairs"] or []:
            if a == b or a not in ids or b not in ids:
                raise serializers.ValidationError(
                    {"pairs": f"Pair [{a}, {b}] must name two different responses of this item."}
                )
        gold = attrs.get("gold") or {}
        has_gold = bool(gold.get("ratings") or gold.get("pairs"))
        if attrs["role"] == Item.Role.TASK and has_gold:
            raise serializers.ValidationError({"gold": "A task has no known answer; give the item role gold, attention or sanity."})
        if attrs["role"] != Item.Role.TASK and not has_gold:
            raise serializers.ValidationError({"gold": f"A {attrs['role']} item needs its known answer (gold ratings or a gold pair strength)."})
        for i, rating in enumerate(gold.get("ratings") or []):
            if rating["response"] not in ids:
                raise serializers.ValidationError({"gold": f"ratings[{i}] names {rating['response']!r}, not a response of this item."})
        pairs = attrs["pairs"] if attrs["pairs"] is not None else [[a, b] for k, a in enumerate(ids) for b in ids[k + 1:]]
        named = {frozenset(p) for p in pairs}
        for i, entry in enumerate(gold.get("pairs") or []):
            if frozenset(entry["pair"]) not in named or len(set(entry["pair"])) != 2:
                raise serializers.ValidationError({"gold": f"pairs[{i}] names {entry['pair']}, not a pair of this item."})
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
