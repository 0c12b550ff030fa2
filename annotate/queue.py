"""The annotator task queue: claim, submit, skip, undo.

A task is one response to rate or one pair to rank. Claiming is a race between annotators, won
on PostgreSQL by `SELECT ... FOR UPDATE SKIP LOCKED` on the task row (so two annotators never
wait on each other for the same task) plus a recount of its live assignments *after* the lock is
held: the count in the locking statement was read from a snapshot taken before the lock, which a
claim committed in between would not be in. The unique constraints on Assignment are the last
word against one annotator holding a task twice.

The page views and the REST API both call these functions; annotations themselves are stored by
`annotate.services.ratings_submit` / `preference_submit`, the same path judges and importers use.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from django.contrib.auth.models import Group, User
from django.db import connection, transaction
from django.db.models import Exists, F, Func, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from . import compiled
from .audit import audit_record, audit_snapshot
from .checklists import CHECKLIST_ATTRIBUTE, has_live_questions, mark_none_live
from .errors import ConcordanceError, ValidationError
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
    ShownOrder,
)
from .routing_services import policy_of, routed_candidates, routing_refresh, routing_room
from .services import preference_submit, ratings_submit, validate_strength
from .verdicts import stored_strength

RATING = Assignment.Protocol.RATING
RANKING = Assignment.Protocol.RANKING
CLAIMED = Assignment.Status.CLAIMED
DONE = Assignment.Status.DONE
SKIPPED = Assignment.Status.SKIPPED
EXPIRED = Assignment.Status.EXPIRED

# The candidate walk starts at the project's first task (_candidates); False only for
# bench/annotate_load.py's naive-vs-ours comparison.
START_AT_PROJECT = True

# How many locked-then-found-full candidates one claim tries before moving to the next pool;
# only a task filled between the snapshot and the lock is ever rejected, so a few suffice.
CLAIM_ATTEMPTS = 8

SKIP_REASONS: dict[str, str] = {
    "unsure": "I can't judge this",
    "broken": "Broken or empty content",
    "offensive": "Offensive or harmful content",
    "other": "Other",
}


class QueueError(ConcordanceError):
    """A queue request that cannot be honoured; the message is shown to the annotator."""


class AssignmentNotFound(QueueError):
    pass


class AssignmentStale(QueueError):
    """The task view is no longer this annotator's to submit (expired and taken, skipped, undone)."""


@dataclass(frozen=True)
class SubmitResult:
    assignment: Assignment
    duplicate: bool

    @property
    def message(self) -> str:
        if self.duplicate:
            return "This task was already saved; it was stored once."
        return "Saved."


@dataclass(frozen=True)
class Progress:
    rater_done: int
    rater_target: int
    project_done: int
    project_target: int

    @staticmethod
    def percent(done: int, target: int) -> int:
        return 100 if target <= 0 else min(100, round(100 * done / target))

    @property
    def rater_percent(self) -> int:
        return self.percent(self.rater_done, self.rater_target)

    @property
    def project_percent(self) -> int:
        return self.percent(self.project_done, self.project_target)


def live_assignments_q(*, now: datetime) -> Q:
    """Assignments that hold a slot of a task's overlap: done, or claimed and not yet expired.

    Skipped and expired ones give their slot back to the pool.

    Written as `status IN (done, claimed) AND (done OR not yet expired)`, the same set as
    `done OR (claimed AND not expired)`: with the task's id beside it, PostgreSQL answers that
    from one probe of the (task, status, expires_at) index. The plain OR form was planned as a
    BitmapOr whose second arm scans every claim in the table (status, expires_at), dead index
    entries of submitted claims included, for each candidate a claim looks at: 11 ms a claim
    after 1,000 submits, growing until autovacuum ran (bench/annotate_load.py)."""
    return Q(status__in=[DONE, CLAIMED]) & (Q(status=DONE) | Q(expires_at__gt=now))


def _task_filter(protocol: str, task_id: int) -> dict[str, int]:
    return {"response_id": task_id} if protocol == RATING else {"pair_id": task_id}


def _live_count(*, protocol: str, task_id: int, now: datetime, exclude_pk: int | None = None) -> int:
    qs = Assignment.objects.filter(**_task_filter(protocol, task_id)).filter(live_assignments_q(now=now))
    if exclude_pk is not None:
        qs = qs.exclude(pk=exclude_pk)
    return qs.count()


def _is_capped(*, protocol: str, task_id: int) -> bool:
    """Gold and attention tasks go to every annotator; only regular tasks stop at the overlap."""
    model = Response if protocol == RATING else Pair
    role = model.objects.filter(pk=task_id).values_list("item__role", flat=True).first()
    return role == Item.Role.TASK


def _lock_task(*, protocol: str, task_id: int) -> None:
    model = Response if protocol == RATING else Pair
    # A blocking lock: the caller already holds this task and only needs the recount to be exact.
    list(model.objects.select_for_update().filter(pk=task_id).values_list("pk", flat=True))


def _task_id(assignment: Assignment) -> int:
    return assignment.response_id if assignment.protocol == RATING else assignment.pair_id  # type: ignore[return-value]


def _candidates(
    *, project: Project, rater: Rater, protocol: str, role: str, now: datetime, items: QuerySet | None
) -> QuerySet:
    qs = _unrouted_candidates(
        project_id=project.pk, rater_id=rater.pk, overlap=project.overlap, protocol=protocol, role=role, now=now,
        items=items,
    )
    if protocol == RANKING and role == Item.Role.TASK:
        qs = routed_candidates(qs, project=project, now=now)  # a routing policy's priority (issue 13)
    return qs


def _unrouted_candidates(
    *, project_id: int, rater_id: int, overlap: int, protocol: str, role: str, now: datetime, items: QuerySet | None
) -> QuerySet:
    if protocol == RATING:
        qs: QuerySet = Response.objects.filter(item__project_id=project_id, item__role=role)
        mine = Assignment.objects.filter(rater_id=rater_id, response=OuterRef("pk"))
        live = Assignment.objects.filter(response=OuterRef("pk")).filter(live_assignments_q(now=now))
    else:
        qs = Pair.objects.filter(item__project_id=project_id, item__role=role)
        mine = Assignment.objects.filter(rater_id=rater_id, pair=OuterRef("pk"))
        live = Assignment.objects.filter(pair=OuterRef("pk")).filter(live_assignments_q(now=now))
    if items is not None:
        qs = qs.filter(item__in=items)
    qs = qs.filter(~Exists(mine))
    if role == Item.Role.TASK:
        # Cheap pre-filter: a task whose overlap-th live assignment exists is full. The exact
        # check is the recount under the lock.
        qs = qs.filter(~Exists(live.order_by().values("pk")[overlap - 1 : overlap]))
    # Where the project's tasks start: the same rows, but PostgreSQL's walk of the id index
    # begins at this project's first task instead of the first task of the whole table (it
    # tests each row's overlap before its project, so every earlier project's open tasks were
    # probed on every claim: 29 ms a claim behind one other project of 1,200 responses).
    if START_AT_PROJECT:
        model = Response if protocol == RATING else Pair
        first = model.objects.filter(item__project_id=project_id).order_by().annotate(first=Func(F("pk"), function="MIN"))
        qs = qs.filter(pk__gte=Subquery(first.values("first")[:1]))
    # Lowest id first fills tasks depth-first, so finished tasks reach the reports early.
    return qs.order_by("pk")


def _locked_candidate_qs(qs: QuerySet, protocol: str) -> QuerySet:
    # skip_locked: a task another annotator is claiming right now is passed over, not waited on.
    # The task comes with what its page shows (TASK_RELATED): no second query to load it.
    return (
        qs.select_related(*TASK_RELATED[protocol]).annotate(has_checklist=has_live_questions())
        .select_for_update(skip_locked=True, of=("self",))[:1]
    )


def _first_candidate(
    *, project: Project, rater: Rater, protocol: str, role: str, now: datetime, items: QuerySet | None,
    tried: list[int],
) -> Response | Pair | None:
    """The first open candidate, locked. The common shape (the main queue's first attempt, no
    routing policy) runs as SQL compiled once per process (annotate.compiled): building and
    compiling this query through the ORM cost more CPU than PostgreSQL took to run it."""
    routed = protocol == RANKING and role == Item.Role.TASK and policy_of(project) is not None
    if items is None and not tried and not routed:
        def build(project_id: int, rater_id: int, now: datetime) -> QuerySet:
            return _locked_candidate_qs(_unrouted_candidates(
                project_id=project_id, rater_id=rater_id, overlap=project.overlap, protocol=protocol, role=role,
                now=now, items=None,
            ), protocol)

        key = ("claim_candidate", protocol, role, project.overlap, START_AT_PROJECT)
        return compiled.first(key, build, project_id=project.pk, rater_id=rater.pk, now=now)  # type: ignore[return-value]
    qs = _candidates(project=project, rater=rater, protocol=protocol, role=role, now=now, items=items)
    if tried:
        qs = qs.exclude(pk__in=tried)
    return _locked_candidate_qs(qs, protocol).first()


# What a task page or payload reads of a task, loaded with it in one query (the claim's candidate,
# the open claim resumed): a rating's response and item, a ranking's pair, item and both responses.
TASK_RELATED: dict[str, tuple[str, ...]] = {RATING: ("item",), RANKING: ("item", "response_a", "response_b")}
ASSIGNMENT_TASK_RELATED = ("response__item", "pair__item", "pair__response_a", "pair__response_b")


def _insert_claim(
    *, project: Project, rater: Rater, protocol: str, task_id: int, shown_order: str, now: datetime,
    training: bool, capped: bool,
) -> tuple[int, datetime, uuid.UUID] | None:
    """Insert the claim and return (id, claimed_at, view_key), or None where the task is full or
    the annotator already holds it; in one statement, where the ORM took four (the recount, a
    savepoint, the insert, its release).

    The recount is this statement's own subquery: it runs after the candidate query locked the
    task row, on a snapshot taken now (READ COMMITTED: one per statement), so it sees every claim
    committed before the lock, which the candidate query's snapshot may not have (any path that
    adds a live assignment to a task locks its row first). ON CONFLICT DO NOTHING answers the
    unique constraints (one claim per annotator and task) with no row instead of an error that
    would need a savepoint to survive."""
    table = Assignment._meta.db_table
    fields = {f.name: f for f in Assignment._meta.concrete_fields}
    claimed_at, view_key = timezone.now(), uuid.uuid4()
    values = {
        "project": project.pk, "rater": rater.pk, "protocol": protocol,
        "response": task_id if protocol == RATING else None, "pair": task_id if protocol == RANKING else None,
        "status": CLAIMED, "shown_order": shown_order, "view_key": view_key, "training": training,
        "skip_reason": "", "draft": None, "time_on_task_ms": None, "claimed_at": claimed_at,
        "expires_at": now + timedelta(seconds=project.claim_seconds), "completed_at": None,
    }
    columns = ", ".join(connection.ops.quote_name(cast(str, fields[name].column)) for name in values)
    params: list = [fields[name].get_db_prep_save(value, connection) for name, value in values.items()]
    room = "1 = 1"
    if capped:
        task_column = connection.ops.quote_name(cast(str, fields["response" if protocol == RATING else "pair"].column))
        # live_assignments_q, as SQL: done, or claimed and not yet expired.
        room = (f"(SELECT COUNT(*) FROM {table} WHERE {task_column} = %s AND status IN (%s, %s) "
                f"AND (status = %s OR expires_at > %s)) < %s")
        params += [task_id, DONE, CLAIMED, DONE, fields["expires_at"].get_db_prep_save(now, connection), project.overlap]
    sql = (f"INSERT INTO {table} ({columns}) SELECT {', '.join(['%s'] * len(values))} WHERE {room} "
           f"ON CONFLICT DO NOTHING RETURNING id")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else (int(row[0]), claimed_at, view_key)


def _claim_from(
    *,
    project: Project,
    rater: Rater,
    protocol: str,
    role: str,
    now: datetime,
    rng: random.Random,
    items: QuerySet | None = None,
    training: bool = False,
) -> Assignment | None:
    tried: list[int] = []
    for _ in range(CLAIM_ATTEMPTS):
        with transaction.atomic():
            task: Any = _first_candidate(
                project=project, rater=rater, protocol=protocol, role=role, now=now, items=items, tried=tried
            )
            if task is None:
                return None
            if not task.has_checklist:
                mark_none_live(task.item)
            if protocol == RANKING and role == Item.Role.TASK and not routing_room(project=project, pair_id=task.pk, now=now):
                tried.append(task.pk)  # closed by its routing policy, or a label already in hand
                continue
            shown_order = rng.choice([ShownOrder.AB, ShownOrder.BA]) if protocol == RANKING else ShownOrder.AB
            inserted = _insert_claim(
                project=project, rater=rater, protocol=protocol, task_id=task.pk, shown_order=shown_order, now=now,
                training=training, capped=role == Item.Role.TASK,
            )
            if inserted is None:
                # Filled between the candidate query's snapshot and the lock, or the same annotator
                # claimed it in another tab a moment ago.
                tried.append(task.pk)
                continue
            pk, claimed_at, view_key = inserted
            assignment = Assignment(
                pk=pk, project=project, rater=rater, protocol=protocol, status=CLAIMED, shown_order=shown_order,
                view_key=view_key, training=training, skip_reason="", draft=None, time_on_task_ms=None,
                claimed_at=claimed_at, expires_at=now + timedelta(seconds=project.claim_seconds), completed_at=None,
                **{("response" if protocol == RATING else "pair"): task},
            )
            assignment._state.adding = False
            assignment._state.db = connection.alias
            return assignment
    return None


def _resume_open_claim(*, project: Project, rater: Rater, now: datetime) -> Assignment | None:
    """The annotator's open task, if any: a reload or a second tab shows the same task.

    An expired claim is renewed when the task still has room, else given up for good (the
    annotator has seen it, so it is never served to them again)."""
    # A plain query, its task loaded only when there is an open claim (assignment_with_task): on
    # the common path, a claim right after a submit, there is none, and the joins of the task's
    # rows cost more CPU to compile than the second query they would save on a reload.
    def build(project_id: int, rater_id: int) -> QuerySet:
        return Assignment.objects.filter(project_id=project_id, rater_id=rater_id, status=CLAIMED).order_by(
            "-claimed_at", "-pk"
        )

    # The common answers, none or a live one, from the newest open claim (SQL compiled once per
    # process: annotate.compiled); an expired one sends the walk below through them all.
    newest = compiled.first(("open_claim",), lambda **ids: build(**ids)[:1], project_id=project.pk, rater_id=rater.pk)
    if newest is None:
        return None
    if cast(Assignment, newest).expires_at > now:
        return cast(Assignment, newest)
    for assignment in build(project_id=project.pk, rater_id=rater.pk):
        if assignment.expires_at > now:
            return assignment
        with transaction.atomic():
            task_id = _task_id(assignment)
            _lock_task(protocol=assignment.protocol, task_id=task_id)
            room = not _is_capped(protocol=assignment.protocol, task_id=task_id) or (
                _live_count(protocol=assignment.protocol, task_id=task_id, now=now, exclude_pk=assignment.pk)
                < project.overlap
            )
            if room:
                assignment.expires_at = now + timedelta(seconds=project.claim_seconds)
                assignment.save(update_fields=["expires_at"])
                return assignment
            assignment.status = EXPIRED
            assignment.save(update_fields=["status"])
    return None


def _protocols(project: Project, rng: random.Random) -> list[str]:
    protocols: list[str] = [p for p, used in ((RATING, project.uses_rating), (RANKING, project.uses_ranking)) if used]
    rng.shuffle(protocols)
    return protocols


def _roles(project: Project, rng: random.Random) -> list[str]:
    """Gold and attention tasks at the project's rates; regular tasks otherwise and as fallback.

    Checks only ever come mixed in: when the regular pool is empty the annotator is done."""
    draw = rng.random()
    if draw < project.gold_rate:
        return [Item.Role.GOLD, Item.Role.TASK]
    if draw < project.gold_rate + project.attention_rate:
        return [Item.Role.ATTENTION, Item.Role.TASK]
    return [Item.Role.TASK]


def assignment_claim_next(
    *, project: Project, rater: Rater, now: datetime | None = None, rng: random.Random | None = None
) -> Assignment | None:
    """The annotator's next task in the project, claimed for `project.claim_seconds`; None when done."""
    now = now or timezone.now()
    rng = rng or random.Random()
    resumed = _resume_open_claim(project=project, rater=rater, now=now)
    if resumed is not None:
        return resumed
    protocols = _protocols(project, rng)
    roles = _roles(project, rng)
    if project.same_rater_both_protocols and project.uses_rating and project.uses_ranking:
        # Finish the items this annotator has started under the other protocol first, so each
        # item gets ratings and a ranking from the same person (within-rater consistency).
        mine = Assignment.objects.filter(rater=rater, project=project, status__in=[DONE, CLAIMED])
        touched = Item.objects.filter(project=project).filter(
            Exists(mine.filter(response__item=OuterRef("pk"))) | Exists(mine.filter(pair__item=OuterRef("pk")))
        ).values("pk")
        for protocol in protocols:
            for item_role in (Item.Role.TASK, Item.Role.GOLD, Item.Role.ATTENTION):
                claimed = _claim_from(
                    project=project, rater=rater, protocol=protocol, role=item_role, now=now, rng=rng, items=touched
                )
                if claimed is not None:
                    return claimed
    for role in roles:
        for protocol in protocols:
            claimed = _claim_from(project=project, rater=rater, protocol=protocol, role=role, now=now, rng=rng)
            if claimed is not None:
                return claimed
    return None


def assignment_claim_training(
    *, project: Project, rater: Rater, now: datetime | None = None, rng: random.Random | None = None
) -> Assignment | None:
    """The annotator's next training-round task (a gold task, marked training); None when the
    project has no gold left for them. annotate.training decides when to call it."""
    now = now or timezone.now()
    rng = rng or random.Random()
    resumed = _resume_open_claim(project=project, rater=rater, now=now)
    if resumed is not None:
        return resumed
    for protocol in _protocols(project, rng):
        claimed = _claim_from(project=project, rater=rater, protocol=protocol, role=Item.Role.GOLD, now=now, rng=rng, training=True)
        if claimed is not None:
            return claimed
    return None


def _lock_assignment(*, rater: Rater, view_key: uuid.UUID | str) -> Assignment:
    try:
        key = uuid.UUID(str(view_key))
    except ValueError as exc:
        raise AssignmentNotFound("This task link is not valid.") from exc
    def build(view_key: uuid.UUID, rater_id: int) -> QuerySet:
        return (
            Assignment.objects.select_for_update(of=("self",))
            .select_related("project__routing_policy", "response__item", "pair__item__project__routing_policy")
            .filter(view_key=view_key, rater_id=rater_id)
            .order_by("pk")[:1]
        )

    # Every submit's first query: SQL compiled once per process (annotate.compiled).
    assignment = cast(Assignment | None, compiled.first(("lock_assignment",), build, view_key=key, rater_id=rater.pk))
    if assignment is None:
        raise AssignmentNotFound("This task view is no longer current (it may have been undone). Here is your current task.")
    return assignment


def _ensure_held(*, assignment: Assignment, now: datetime) -> None:
    if assignment.status == SKIPPED:
        raise AssignmentStale("You skipped this task, so it was not saved.")
    if assignment.status == EXPIRED or assignment.expires_at <= now:
        # Late but not lost: accept it if the task still has room, counted under its lock.
        task_id = _task_id(assignment)
        _lock_task(protocol=assignment.protocol, task_id=task_id)
        if _is_capped(protocol=assignment.protocol, task_id=task_id) and (
            _live_count(protocol=assignment.protocol, task_id=task_id, now=now, exclude_pk=assignment.pk)
            >= assignment.project.overlap
        ):
            assignment.status = EXPIRED
            assignment.save(update_fields=["status"])
            raise AssignmentStale(
                "This task timed out and went to other annotators, so it was not saved. Here is a new one."
            )


def _time_ms(*, assignment: Assignment, time_on_task_ms: int | None, now: datetime) -> int:
    """The client's measure of visible time when it sent one; else time since the claim."""
    if time_on_task_ms is not None and 0 <= time_on_task_ms < 24 * 3600 * 1000:
        return int(time_on_task_ms)
    return max(0, int((now - assignment.claimed_at).total_seconds() * 1000))


def _finish(*, assignment: Assignment, time_ms: int, now: datetime) -> None:
    assignment.status = DONE
    assignment.completed_at = now
    assignment.time_on_task_ms = time_ms
    assignment.draft = None
    assignment.save(update_fields=["status", "completed_at", "time_on_task_ms", "draft"])


def assignment_submit_rating(
    *,
    rater: Rater,
    view_key: uuid.UUID | str,
    values: dict[str, int],
    time_on_task_ms: int | None = None,
    now: datetime | None = None,
    project: Project | None = None,
) -> SubmitResult:
    """Store the ratings of a rating task. A replay of the same view stores nothing new.

    `project`: the caller's project with its attributes prefetched (the page view has them), read
    instead of querying them again when the task is of that project."""
    now = now or timezone.now()
    with transaction.atomic():
        # The row lock serialises a double submit: the second waits, then sees DONE.
        assignment = _lock_assignment(rater=rater, view_key=view_key)
        if assignment.status == DONE:
            return SubmitResult(assignment=assignment, duplicate=True)
        if assignment.protocol != RATING:
            raise ValidationError("This task asks for a ranking, not ratings.", field="protocol")
        _ensure_held(assignment=assignment, now=now)
        response = assignment.response
        assert response is not None
        # The checklist attribute is no scale to fill in: its value is the checklist's score
        # (annotate.checklists), given by the view when the item has a checklist.
        attributes = _attributes_of(assignment, project)
        missing = [a.name for a in attributes if a.name not in values and a.name != CHECKLIST_ATTRIBUTE]
        if missing:
            raise ValidationError(f"Please rate {', '.join(missing)}.", field=missing[0])
        time_ms = _time_ms(assignment=assignment, time_on_task_ms=time_on_task_ms, now=now)
        ratings_submit(rater=rater, response=response, values=values, time_on_task_ms=time_ms, attributes=attributes)
        _finish(assignment=assignment, time_ms=time_ms, now=now)
    return SubmitResult(assignment=assignment, duplicate=False)


def _attributes(project_id: int) -> list[Attribute]:
    """The project's attributes, in their order; the query compiled once per process (annotate.compiled)."""
    return cast(list[Attribute], compiled.many(
        ("attributes",), lambda project_id: Attribute.objects.filter(project_id=project_id), project_id=project_id
    ))


def prefetch_attributes(project: Project) -> None:
    """`prefetch_related_objects([project], "attributes")`, its query compiled once per process
    (annotate.compiled): the task pages read the attributes several times a request."""
    attributes = _attributes(project.pk)
    for attribute in attributes:
        attribute.project = project  # as the prefetch sets the reverse relation: no query to read it
    cached = project.attributes.all()
    cached._result_cache = attributes
    cached._prefetch_done = True  # type: ignore[attr-defined]
    project.__dict__.setdefault("_prefetched_objects_cache", {})["attributes"] = cached


def _attributes_of(assignment: Assignment, project: Project | None) -> list[Attribute]:
    if project is not None and project.pk == assignment.project_id and "attributes" in getattr(
        project, "_prefetched_objects_cache", {}
    ):
        return list(project.attributes.all())
    return _attributes(assignment.project_id)


def assignment_submit_preference(
    *,
    rater: Rater,
    view_key: uuid.UUID | str,
    shown_strength: int,
    justification: str = "",
    time_on_task_ms: int | None = None,
    now: datetime | None = None,
) -> SubmitResult:
    """Store the preference of a ranking task; `shown_strength` < 0 means the left/first shown is better."""
    now = now or timezone.now()
    with transaction.atomic():
        assignment = _lock_assignment(rater=rater, view_key=view_key)
        if assignment.status == DONE:
            return SubmitResult(assignment=assignment, duplicate=True)
        if assignment.protocol != RANKING:
            raise ValidationError("This task asks for ratings, not a ranking.", field="protocol")
        _ensure_held(assignment=assignment, now=now)
        project = assignment.project
        validate_strength(project=project, strength=shown_strength)
        justification = justification.strip()
        if abs(shown_strength) > project.justification_required_above and not justification:
            raise ValidationError("Please say briefly why one response is clearly better.", field="justification")
        pair = assignment.pair
        assert pair is not None
        time_ms = _time_ms(assignment=assignment, time_on_task_ms=time_on_task_ms, now=now)
        _, created = preference_submit(
            rater=rater, pair=pair,
            strength=stored_strength(shown_strength, assignment.shown_order),
            shown_order=assignment.shown_order, justification=justification, time_on_task_ms=time_ms,
        )
        _finish(assignment=assignment, time_ms=time_ms, now=now)
        if created and pair.item.role == Item.Role.TASK:
            routing_refresh(project=project, pair_ids=[pair.pk])  # the next label, or none (issue 13)
    return SubmitResult(assignment=assignment, duplicate=not created)


def assignment_skip(
    *, rater: Rater, view_key: uuid.UUID | str, reason: str, now: datetime | None = None
) -> Assignment:
    """Give a task back with a reason; it is never served to this annotator again."""
    reason = reason.strip()
    if not reason:
        raise ValidationError("Please give a reason for skipping.", field="reason")
    with transaction.atomic():
        assignment = _lock_assignment(rater=rater, view_key=view_key)
        if assignment.status == SKIPPED:
            return assignment
        if assignment.status == DONE:
            raise AssignmentStale("This task was already saved; press U to undo it instead.")
        assignment.status = SKIPPED
        assignment.skip_reason = reason[:2000]
        assignment.completed_at = now or timezone.now()
        assignment.save(update_fields=["status", "skip_reason", "completed_at"])
    return assignment


def assignment_undo(
    *, project: Project, rater: Rater, view_key: uuid.UUID | str | None = None, now: datetime | None = None
) -> Assignment:
    """Take back the annotator's newest submission in the project and hand its task back to them.

    Only the newest: undoing an older one would let an annotator revise answers after seeing
    later tasks, which the order of the data should not hide. The stored values come back as a
    draft, and the task gets a new view key so a replay of the old submit cannot re-store it."""
    now = now or timezone.now()
    with transaction.atomic():
        newest = (
            Assignment.objects.select_for_update(of=("self",))
            .filter(project=project, rater=rater, status=DONE)
            .order_by("-completed_at", "-pk")
            .first()
        )
        if newest is None:
            raise QueueError("There is nothing to undo.")
        if view_key is not None and str(newest.view_key) != str(view_key):
            raise QueueError("Only your newest submission can be undone.")
        if newest.training:
            # Its expected answer has been shown: a second try would pass every training task.
            raise QueueError("A training answer stays as given: you have seen its expected answer.")
        draft: dict
        # A rating assignment holds a response, a ranking assignment a pair.
        if newest.protocol == RATING:
            ratings = Rating.objects.filter(rater=rater, response_id=cast(int, newest.response_id)).select_related("attribute")
            draft = {r.attribute.name: r.value for r in ratings}
            for r in ratings:
                audit_record(action="rating.undo", obj=r, before=audit_snapshot(r), after=None)
            ratings.delete()
        else:
            preference = Preference.objects.filter(rater=rater, pair_id=cast(int, newest.pair_id)).first()
            draft = {}
            if preference is not None:
                shown = stored_strength(preference.strength, preference.shown_order)
                draft = {"shown_strength": shown, "justification": preference.justification}
                audit_record(action="preference.undo", obj=preference, before=audit_snapshot(preference), after=None)
                preference.delete()
                routing_refresh(project=project, pair_ids=[cast(int, newest.pair_id)])
        newest.status = CLAIMED
        newest.draft = draft
        newest.view_key = uuid.uuid4()
        newest.completed_at = None
        newest.claimed_at = now
        newest.expires_at = now + timedelta(seconds=project.claim_seconds)
        newest.save(update_fields=["status", "draft", "view_key", "completed_at", "claimed_at", "expires_at"])
    return newest


def assignment_release_claims(*, project: Project, rater: Rater, now: datetime | None = None) -> int:
    """Give back at once every task the annotator holds in the project (a study participant who
    returns, a member removed): their slots go back to the pool now, not when the claims time out.

    Released claims are marked expired, so the tasks are never served to this annotator again;
    nothing they submitted is touched. Returns how many were released."""
    now = now or timezone.now()
    with transaction.atomic():
        released = Assignment.objects.filter(project=project, rater=rater, status=CLAIMED).update(
            status=EXPIRED, expires_at=now
        )
    return released


def newest_done(*, project: Project, rater: Rater) -> Assignment | None:
    return (
        Assignment.objects.filter(project=project, rater=rater, status=DONE).order_by("-completed_at", "-pk").first()
    )


def task_slots(*, project: Project) -> int:
    """Human annotations the project wants in all: regular tasks times the overlap."""
    total = 0
    if project.uses_rating:
        total += Response.objects.filter(item__project=project, item__role=Item.Role.TASK).count()
    if project.uses_ranking:
        total += Pair.objects.filter(item__project=project, item__role=Item.Role.TASK).count()
    return total * project.overlap


def _progress_sql() -> str:
    tables = {
        "assignment": Assignment._meta.db_table, "response": Response._meta.db_table, "pair": Pair._meta.db_table,
        "item": Item._meta.db_table, "membership": Membership._meta.db_table,
        "user_groups": User.groups.through._meta.db_table, "group": Group._meta.db_table,
    }
    # Each count reads only the project's rows: the tasks from the project's items (index on
    # item (project, role), then each item's responses and pairs by their item index), the done
    # counts from the partial index of done main-queue assignments (assignment_done_main),
    # index-only. As one aggregate over the project's assignments with FILTER, the annotator's
    # count read every done assignment of the project on every page.
    return """
        SELECT
          (SELECT COUNT(*) FROM {item} i JOIN {response} r ON r.item_id = i.id
            WHERE i.project_id = %(project)s AND i.role = %(task)s),
          (SELECT COUNT(*) FROM {item} i JOIN {pair} x ON x.item_id = i.id
            WHERE i.project_id = %(project)s AND i.role = %(task)s),
          (SELECT COUNT(*) FROM {membership} m JOIN {user_groups} ug ON ug.user_id = m.user_id
             JOIN {group} g ON g.id = ug.group_id
            WHERE m.project_id = %(project)s AND g.name = 'annotator'),
          (SELECT COUNT(*) FROM {assignment} a
            WHERE a.project_id = %(project)s AND a.status = %(done)s AND NOT a.training),
          (SELECT COUNT(*) FROM {assignment} a
            WHERE a.project_id = %(project)s AND a.rater_id = %(rater)s AND a.status = %(done)s AND NOT a.training)
    """.format(**tables)


def progress_for(*, project: Project, rater: Rater) -> Progress:
    """Done / target for the annotator (a fair share of the project's slots) and the project.

    Every main-queue task counts, gold and attention checks included: a counter that stood
    still on a check would tell an attentive annotator which tasks are checks (issue 12). The
    targets grow by the share of checks mixed in, so they stay what a finished annotator reaches.
    Training-round tasks are announced as such and count in neither.

    The counter is on every task page and every submit's answer: one statement for the five
    counts (regular tasks of each protocol, the project's annotators, done main-queue tasks of
    the project and of the annotator), not five queries. Written as SQL because Django building
    the same five subqueries cost 4 ms of CPU per request, more than the database took to answer."""
    with connection.cursor() as cursor:
        cursor.execute(_progress_sql(), {"project": project.pk, "rater": rater.pk, "task": Item.Role.TASK, "done": DONE})
        responses, pairs, annotators_n, project_done, rater_done = cursor.fetchone()
    # task_slots(), from the counts above.
    slots = (responses * project.uses_rating + pairs * project.uses_ranking) * project.overlap
    tasks = slots // max(project.overlap, 1)
    annotators = max(1, annotators_n)
    checks_share = min(project.gold_rate + project.attention_rate, 0.9)
    rater_target = math.ceil(min(tasks, math.ceil(slots / annotators)) / (1 - checks_share))
    project_target = math.ceil(slots / (1 - checks_share))
    return Progress(
        rater_done=rater_done,
        rater_target=max(rater_target, rater_done),
        project_done=project_done,
        project_target=max(project_target, project_done),
    )


def _task_loaded(assignment: Assignment) -> bool:
    if assignment.protocol == RATING:
        if not Assignment.response.is_cached(assignment) or assignment.response is None:
            return False
        return Response.item.is_cached(assignment.response)
    pair = assignment.pair if Assignment.pair.is_cached(assignment) else None
    return pair is not None and all(getattr(Pair, name).is_cached(pair) for name in TASK_RELATED[RANKING])


def assignment_with_task(assignment: Assignment) -> Assignment:
    """The assignment with its task loaded in one query (response and item, or pair, item and
    both responses): what a task page or payload reads, instead of a query per relation. A claim
    or a resumed claim comes with its task already (_claim_from, _resume_open_claim): no query."""
    if _task_loaded(assignment):
        return assignment
    return Assignment.objects.select_related(*ASSIGNMENT_TASK_RELATED).get(pk=assignment.pk)


def open_claims_elsewhere(*, project: Project, rater: Rater, now: datetime | None = None) -> int:
    """Claims other annotators hold right now on regular tasks this annotator has not had.

    Each could come back to the pool (a skip, an expiry), and then to this annotator; claims on
    tasks they have already seen, or on gold and attention checks (served only alongside regular
    tasks), never could. A count only: who holds them is not the annotator's business."""
    now = now or timezone.now()
    mine_response = Assignment.objects.filter(rater=rater, response=OuterRef("response"))
    mine_pair = Assignment.objects.filter(rater=rater, pair=OuterRef("pair"))
    return (
        Assignment.objects.filter(project=project, status=CLAIMED, expires_at__gt=now)
        .exclude(rater=rater)
        .filter(
            (Q(protocol=RATING, response__item__role=Item.Role.TASK) & ~Exists(mine_response))
            | (Q(protocol=RANKING, pair__item__role=Item.Role.TASK) & ~Exists(mine_pair))
        )
        .count()
    )
