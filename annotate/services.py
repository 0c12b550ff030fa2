"""Writes. Every function here is keyword-only and typed; views, the API, importers and judges
all call these, so a human annotation and a judge annotation go through the same checks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from . import compiled
from .audit import audit_record, audit_record_many, audit_snapshot, audit_snapshots
from .errors import ValidationError
from .models import (
    HELPSTEER2_ATTRIBUTES,
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
from .verdicts import is_verdict_only


def project_create(
    *,
    name: str,
    guidelines: str = "",
    protocols: str = Project.Protocols.BOTH,
    ranking_scale: str = Project.RankingScale.STRENGTH,
    overlap: int = 3,
    attributes: Sequence[dict] | None = None,
    **options: object,
) -> Project:
    """Create a project with its rating attributes (HelpSteer2's five 0-4 by default)."""
    if not name.strip():
        raise ValidationError("A project needs a name.", field="name")
    if overlap < 1:
        raise ValidationError("Overlap must be at least 1.", field="overlap")
    with transaction.atomic():
        project = Project.objects.create(
            name=name, guidelines=guidelines, protocols=protocols, ranking_scale=ranking_scale,
            overlap=overlap, **options,
        )
        specs = HELPSTEER2_ATTRIBUTES if attributes is None else attributes
        for position, spec in enumerate(specs):
            attribute_create(project=project, position=position, **spec)
        audit_record(action="project.create", obj=project, before=None, after=audit_snapshot(project))
    return project


def attribute_create(
    *,
    project: Project,
    name: str,
    description: str = "",
    min_value: int = 0,
    max_value: int = 4,
    anchors: dict | None = None,
    position: int | None = None,
) -> Attribute:
    if max_value <= min_value:
        raise ValidationError(f"Attribute {name!r}: max_value must exceed min_value.", field="max_value")
    if position is None:
        position = project.attributes.count()
    return Attribute.objects.create(
        project=project, name=name, description=description, min_value=min_value,
        max_value=max_value, anchors=anchors or {}, position=position,
    )


def rater_for_user(*, user: User) -> Rater:
    """The human rater of a user, created on first use."""
    # On every annotator request: SQL compiled once per process (annotate.compiled).
    rater = cast("Rater | None", compiled.first(
        ("rater_for_user",), lambda user_id: Rater.objects.filter(user_id=user_id).order_by("pk")[:1], user_id=user.pk
    ))
    if rater is not None:
        return rater
    # Never adopt an existing rater of the same name (an imported "human:alice" is not the user
    # alice): a name already taken gets the user id beside it.
    name = user.get_username()
    if Rater.objects.filter(kind=Rater.Kind.HUMAN, name=name, project__isnull=True).exists():
        name = f"{name} (user {user.pk})"
    rater, _ = Rater.objects.get_or_create(user=user, defaults={"kind": Rater.Kind.HUMAN, "name": name})
    return rater


def judge_rater_get_or_create(*, name: str, model: str = "") -> Rater:
    # project=None: a real judge is never an imported rater of the same name.
    rater, created = Rater.objects.get_or_create(
        kind=Rater.Kind.JUDGE, name=name, project=None, defaults={"model": model}
    )
    if not created and model and rater.model != model:
        rater.model = model
        rater.save(update_fields=["model"])
    return rater


def validate_rating_value(*, attribute: Attribute, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(
            f"{attribute.name}: rating must be an integer, got {value!r}.", field=attribute.name
        )
    if not attribute.min_value <= value <= attribute.max_value:
        raise ValidationError(
            f"{attribute.name}: rating {value} is outside the scale "
            f"{attribute.min_value}-{attribute.max_value}.",
            field=attribute.name,
        )
    return value


def validate_strength(*, project: Project, strength: object) -> int:
    if isinstance(strength, bool) or not isinstance(strength, int):
        raise ValidationError(f"strength must be an integer, got {strength!r}.", field="strength")
    lo, hi = project.strength_bounds
    if not lo <= strength <= hi:
        raise ValidationError(
            f"strength {strength} is outside the project's scale {lo}..{hi}.", field="strength"
        )
    return strength


def ratings_submit(
    *,
    rater: Rater,
    response: Response,
    values: dict[str, int],
    time_on_task_ms: int | None = None,
    probabilities: dict[str, dict] | None = None,
    expected_values: dict[str, float] | None = None,
    attributes: Sequence[Attribute] | None = None,
) -> list[Rating]:
    """Store a rater's ratings of one response, one per attribute.

    Idempotent: resubmitting replaces the values (the unique constraint keeps one row per
    rater, response and attribute). `attributes`: the project's attributes when the caller has
    them already (the queue does), else they are read."""
    if attributes is None:
        attributes = list(Attribute.objects.filter(project_id=response.item.project_id))
    by_name = {a.name: a for a in attributes}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise ValidationError(f"Unknown attribute(s) for this project: {', '.join(unknown)}.", field=unknown[0])
    rows = []
    for name, value in values.items():
        attribute = by_name[name]
        validate_rating_value(attribute=attribute, value=value)
        rows.append(Rating(
            rater=rater, response=response, attribute=attribute, value=value,
            time_on_task_ms=time_on_task_ms,
            probabilities=(probabilities or {}).get(name),
            expected_value=(expected_values or {}).get(name),
        ))
    before = audit_snapshots(Rating.objects.filter(rater=rater, response=response, attribute__name__in=list(values)))
    # One upsert for all attributes (a per-attribute update_or_create cost two queries and a
    # savepoint each); the unique constraint is the conflict target, so a replay updates.
    Rating.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["rater", "response", "attribute"],
        update_fields=["value", "time_on_task_ms", "probabilities", "expected_value", "updated_at"],
    )
    if not before and all(r.pk is not None for r in rows):
        # Nothing stored before: the rows are what the upsert inserted (PostgreSQL and SQLite
        # return their ids), so they are not read back. A replacement is read back: its row keeps
        # the first submit's id and creation time.
        ratings = sorted(rows, key=lambda r: (r.attribute.position, r.attribute.pk))
    else:
        ratings = list(
            Rating.objects.filter(rater=rater, response=response, attribute__name__in=list(values)).order_by("attribute__position")
        )
    # One insert for the response's events (the upsert keeps a replaced rating's id).
    audit_record_many(action="rating.submit", changes=[(r, before.get(r.pk), audit_snapshot(r)) for r in ratings])
    return ratings


def preference_submit(
    *,
    rater: Rater,
    pair: Pair,
    strength: int,
    shown_order: str = ShownOrder.AB,
    justification: str = "",
    time_on_task_ms: int | None = None,
    probabilities: dict | None = None,
    verdict_only: bool = False,
) -> tuple[Preference, bool]:
    """Store one preference; returns (preference, created).

    A human has one preference per pair, a judge one per pair and shown order. A replay of the
    same submission returns the stored row instead of failing. `verdict_only`: the rater gave
    a verdict (A / tie / B) and no strength, as a judge's [[A]]/[[B]]/[[C]] or any preference of a
    ternary project (annotate.verdicts.is_verdict_only)."""
    project = pair.item.project
    validate_strength(project=project, strength=strength)
    verdict_only = is_verdict_only(ranking_scale=project.ranking_scale, verdict_only=verdict_only)
    if verdict_only and abs(strength) > 1:
        raise ValidationError(f"a verdict is -1, 0 or 1 (A, tie, B), got {strength}.", field="strength")
    if shown_order not in ShownOrder.values:
        raise ValidationError(f"shown_order must be 'ab' or 'ba', got {shown_order!r}.", field="shown_order")
    lookup: dict[str, Any] = {"rater": rater, "pair": pair}
    if rater.kind == Rater.Kind.JUDGE:
        lookup["shown_order"] = shown_order
    existing = Preference.objects.filter(**lookup).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            preference = Preference.objects.create(
                rater=rater, rater_kind=rater.kind, pair=pair, strength=strength,
                shown_order=shown_order, justification=justification,
                time_on_task_ms=time_on_task_ms, probabilities=probabilities, verdict_only=verdict_only,
            )
            audit_record(action="preference.submit", obj=preference, before=None, after=audit_snapshot(preference))
    except IntegrityError:
        # A concurrent submit of the same annotation won the race: keep its row.
        return Preference.objects.get(**lookup), False
    return preference, True


def pair_find(*, response_a: Response | int, response_b: Response | int) -> tuple[Pair | None, bool]:
    """The stored pair of two responses in either order, and whether it is stored as their
    mirror (b, a): a strength about (a, b) is then negated to be about the stored pair."""
    a = response_a if isinstance(response_a, int) else response_a.pk
    b = response_b if isinstance(response_b, int) else response_b.pk
    for pair in Pair.objects.filter(Q(response_a_id=a, response_b_id=b) | Q(response_a_id=b, response_b_id=a)):
        return pair, pair.response_a_id != a
    return None, False


def pair_get_or_create(*, item: Item, response_a: Response, response_b: Response) -> tuple[Pair, bool]:
    """The one pair of two responses (a pair is unordered): (pair, mirrored), where mirrored
    says the stored order is (b, a). A new pair is stored in the order asked for."""
    if response_a.pk == response_b.pk:
        raise ValidationError("A pair needs two different responses.", field="pairs")
    pair, mirrored = pair_find(response_a=response_a, response_b=response_b)
    if pair is not None:
        return pair, mirrored
    try:
        with transaction.atomic():
            return Pair.objects.create(item=item, response_a=response_a, response_b=response_b), False
    except IntegrityError:
        # A concurrent writer stored it (in either order) first: use theirs.
        pair, mirrored = pair_find(response_a=response_a, response_b=response_b)
        if pair is None:
            raise
        return pair, mirrored


def unordered_pairs(pairs: Iterable[Sequence[Any]]) -> list[tuple[Any, Any]]:
    """The pairs of a list once each, whatever their order: a later (b, a) after (a, b) is the
    same pair and is dropped; the first-named order is the stored one."""
    seen: set[frozenset] = set()
    out: list[tuple[Any, Any]] = []
    for a, b in pairs:
        key = frozenset((a, b))
        if key not in seen:
            seen.add(key)
            out.append((a, b))
    return out


def pairs_for_responses(*, responses: Iterable[Response]) -> list[tuple[Response, Response]]:
    """Every two responses of an item, in stored order (the default when a file names no pairs)."""
    items = list(responses)
    return [(a, b) for i, a in enumerate(items) for b in items[i + 1 :]]


def item_create(
    *,
    project: Project,
    external_id: str,
    prompt: str,
    context: str = "",
    metadata: dict | None = None,
    role: str = Item.Role.TASK,
    responses: Sequence[dict] = (),
    pairs: Sequence[Sequence[str]] | None = None,
    conversation: list[dict] | None = None,
    gold: dict | None = None,
) -> Item:
    """An item with its responses and pairs in one transaction (every two responses by default).

    gold: its known answer, {"ratings": [{response, attribute, value}], "pairs": [{pair, strength}]}
    with responses named by external id, checked against the project's scales."""
    gold_ratings, gold_strengths = _gold_checked(project=project, gold=gold or {})
    with transaction.atomic():
        item = Item.objects.create(
            project=project, external_id=external_id, prompt=prompt, context=context,
            metadata=metadata or {}, role=role, conversation=conversation,
        )
        stored = {spec["external_id"]: Response.objects.create(item=item, **spec) for spec in responses}
        chosen = (
            pairs_for_responses(responses=stored.values())
            if pairs is None
            else [(stored[a], stored[b]) for a, b in unordered_pairs(pairs)]
        )
        Pair.objects.bulk_create([Pair(item=item, response_a=a, response_b=b) for a, b in chosen])
        for rid, known in gold_ratings.items():
            stored[rid].gold_ratings = known
            stored[rid].save(update_fields=["gold_ratings"])
        for pair in Pair.objects.filter(item=item).select_related("response_a", "response_b"):
            key = (pair.response_a.external_id, pair.response_b.external_id)
            if key in gold_strengths:
                pair.gold_strength = gold_strengths[key]
            elif key[::-1] in gold_strengths:  # named in the other order: negated onto the stored one
                pair.gold_strength = -gold_strengths[key[::-1]]
            else:
                continue
            pair.save(update_fields=["gold_strength"])
    return item


def _gold_checked(*, project: Project, gold: dict) -> tuple[dict[str, dict[str, int]], dict[tuple[str, str], int]]:
    """A known answer on the project's scales, as {response: {attribute: value}} and
    {(response, response): strength}; ValidationError naming the entry otherwise."""
    attributes = {a.name: a for a in project.attributes.all()}
    ratings: dict[str, dict[str, int]] = {}
    for i, rating in enumerate(gold.get("ratings") or []):
        field = f"gold.ratings[{i}]"
        attribute = attributes.get(rating["attribute"])
        if attribute is None:
            raise ValidationError(f"{rating['attribute']!r} is not one of the project's attributes ({', '.join(attributes) or 'none'}).", field=field)
        value = rating["value"]
        if isinstance(value, bool) or not isinstance(value, int) or not attribute.min_value <= value <= attribute.max_value:
            raise ValidationError(
                f"gold rating {value!r} is outside {attribute.name}'s scale {attribute.min_value}-{attribute.max_value}.", field=field
            )
        ratings.setdefault(rating["response"], {})[attribute.name] = value
    strengths: dict[tuple[str, str], int] = {}
    for i, entry in enumerate(gold.get("pairs") or []):
        try:
            strength = validate_strength(project=project, strength=entry["strength"])
        except ValidationError as exc:
            raise ValidationError(f"gold {exc}", field=f"gold.pairs[{i}]") from None
        strengths[(str(entry["pair"][0]), str(entry["pair"][1]))] = strength
    return ratings, strengths


def project_archive(*, project: Project) -> Project:
    """Archive, never delete (annotate.access): the project leaves lists and queues, its
    annotations, reports and exports stay."""
    if project.archived_at is None:
        before = audit_snapshot(project)
        project.archived_at = timezone.now()
        project.save(update_fields=["archived_at"])
        audit_record(action="project.archive", obj=project, before=before, after=audit_snapshot(project))
    return project


def project_update(*, project: Project, **fields: object) -> Project:
    before = audit_snapshot(project)
    for name, value in fields.items():
        setattr(project, name, value)
    if fields:
        project.save(update_fields=list(fields))
        audit_record(action="project.update", obj=project, before=before, after=audit_snapshot(project))
    return project
