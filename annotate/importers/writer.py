"""One bulk writer for every format: batch by batch, validate then insert, in one transaction.

All-or-nothing: the whole import runs in a single transaction, and every value of a batch is
checked against the project's scales before the batch's first insert; a bad value or line in a
later batch rolls the earlier ones back, so a bad file writes nothing.
Idempotent: items, responses and pairs are matched on external ids, annotations on their
unique constraints, so re-importing the same file creates no duplicates.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from django.db import DatabaseError, connection, models, transaction

from ..audit import audit_record
from ..errors import ImportFileError
from ..models import Attribute, ChecklistQuestion, Item, Pair, Preference, Project, Rater, Rating, Response
from ..services import project_create, unordered_pairs
from ..verdicts import SWAPPED_ORDER, is_verdict_only
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


def write_import(*, project_name: str, parsed: ParsedImport | Iterable[ParsedImport], user: Any = None) -> ImportResult:
    """Write one import (a ParsedImport, or the batches a streaming parser yields) in one
    transaction: the project, created with the first batch's defaults where it is new, then
    each batch in turn."""
    batches: Iterator[ParsedImport] = iter([parsed] if isinstance(parsed, ParsedImport) else parsed)
    with transaction.atomic(), _constraints_checked_per_statement():
        first = next(batches, None) or ParsedImport()
        project, created = _project(project_name, first)
        if user is not None and getattr(user, "is_authenticated", False):
            project.members.add(user)
        attributes = {a.name: a for a in project.attributes.all()}
        before = _counts(project)
        raters: dict[RaterKey, int] = {}
        totals: Counter[str] = Counter()
        totals.update(_write_batch(project, attributes, first, raters))
        for batch in batches:
            totals.update(_write_batch(project, attributes, batch, raters))
        after = _counts(project)
        audit_record(action="project.import", obj=project, before=before, after=after)  # rows per table
    _refresh_statistics({k: after[k] - before[k] for k in after})  # committed (unless an outer transaction holds it)
    keys = ("items", "responses", "pairs", "ratings", "preferences", "raters", "gold_ratings", "gold_pairs")
    return ImportResult(
        project=project, created_project=created,
        counts={k: after[k] - before[k] for k in after},
        totals={k: totals[k] if k != "raters" else len(raters) for k in keys},
    )


@contextmanager
def _constraints_checked_per_statement() -> Iterator[None]:
    """Django's foreign keys on PostgreSQL are DEFERRABLE INITIALLY DEFERRED: each inserted row
    queues a check that runs at COMMIT, so a 1M-pair import held some 7M queued checks in the
    server's memory and spent minutes in COMMIT. Checked at the end of each statement instead
    (every batch references only rows written before it), the queue stays one batch long; the
    enclosing transaction gets its deferred checks back afterwards."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        except DatabaseError:
            pass  # a failed statement aborted the transaction, which is rolled back anyway


def _write_batch(project: Project, attributes: dict[str, Attribute], parsed: ParsedImport, raters: dict[RaterKey, int]) -> dict[str, int]:
    """Validate one batch, then write it; `raters` (kind, name -> id) carries over between
    batches. Returns the rows the batch named, per table."""
    _validate(project, attributes, parsed)
    _raters(project, parsed.raters, raters)
    item_ids = _items(project, parsed)
    _checklists(parsed, item_ids)
    response_ids = _responses(parsed, item_ids)
    pair_ids, pairs = _pairs(parsed, item_ids, response_ids)
    _ratings(parsed, raters, attributes, response_ids)
    _preferences(project, parsed, raters, pair_ids)
    gold = _gold(parsed, item_ids, response_ids, pair_ids)
    return {
        "items": sum(1 for i in parsed.items.values() if not i.written),
        "responses": sum(len(i.responses) for i in parsed.items.values()),
        "pairs": pairs,
        "ratings": len(parsed.ratings),
        "preferences": len(parsed.preferences),
        **gold,
    }


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
    _validate_gold(project, attributes, parsed)
    human_seen: dict[tuple[RaterKey, str, frozenset[str]], Any] = {}
    for pref in parsed.preferences:
        if pref.rater[0] != "human":
            continue
        key = (pref.rater, pref.item, frozenset(pref.pair))  # a pair is unordered
        if key in human_seen:
            w = pref.where
            raise ImportFileError(
                f"{pref.rater[0]}:{pref.rater[1]} already judged this pair (line {human_seen[key].line}); a human has one preference per pair",
                path=w.path, line=w.line, field="rater",
            )
        human_seen[key] = pref.where


def _validate_gold(project: Project, attributes: dict[str, Attribute], parsed: ParsedImport) -> None:
    """Known answers on the project's own scales, checked like the annotations they judge."""
    lo, hi = project.strength_bounds
    for item in parsed.items.values():
        w = item.where
        for rating in item.gold_ratings:
            line = rating.line or w.line
            attribute = attributes.get(rating.attribute)
            if attribute is None:
                known = ", ".join(attributes) or "none"
                raise ImportFileError(
                    f"gold names attribute {rating.attribute!r}, not one of project {project.name!r}'s ({known})",
                    path=w.path, line=line, field=rating.field,
                )
            value = rating.value
            if isinstance(value, bool) or not isinstance(value, int):
                raise ImportFileError(f"a gold rating must be an integer, got {value!r:.60}", path=w.path, line=line, field=rating.field)
            if not attribute.min_value <= value <= attribute.max_value:
                raise ImportFileError(
                    f"gold rating {value} is outside {attribute.name}'s scale {attribute.min_value}-{attribute.max_value}",
                    path=w.path, line=line, field=rating.field,
                )
        for pair in item.gold_pairs:
            line = pair.line or w.line
            s = pair.strength
            if isinstance(s, bool) or not isinstance(s, int):
                raise ImportFileError(f"a gold strength must be an integer, got {s!r:.60}", path=w.path, line=line, field=pair.field)
            if not lo <= s <= hi:
                raise ImportFileError(f"gold strength {s} is outside project {project.name!r}'s scale {lo}..{hi}", path=w.path, line=line, field=pair.field)


def _gold(
    parsed: ParsedImport, item_ids: dict[str, int], response_ids: dict[tuple[str, str], int], pair_ids: PairIds
) -> dict[str, int]:
    """Write the known answers: a re-import sets them again (the file is the answer key), an
    item the file gives none keeps its own. Returns how many the files named."""
    by_role: dict[str, list[int]] = {}
    for item in parsed.items.values():
        if item.role != "task":
            by_role.setdefault(item.role, []).append(item_ids[item.external_id])
    for role, ids in by_role.items():
        # An item that exists keeps its row (ON CONFLICT DO NOTHING); a file that now says it
        # is a check (a re-import with a gold share) makes it one.
        Item.objects.filter(pk__in=ids).exclude(role=role).update(role=role)
    ratings: dict[int, dict[str, int]] = {}
    strengths: dict[int, int] = {}
    for item in parsed.items.values():
        for rating in item.gold_ratings:
            known = ratings.setdefault(response_ids[(item.external_id, rating.response)], {})
            known[rating.attribute] = cast(int, rating.value)
        for gold in item.gold_pairs:
            a, b = gold.pair
            ref = pair_ids.get((item.external_id, a, b))
            flip = False
            if ref is None:  # named against the other order than the file's pairs list
                ref, flip = pair_ids[(item.external_id, b, a)], True
            pair_id, mirrored = ref
            strength = cast(int, gold.strength)
            strengths[pair_id] = -strength if mirrored != flip else strength
    responses = list(Response.objects.filter(pk__in=list(ratings)).only("pk", "gold_ratings"))
    for response in responses:
        response.gold_ratings = ratings[response.pk]
    Response.objects.bulk_update(responses, ["gold_ratings"], batch_size=BATCH)
    pairs = list(Pair.objects.filter(pk__in=list(strengths)).only("pk", "gold_strength"))
    for pair in pairs:
        pair.gold_strength = strengths[pair.pk]
    Pair.objects.bulk_update(pairs, ["gold_strength"], batch_size=BATCH)
    return {"gold_ratings": sum(len(v) for v in ratings.values()), "gold_pairs": len(strengths)}


# Tables a bulk import fills, by _counts' keys.
_TABLES = {"items": Item, "responses": Response, "pairs": Pair, "ratings": Rating, "preferences": Preference}
# Rows written to a table, and its share of the table's rows before, from which its statistics are
# refreshed at once: autovacuum's 10% (its default analyze scale factor), without its wait, and
# not for the small imports it would pick up soon anyway (its floor is 50 rows; ours 1,000).
ANALYZE_MIN_ROWS = 1_000
ANALYZE_SHARE = 0.1


def _refresh_statistics(written: dict[str, int]) -> None:
    """ANALYZE the tables this import grew by a tenth or more (PostgreSQL only). Until autovacuum
    gets to them (a minute or more later), the planner reads a fresh table as nearly empty: right
    after importing 1M annotations the report page's human-labels query chose nested loops and
    took 21.3 s, and 0.11 s once analyzed (measured here)."""
    if connection.vendor != "postgresql":
        return
    tables = {model._meta.db_table: written.get(key, 0) for key, model in _TABLES.items()
              if written.get(key, 0) >= ANALYZE_MIN_ROWS}  # fmt: skip
    if not tables:
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname, reltuples FROM pg_class WHERE relname = ANY(%s)", [list(tables)])
        known = {name: max(float(rows), 0.0) for name, rows in cursor.fetchall()}  # -1: never analyzed
        for table, rows in tables.items():
            if rows >= ANALYZE_SHARE * known.get(table, 0.0):
                cursor.execute(f'ANALYZE "{table}"')  # names from the models, not from input


def _counts(project: Project) -> dict[str, int]:
    return {
        "items": Item.objects.filter(project=project).count(),
        "responses": Response.objects.filter(item__project=project).count(),
        "pairs": Pair.objects.filter(item__project=project).count(),
        "ratings": Rating.objects.filter(response__item__project=project).count(),
        "preferences": Preference.objects.filter(pair__item__project=project).count(),
    }


def _raters(project: Project, declared: dict[RaterKey, str], ids: dict[RaterKey, int]) -> None:
    """The project's own raters for the file's "kind:name" labels (annotate.access), added to
    `ids`: an imported "human:alice" is never the user alice's rater, another project's, or a
    real judge's. A rater an earlier batch found is looked up again only to set its model."""
    for (kind, name), model in declared.items():
        if (kind, name) in ids and not model:
            continue
        rater, created = Rater.objects.get_or_create(
            kind=kind, name=name, project=project, defaults={"model": model}
        )
        if not created and model and rater.model != model:
            rater.model = model
            rater.save(update_fields=["model"])
        ids[(kind, name)] = rater.pk


def _chunks(values: list, size: int = BATCH) -> Iterable[list]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _column(model: type[models.Model], name: str) -> models.Field:
    # The importer's columns are concrete fields, never reverse relations.
    return cast(models.Field, model._meta.get_field(name))


def _select(model: type[models.Model], columns: list[str], key: str, values: list, project: int | None = None) -> list[tuple]:
    """The `columns` of the rows whose `key` is one of `values` (and of `project`, for items).
    On PostgreSQL the values travel as one array parameter (`= ANY(%s)`): the ORM's `__in`
    compiles one placeholder per value, which cost as much as the import's inserts."""
    if not values:
        return []
    if connection.vendor != "postgresql":
        found: list[tuple] = []
        scope = {"project_id": project} if project is not None else {}
        for chunk in _chunks(values):
            found += model._default_manager.filter(**{f"{key}__in": chunk}, **scope).values_list(*columns)
        return found
    table = model._meta.db_table
    quoted = ", ".join(f'"{_column(model, c).column}"' for c in columns)
    sql = f'SELECT {quoted} FROM "{table}" WHERE "{_column(model, key).column}" = ANY(%s)'
    params: list[Any] = [values]
    if project is not None:
        sql += ' AND "project_id" = %s'
        params.append(project)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _insert_rows(model: type[models.Model], columns: list[str], rows: list[tuple]) -> None:
    """Insert rows, skipping any that hit a unique constraint (that is what makes a re-import
    a no-op). On PostgreSQL the rows travel by COPY into a staging table and one
    INSERT ... SELECT ... ON CONFLICT DO NOTHING: the ORM's per-value SQL compilation was
    most of the import time."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        attnames = [_column(model, name).attname for name in columns]
        for chunk in _chunks(rows):
            model._default_manager.bulk_create([model(**dict(zip(attnames, row, strict=True))) for row in chunk], ignore_conflicts=True)
        return
    from psycopg.types.json import Jsonb

    meta = model._meta
    table = meta.db_table
    db_columns = [_column(model, name).column for name in columns]
    json_at = [i for i, name in enumerate(columns) if isinstance(meta.get_field(name), models.JSONField)]
    stamps = [f.column for f in meta.concrete_fields if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)]
    quoted = ", ".join(f'"{c}"' for c in db_columns)
    with connection.cursor() as wrapper:
        cursor = wrapper.cursor
        cursor.execute(f'CREATE TEMP TABLE "_stage_{table}" AS SELECT {quoted} FROM "{table}" WITH NO DATA')
        with cursor.copy(f'COPY "_stage_{table}" ({quoted}) FROM STDIN') as copy:
            for row in rows:
                if json_at:
                    # None is SQL NULL (an item without a conversation), not the JSON value null.
                    row = tuple(Jsonb(v) if i in json_at and v is not None else v for i, v in enumerate(row))
                copy.write_row(row)
        stamp_cols = "".join(f', "{c}"' for c in stamps)
        stamp_vals = ", now()" * len(stamps)
        cursor.execute(
            f'INSERT INTO "{table}" ({quoted}{stamp_cols}) SELECT {quoted}{stamp_vals} FROM "_stage_{table}" '
            "ON CONFLICT DO NOTHING"
        )
        cursor.execute(f'DROP TABLE "_stage_{table}"')


def _items(project: Project, parsed: ParsedImport) -> dict[str, int]:
    rows = [(project.pk, s.external_id, s.prompt, s.context, s.metadata, s.role, s.conversation)
            for s in parsed.items.values() if not s.written]
    _insert_rows(Item, ["project", "external_id", "prompt", "context", "metadata", "role", "conversation"], rows)
    return dict(_select(Item, ["external_id", "id"], "external_id", list(parsed.items), project=project.pk))


def _checklists(parsed: ParsedImport, item_ids: dict[str, int]) -> None:
    """Imported checklist questions, for items that have none yet: a re-import adds nothing, and
    a checklist a researcher has edited since is not overwritten."""
    wanted = {item_ids[s.external_id]: s.checklist for s in parsed.items.values() if s.checklist}
    if not wanted:
        return
    have = set(ChecklistQuestion.objects.filter(item_id__in=list(wanted)).values_list("item_id", flat=True).distinct())
    ChecklistQuestion.objects.bulk_create([
        ChecklistQuestion(item_id=item_id, text=text, position=i, source=ChecklistQuestion.Source.IMPORTED)
        for item_id, questions in wanted.items() if item_id not in have for i, text in enumerate(questions)
    ], batch_size=BATCH)


def _responses(parsed: ParsedImport, item_ids: dict[str, int]) -> dict[tuple[str, str], int]:
    rows = [
        (item_ids[i.external_id], r.external_id, r.text, r.model)
        for i in parsed.items.values() for r in i.responses.values()
    ]
    _insert_rows(Response, ["item", "external_id", "text", "model"], rows)
    # Every response of the batch's items, also those an earlier batch or import wrote (a csv
    # item continued here pairs its new responses with them).
    by_item_id = {pk: ext for ext, pk in item_ids.items()}
    found: dict[tuple[str, str], int] = {}
    for item_pk, ext, pk in _select(Response, ["item", "external_id", "id"], "item", list(by_item_id)):
        found[(by_item_id[item_pk], ext)] = pk
    return found


# (item external id, response a, response b) as the file names it -> (pair id, mirrored): a
# file may name a pair in the order opposite to the stored one (or name both orders); a pair
# is unordered, so that is the same pair, and its strengths are negated to the stored order.
PairIds = dict[tuple[str, str, str], tuple[int, bool]]


def _pairs(parsed: ParsedImport, item_ids: dict[str, int], response_ids: dict[tuple[str, str], int]) -> tuple[PairIds, int]:
    """Insert the batch's pairs; returns the ids of the pairs it names (its pairs and those its
    gold names) and how many distinct pairs it has."""
    named: dict[tuple[int, int], tuple[str, str, str]] = {}
    rows: list[tuple[int, int, int]] = []
    listed: set[tuple[str, str, str]] = set()
    for item in parsed.items.values():
        ids = list(item.responses)
        refs = item.pairs if item.pairs is not None else [(a, b) for i, a in enumerate(ids) for b in ids[i + 1 :]]
        for a, b in refs:
            key = (response_ids[(item.external_id, a)], response_ids[(item.external_id, b)])
            named[key] = (item.external_id, a, b)
            listed.add((item.external_id, a, b))
        for gold in item.gold_pairs:  # a pair a csv item's earlier batch wrote
            a, b = gold.pair
            named.setdefault((response_ids[(item.external_id, a)], response_ids[(item.external_id, b)]), (item.external_id, a, b))
        for a, b in unordered_pairs(refs):
            rows.append((item_ids[item.external_id], response_ids[(item.external_id, a)], response_ids[(item.external_id, b)]))
    # ON CONFLICT DO NOTHING on the unordered unique index: a pair stored in either order stays.
    _insert_rows(Pair, ["item", "response_a", "response_b"], rows)
    found: PairIds = {}
    for a_pk, b_pk, pk in _select(Pair, ["response_a", "response_b", "id"], "item", list(item_ids.values())):
        ref = named.get((a_pk, b_pk))
        if ref is not None:
            found[ref] = (pk, False)
        mirror = named.get((b_pk, a_pk))
        if mirror is not None:
            found[mirror] = (pk, True)
    return found, len({found[ref][0] for ref in listed if ref in found})


def _ratings(parsed: ParsedImport, raters: dict[RaterKey, int], attributes: dict[str, Attribute], response_ids: dict) -> None:
    rows = [
        (raters[r.rater], response_ids[(r.item, r.response)], attributes[r.attribute].pk, r.value)
        for r in parsed.ratings
    ]
    # The unique constraint (rater, response, attribute) makes a re-import a no-op.
    _insert_rows(Rating, ["rater", "response", "attribute", "value"], rows)


def _preferences(project: Project, parsed: ParsedImport, raters: dict[RaterKey, int], pair_ids: PairIds) -> None:
    verdict_only = is_verdict_only(ranking_scale=project.ranking_scale)
    rows = []
    for p in parsed.preferences:
        pair_id, mirrored = pair_ids[(p.item, *p.pair)]
        strength, shown = p.strength, p.shown_order
        if mirrored:
            # The same judgement about the stored pair: the response shown first is unchanged.
            strength, shown = -cast(int, strength), SWAPPED_ORDER[shown]
        rows.append((raters[p.rater], p.rater[0], pair_id, strength, shown, p.justification, verdict_only))
    columns = ["rater", "rater_kind", "pair", "strength", "shown_order", "justification", "verdict_only"]
    _insert_rows(Preference, columns, rows)
