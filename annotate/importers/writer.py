"""One bulk writer for every format: validate everything, then insert in one transaction.

All-or-nothing: the whole import runs in a single transaction, and every value is checked
against the project's scales before the first insert, so a bad file writes nothing.
Idempotent: items, responses and pairs are matched on external ids, annotations on their
unique constraints, so re-importing the same file creates no duplicates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import models, transaction

from ..errors import ImportFileError
from ..models import Attribute, Item, Pair, Preference, Project, Rater, Rating, Response
from ..services import project_create
from .spec import ParsedImport, RaterKey

BATCH = 5000


@dataclass
class ImportResult:
    project: Project
    created_project: bool
    counts: dict[str, int] = field(default_factory=dict)  # created rows per table
    totals: dict[str, int] = field(default_factory=dict)  # rows named by the files

    def as_dict(self) -> dict[str, Any]:
        return {
            "project": self.project.name, "project_id": self.project.pk,
            "created_project": self.created_project, "created": self.counts, "in_files": self.totals,
        }


def write_import(*, project_name: str, parsed: ParsedImport, user: Any = None) -> ImportResult:
    with transaction.atomic():
        project, created = _project(project_name, parsed)
        if user is not None and getattr(user, "is_authenticated", False):
            project.members.add(user)
        attributes = {a.name: a for a in project.attributes.all()}
        _validate(project, attributes, parsed)
        before = _counts(project)
        raters = _raters(parsed.raters)
        item_ids = _items(project, parsed)
        response_ids = _responses(parsed, item_ids)
        pair_ids = _pairs(parsed, item_ids, response_ids)
        _ratings(parsed, raters, attributes, response_ids)
        _preferences(parsed, raters, pair_ids)
        after = _counts(project)
    return ImportResult(
        project=project, created_project=created,
        counts={k: after[k] - before[k] for k in after},
        totals={
            "items": len(parsed.items),
            "responses": sum(len(i.responses) for i in parsed.items.values()),
            "pairs": len(pair_ids),
            "ratings": len(parsed.ratings),
            "preferences": len(parsed.preferences),
            "raters": len(parsed.raters),
        },
    )


def _project(name: str, parsed: ParsedImport) -> tuple[Project, bool]:
    project = Project.objects.filter(name=name).first()
    if project is not None:
        return project, False
    d = parsed.defaults
    return project_create(name=name, protocols=d.protocols, ranking_scale=d.ranking_scale, attributes=d.attributes), True


def _validate(project: Project, attributes: dict[str, Attribute], parsed: ParsedImport) -> None:
    for rating in parsed.ratings:
        w = rating.where
        attribute = attributes.get(rating.attribute)
        if attribute is None:
            known = ", ".join(attributes) or "none"
            raise ImportFileError(
                f"attribute {rating.attribute!r} is not one of project {project.name!r}'s attributes ({known})",
                path=w.path, line=w.line, field=rating.attribute,
            )
        value = rating.value
        if isinstance(value, bool) or not isinstance(value, int):
            raise ImportFileError(f"rating must be an integer, got {value!r}", path=w.path, line=w.line, field=rating.attribute)
        if not attribute.min_value <= value <= attribute.max_value:
            raise ImportFileError(
                f"rating {value} is outside {attribute.name}'s scale {attribute.min_value}-{attribute.max_value}",
                path=w.path, line=w.line, field=rating.attribute,
            )
    lo, hi = project.strength_bounds
    for pref in parsed.preferences:
        w = pref.where
        s = pref.strength
        if isinstance(s, bool) or not isinstance(s, int):
            raise ImportFileError(f"strength must be an integer, got {s!r}", path=w.path, line=w.line, field="strength")
        if not lo <= s <= hi:
            raise ImportFileError(f"strength {s} is outside project {project.name!r}'s scale {lo}..{hi}", path=w.path, line=w.line, field="strength")
    human_seen: dict[tuple[RaterKey, str, tuple[str, str]], Any] = {}
    for pref in parsed.preferences:
        if pref.rater[0] != "human":
            continue
        key = (pref.rater, pref.item, pref.pair)
        if key in human_seen:
            w = pref.where
            raise ImportFileError(
                f"{pref.rater[0]}:{pref.rater[1]} already judged this pair (line {human_seen[key].line}); a human has one preference per pair",
                path=w.path, line=w.line, field="rater",
            )
        human_seen[key] = pref.where


def _counts(project: Project) -> dict[str, int]:
    return {
        "items": Item.objects.filter(project=project).count(),
        "responses": Response.objects.filter(item__project=project).count(),
        "pairs": Pair.objects.filter(item__project=project).count(),
        "ratings": Rating.objects.filter(response__item__project=project).count(),
        "preferences": Preference.objects.filter(pair__item__project=project).count(),
    }


def _raters(declared: dict[RaterKey, str]) -> dict[RaterKey, int]:
    ids: dict[RaterKey, int] = {}
    for (kind, name), model in declared.items():
        rater, created = Rater.objects.get_or_create(kind=kind, name=name, defaults={"model": model})
        if not created and model and rater.model != model:
            rater.model = model
            rater.save(update_fields=["model"])
        ids[(kind, name)] = rater.pk
    return ids


def _chunks(values: list, size: int = BATCH) -> Iterable[list]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _existing(queryset: models.QuerySet, key_fields: tuple[str, ...], keys: list) -> dict:
    """Map key tuple -> id for rows that already exist (looked up in chunks)."""
    found: dict = {}
    first = key_fields[-1]
    for chunk in _chunks(keys):
        values = {k[-1] for k in chunk}
        for row in queryset.filter(**{f"{first}__in": values}).values_list("id", *key_fields):
            found[tuple(row[1:])] = row[0]
    return found


def _items(project: Project, parsed: ParsedImport) -> dict[str, int]:
    keys = [(ext,) for ext in parsed.items]
    existing = _existing(Item.objects.filter(project=project), ("external_id",), keys)
    new = [
        Item(project=project, external_id=s.external_id, prompt=s.prompt, context=s.context, metadata=s.metadata, role=s.role)
        for ext, s in parsed.items.items() if (ext,) not in existing
    ]
    for chunk in _chunks(new):
        Item.objects.bulk_create(chunk)
    if new:
        existing = _existing(Item.objects.filter(project=project), ("external_id",), keys)
    return {ext[0]: pk for ext, pk in existing.items()}


def _responses(parsed: ParsedImport, item_ids: dict[str, int]) -> dict[tuple[str, str], int]:
    wanted = [(item_ids[i.external_id], r) for i in parsed.items.values() for r in i.responses]
    qs = Response.objects.filter(item_id__in=set(item_ids.values()))
    existing = _existing_pairs(qs, "item_id", "external_id", wanted)
    new = [
        Response(item_id=item_ids[i.external_id], external_id=r.external_id, text=r.text, model=r.model)
        for i in parsed.items.values() for r in i.responses.values()
        if (item_ids[i.external_id], r.external_id) not in existing
    ]
    for chunk in _chunks(new):
        Response.objects.bulk_create(chunk)
    if new:
        existing = _existing_pairs(qs, "item_id", "external_id", wanted)
    by_item_id = {pk: ext for ext, pk in item_ids.items()}
    return {(by_item_id[item_pk], ext): pk for (item_pk, ext), pk in existing.items()}


def _existing_pairs(qs: models.QuerySet, f1: str, f2: str, wanted: list[tuple]) -> dict[tuple, int]:
    found: dict[tuple, int] = {}
    wanted_set = set(wanted)
    firsts = sorted({w[0] for w in wanted})
    for chunk in _chunks(firsts):
        for pk, a, b in qs.filter(**{f"{f1}__in": chunk}).values_list("id", f1, f2).iterator(chunk_size=BATCH):
            if (a, b) in wanted_set:
                found[(a, b)] = pk
    return found


def _pairs(parsed: ParsedImport, item_ids: dict[str, int], response_ids: dict[tuple[str, str], int]) -> dict[tuple[str, str, str], int]:
    wanted: list[tuple[int, int]] = []
    meta: dict[tuple[int, int], tuple[str, str, str]] = {}
    items_of: dict[tuple[int, int], int] = {}
    for item in parsed.items.values():
        ids = list(item.responses)
        refs = item.pairs if item.pairs is not None else [(a, b) for i, a in enumerate(ids) for b in ids[i + 1 :]]
        for a, b in refs:
            key = (response_ids[(item.external_id, a)], response_ids[(item.external_id, b)])
            wanted.append(key)
            meta[key] = (item.external_id, a, b)
            items_of[key] = item_ids[item.external_id]
    qs = Pair.objects.all()
    existing = _existing_pairs(qs, "response_a_id", "response_b_id", wanted)
    new = [Pair(item_id=items_of[k], response_a_id=k[0], response_b_id=k[1]) for k in wanted if k not in existing]
    for chunk in _chunks(new):
        Pair.objects.bulk_create(chunk)
    if new:
        existing = _existing_pairs(qs, "response_a_id", "response_b_id", wanted)
    return {meta[k]: pk for k, pk in existing.items()}


def _ratings(parsed: ParsedImport, raters: dict[RaterKey, int], attributes: dict[str, Attribute], response_ids: dict) -> None:
    rows = [
        Rating(rater_id=raters[r.rater], response_id=response_ids[(r.item, r.response)],
               attribute_id=attributes[r.attribute].pk, value=r.value)
        for r in parsed.ratings
    ]
    for chunk in _chunks(rows):
        # The unique constraint (rater, response, attribute) makes a re-import a no-op.
        Rating.objects.bulk_create(chunk, ignore_conflicts=True)


def _preferences(parsed: ParsedImport, raters: dict[RaterKey, int], pair_ids: dict) -> None:
    rows = [
        Preference(rater_id=raters[p.rater], rater_kind=p.rater[0], pair_id=pair_ids[(p.item, *p.pair)],
                   strength=p.strength, shown_order=p.shown_order, justification=p.justification)
        for p in parsed.preferences
    ]
    for chunk in _chunks(rows):
        Preference.objects.bulk_create(chunk, ignore_conflicts=True)
