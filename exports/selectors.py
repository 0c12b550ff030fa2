"""Reads for exports, in item batches so memory stays bounded by the batch, not the project.

Items are walked by primary key (keyset pagination); each batch loads its responses, pairs,
ratings and preferences with one values() query each, ordered so one item's rows come together
and each list is in annotation order (earliest first, which the aggregation's tie rule needs).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from annotate.adjudication import adjudicated_strengths
from annotate.conversation import prompt_text
from annotate.models import Attribute, Item, Pair, Preference, Project, Rater, Rating, Response
from annotate.training import excluded_raters
from annotate.verdicts import combine_strengths

from .aggregate import Vote

RaterGroup = Literal["humans", "judges", "both"]
RATER_GROUPS: tuple[RaterGroup, ...] = ("humans", "judges", "both")
ITEM_BATCH = 2000  # about 6 MB of texts a batch at HelpSteer2 lengths; fewer round trips


@dataclass(frozen=True)
class ExportFilters:
    rater_group: RaterGroup = "humans"
    judge: str | None = None  # with judges in the group: only this judge
    min_agreement: float = 0.0
    exclude_gold: bool = False
    exclude_attention: bool = False
    # Split names with their shares; an item (so every pair and response of a prompt) goes
    # to exactly one split.
    splits: tuple[tuple[str, float], ...] = (("train", 1.0),)
    seed: int = 0
    # Gold of a pair: "majority" of its human votes, or "adjudicated" (a reviewer's final verdict
    # where there is one); annotate.verdicts.gold_label_from decides.
    gold: str = "majority"

    @property
    def rater_kinds(self) -> list[str]:
        return {"humans": ["human"], "judges": ["judge"], "both": ["human", "judge"]}[self.rater_group]


def parse_splits(spec: str) -> tuple[tuple[str, float], ...]:
    """'train=0.9,validation=0.1' -> (('train', 0.9), ('validation', 0.1)); shares must sum to 1."""
    parts: list[tuple[str, float]] = []
    for chunk in spec.split(","):
        if not chunk.strip():
            continue
        name, sep, share = chunk.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"split {chunk!r} is not NAME=SHARE")
        try:
            value = float(share)
        except ValueError as exc:
            raise ValueError(f"split {chunk!r}: share {share!r} is not a number") from exc
        if value < 0:
            raise ValueError(f"split {chunk!r}: share must not be negative")
        parts.append((name.strip(), value))
    if not parts:
        raise ValueError("no splits given")
    total = sum(v for _, v in parts)
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"split shares sum to {total:g}, not 1")
    return tuple(parts)


def split_for_item(external_id: str, filters: ExportFilters) -> str:
    """Seeded and stable: a hash of (seed, item) picks the split, so the same seed gives the same
    assignment in every export and format, and all rows of one prompt share it."""
    if len(filters.splits) == 1:
        return filters.splits[0][0]
    digest = hashlib.sha256(f"{filters.seed}:{external_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    cumulative = 0.0
    for name, share in filters.splits:
        cumulative += share
        if u < cumulative:
            return name
    return filters.splits[-1][0]


@dataclass
class ItemRow:
    id: int
    external_id: str
    prompt: str
    role: str
    split: str


@dataclass
class ResponseRecord:
    item: ItemRow
    id: int
    external_id: str
    text: str
    model: str
    # attribute name -> [(value, rater name)], earliest first
    ratings: dict[str, list[tuple[int, str]]] = field(default_factory=dict)


@dataclass
class PairRecord:
    item: ItemRow
    id: int
    response_1: str
    response_2: str
    response_1_id: str
    response_2_id: str
    model_1: str
    model_2: str
    # One vote per rater: a judge's two shown orders are combined (METRICS.md).
    votes: list[Vote] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)  # rater kind of each vote
    adjudicated: int | None = None  # a reviewer's final strength (stored order), when gold is "adjudicated"


def items_to_export(project: Project, filters: ExportFilters):
    qs = Item.objects.filter(project=project)
    if filters.exclude_gold:
        qs = qs.exclude(role=Item.Role.GOLD)
    if filters.exclude_attention:
        qs = qs.exclude(role=Item.Role.ATTENTION)
    return qs


def item_count(project: Project, filters: ExportFilters) -> int:
    return items_to_export(project, filters).count()


def item_batches(
    project: Project, filters: ExportFilters, *, batch: int = ITEM_BATCH,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[list[ItemRow]]:
    """Items in id order, `batch` at a time; on_progress gets the running count after a batch."""
    base = items_to_export(project, filters).order_by("id")
    last = 0
    done = 0
    while True:
        rows = list(base.filter(id__gt=last).values_list("id", "external_id", "prompt", "conversation", "role")[:batch])
        if not rows:
            return
        last = rows[-1][0]
        # A multi-turn item's prompt is written with its earlier turns (HelpSteer2's layout).
        yield [ItemRow(id=i, external_id=e, prompt=prompt_text(p, c), role=r, split=split_for_item(e, filters))
               for i, e, p, c, r in rows]
        done += len(rows)
        if on_progress is not None:
            on_progress(done)


def attribute_names(project: Project) -> list[str]:
    return list(Attribute.objects.filter(project=project).order_by("position", "id").values_list("name", flat=True))


def _rater_filter(filters: ExportFilters) -> dict:
    lookup: dict = {"rater__kind__in": filters.rater_kinds}
    return lookup


def _keep_rater(kind: str, name: str, filters: ExportFilters) -> bool:
    return not (kind == Rater.Kind.JUDGE and filters.judge and name != filters.judge)


def response_records(
    project: Project, filters: ExportFilters, *, batch: int = ITEM_BATCH,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[ResponseRecord]:
    for items in item_batches(project, filters, batch=batch, on_progress=on_progress):
        by_id = {it.id: it for it in items}
        ratings: dict[int, dict[str, list[tuple[int, str]]]] = defaultdict(lambda: defaultdict(list))
        rating_rows = (
            Rating.objects.filter(response__item_id__in=by_id, **_rater_filter(filters)).exclude(rater__in=excluded_raters(project))
            .order_by("response_id", "id")
            .values_list("response_id", "attribute__name", "value", "rater__kind", "rater__name")
        )
        for response_id, attribute, value, kind, name in rating_rows:
            if _keep_rater(kind, name, filters):
                ratings[response_id][attribute].append((value, name))
        responses = (
            Response.objects.filter(item_id__in=by_id)
            .order_by("item_id", "id")
            .values_list("id", "item_id", "external_id", "text", "model")
        )
        for rid, item_id, ext, text, model in responses:
            yield ResponseRecord(
                item=by_id[item_id], id=rid, external_id=ext, text=text, model=model,
                ratings=dict(ratings.get(rid, {})),
            )


SPARSE = 4  # a batch's ids spread over more than 4x their number: ask for them by `IN`


def _id_range(field: str, ids: list[int]) -> dict:
    """A filter for the rows of these ids (not empty): their range, where they are nearly
    contiguous (the caller drops the few others the range holds), else `IN`, so a batch never
    reads many rows it does not want."""
    lo, hi = min(ids), max(ids)
    if hi - lo + 1 > SPARSE * len(ids):
        return {f"{field}__in": ids}
    return {f"{field}__gte": lo, f"{field}__lte": hi}


def pair_records(
    project: Project, filters: ExportFilters, *, batch: int = ITEM_BATCH,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[PairRecord]:
    decided = adjudicated_strengths(project) if filters.gold == "adjudicated" else {}
    for items in item_batches(project, filters, batch=batch, on_progress=on_progress):
        by_id = {it.id: it for it in items}
        # Pairs, response texts and preferences in three single-table queries over the batch's
        # id range (items are walked in id order, and an item's rows are mostly written
        # together), not a join and not `IN` over 2,000 ids where the range will do: Django
        # compiles and psycopg splits one placeholder per id, which cost a third of the
        # export's CPU. Rows of items outside the batch (another project's, or filtered out)
        # are dropped here.
        of_items = _id_range("item_id", list(by_id))
        pairs = [
            row for row in Pair.objects.filter(**of_items)
            .order_by("item_id", "id")
            .values_list("id", "item_id", "response_a_id", "response_b_id")
            if row[1] in by_id
        ]
        texts = {
            rid: (ext, text, model)
            for rid, item_id, ext, text, model in Response.objects.filter(**of_items).values_list(
                "id", "item_id", "external_id", "text", "model"
            )
            if item_id in by_id
        }
        # rater id -> strengths in stored order, in the order the rater's first preference came
        per_pair: dict[int, dict[int, list]] = defaultdict(dict)
        pair_ids = {p[0] for p in pairs}
        preference_rows = (
            # By pair id, not through the item join: the pair_id index answers it directly.
            Preference.objects.filter(**_id_range("pair_id", list(pair_ids)), rater_kind__in=filters.rater_kinds)
            .exclude(rater__in=excluded_raters(project))
            .order_by("pair_id", "id")
            .values_list("pair_id", "rater_id", "rater_kind", "rater__name", "strength", "justification")
        ) if pair_ids else []
        for pair_id, rater_id, kind, name, strength, justification in preference_rows:
            if pair_id not in pair_ids or not _keep_rater(kind, name, filters):
                continue
            entry = per_pair[pair_id].setdefault(rater_id, [kind, name, [], justification])
            entry[2].append(strength)
        for pid, item_id, a_id, b_id in pairs:
            votes: list[Vote] = []
            kinds: list[str] = []
            for kind, name, strengths, justification in per_pair.get(pid, {}).values():
                votes.append(Vote(strength=combine_strengths(strengths), justification=justification, rater=name))
                kinds.append(kind)
            ext_a, text_a, model_a = texts[a_id]
            ext_b, text_b, model_b = texts[b_id]
            yield PairRecord(
                item=by_id[item_id], id=pid, response_1=text_a, response_2=text_b,
                response_1_id=ext_a, response_2_id=ext_b, model_1=model_a, model_2=model_b,
                votes=votes, kinds=kinds, adjudicated=decided.get(pid),
            )


ANNOTATION_COLUMNS: list[str] = [
    "annotation", "project", "split", "item_id", "item_role", "response_id", "response_a_id",
    "response_b_id", "attribute", "value", "strength", "shown_order", "justification",
    "rater_kind", "rater_name", "time_on_task_ms", "created_at", "updated_at",
]


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts is not None else None


def annotation_rows(
    project: Project, filters: ExportFilters, *, batch: int = ITEM_BATCH,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[dict]:
    """The raw long format: one row per rating or per preference (each shown order of a judge
    is its own row), nothing aggregated."""
    for items in item_batches(project, filters, batch=batch, on_progress=on_progress):
        by_id = {it.id: it for it in items}
        rows: dict[int, list[dict]] = defaultdict(list)
        for (item_id, response, attribute, value, kind, name, tot, created, updated) in (
            Rating.objects.filter(response__item_id__in=by_id, **_rater_filter(filters)).exclude(rater__in=excluded_raters(project))
            .order_by("response__item_id", "response_id", "id")
            .values_list(
                "response__item_id", "response__external_id", "attribute__name", "value",
                "rater__kind", "rater__name", "time_on_task_ms", "created_at", "updated_at",
            )
        ):
            if not _keep_rater(kind, name, filters):
                continue
            item = by_id[item_id]
            rows[item_id].append({
                "annotation": "rating", "project": project.name, "split": item.split,
                "item_id": item.external_id, "item_role": item.role, "response_id": response,
                "response_a_id": None, "response_b_id": None, "attribute": attribute, "value": value,
                "strength": None, "shown_order": None, "justification": None, "rater_kind": kind,
                "rater_name": name, "time_on_task_ms": tot, "created_at": _iso(created),
                "updated_at": _iso(updated),
            })
        for (item_id, ext_a, ext_b, strength, shown, justification, kind, name, tot, created, updated) in (
            Preference.objects.filter(pair__item_id__in=by_id, rater_kind__in=filters.rater_kinds)
            .exclude(rater__in=excluded_raters(project))
            .order_by("pair__item_id", "pair_id", "id")
            .values_list(
                "pair__item_id", "pair__response_a__external_id", "pair__response_b__external_id",
                "strength", "shown_order", "justification", "rater_kind", "rater__name",
                "time_on_task_ms", "created_at", "updated_at",
            )
        ):
            if not _keep_rater(kind, name, filters):
                continue
            item = by_id[item_id]
            rows[item_id].append({
                "annotation": "preference", "project": project.name, "split": item.split,
                "item_id": item.external_id, "item_role": item.role, "response_id": None,
                "response_a_id": ext_a, "response_b_id": ext_b, "attribute": None, "value": None,
                "strength": strength, "shown_order": shown, "justification": justification,
                "rater_kind": kind, "rater_name": name, "time_on_task_ms": tot,
                "created_at": _iso(created), "updated_at": _iso(updated),
            })
        for item in items:
            yield from rows.get(item.id, ())
