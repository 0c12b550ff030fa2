"""Onboarding and the continuous check: the training round, the qualification bar, and pausing
an annotator whose recent gold falls below it.

- Training round: a project with `training_size` > 0 first serves each annotator that many gold
  tasks (Assignment.training). After each, the annotator sees the expected answer and the
  guideline passage that decides it (the item's metadata "guideline", else the guidelines).
- Qualification: once the round is done, a share of gold passed of at least
  `qualification_bar` opens the main queue; below it the annotator waits for a researcher.
- Continuous check: in the main queue, once an annotator has `gold_window` gold tasks since they
  qualified (or were reinstated), their share passed over the last `gold_window` must stay at
  the bar; below it they are paused and their annotations are flagged for the researcher, who
  reinstates them, excludes their annotations from gold, reports and exports (their queue stays
  closed), or removes them (the same exclusion, and their membership of the project ends: the
  issue's "delete", done softly). Nothing annotated is ever deleted.

Whether one annotation passes its gold is annotate.verdicts' rule (gold_rating_passes,
gold_preference_passes); this module only counts. `qualification_state(rater, project)` is what
other pages (membership, payment) read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from . import compiled
from .audit import audit_record, audit_snapshot
from .errors import ValidationError
from .members import member_remove
from .models import Assignment, Item, Membership, Preference, Project, Rater, Rating, Standing
from .queue import assignment_claim_next, assignment_claim_training, assignment_release_claims
from .verdicts import gold_preference_passes, gold_rating_passes

State = Standing.State
DONE = Assignment.Status.DONE
# States whose annotations are left out of gold, reports and exports (annotate.training is the
# one place that says so; reports and exports ask excluded_raters).
LEFT_OUT: tuple[str, ...] = (State.EXCLUDED, State.REMOVED)
MAY_ANNOTATE: tuple[str, ...] = (State.QUALIFIED,)
DECISIONS: dict[str, str] = {"reinstate": State.QUALIFIED, "exclude": State.EXCLUDED, "remove": State.REMOVED}

MESSAGES: dict[str, str] = {
    State.FAILED: "Your training round is done, but fewer answers matched the expected ones than this project needs. "
    "A researcher will look at it and let you know.",
    State.PAUSED: "Your work here is paused: recent check answers did not match the expected ones often enough. "
    "A researcher will look at it and let you know.",
    State.EXCLUDED: "A researcher has closed this project's queue for you.",
    State.REMOVED: "A researcher has closed this project's queue for you.",
}


@dataclass(frozen=True)
class QualificationState:
    """Where one annotator stands in one project (what the queue, the dashboard, membership and
    payment pages show)."""

    state: str
    training_size: int
    training_done: int
    training_passed: int
    window: int  # gold tasks the continuous check counts
    recent_gold: int  # gold tasks in the current window (at most `window`)
    recent_passed: int
    bar: float

    @property
    def in_training(self) -> bool:
        return self.state == State.TRAINING

    @property
    def may_annotate(self) -> bool:
        return self.state in MAY_ANNOTATE

    @property
    def qualified(self) -> bool:
        return self.state == State.QUALIFIED

    @property
    def flagged(self) -> bool:
        """Paused by the check or below the bar in training: waiting for a researcher."""
        return self.state in (State.PAUSED, State.FAILED)

    @property
    def training_share(self) -> float | None:
        return None if not self.training_done else self.training_passed / self.training_done

    @property
    def recent_share(self) -> float | None:
        return None if not self.recent_gold else self.recent_passed / self.recent_gold

    @property
    def message(self) -> str:
        return MESSAGES.get(self.state, "")


# --- gold results ---------------------------------------------------------------------------------


def gold_results(
    *, project: Project, rater: Rater, training: bool, since: datetime | None = None
) -> list[bool]:
    """Pass or fail of each of the rater's done gold tasks (training round or main queue), oldest
    first; a gold task whose gold names nothing the rater answered is not counted."""
    done = Assignment.objects.filter(project=project, rater=rater, status=DONE, training=training).filter(
        Q(response__item__role=Item.Role.GOLD) | Q(pair__item__role=Item.Role.GOLD)
    )
    if since is not None:
        done = done.filter(completed_at__gte=since)
    rows = list(
        done.order_by("completed_at", "pk").values_list(
            "protocol", "response_id", "pair_id", "response__gold_ratings", "pair__gold_strength"
        )
    )
    response_ids = [r[1] for r in rows if r[1] is not None]
    pair_ids = [r[2] for r in rows if r[2] is not None]
    values: dict[int, dict[str, int]] = {}
    for response_id, name, value in Rating.objects.filter(rater=rater, response_id__in=response_ids).values_list(
        "response_id", "attribute__name", "value"
    ):
        values.setdefault(response_id, {})[name] = value
    strengths = dict(Preference.objects.filter(rater=rater, pair_id__in=pair_ids).values_list("pair_id", "strength"))
    results: list[bool] = []
    for protocol, response_id, pair_id, gold_ratings, gold_strength in rows:
        if protocol == Assignment.Protocol.RATING:
            passed = gold_rating_passes(values.get(response_id, {}), gold_ratings)
        else:
            strength = strengths.get(pair_id)
            passed = None if strength is None else gold_preference_passes(strength, gold_strength)
        if passed is not None:
            results.append(passed)
    return results


def _meets(passed: int, total: int, bar: float) -> bool:
    # In integers where it matters: 4 of 5 meets a bar of 0.8 (4 / 5 == 0.8 in floats too, but
    # 7 of 10 at 0.7 would not be safe to compare as 0.7 == 0.7000000000000001).
    return total == 0 or passed >= math.ceil(round(bar * total, 9))


# --- the state ------------------------------------------------------------------------------------


def _standing(project: Project, rater: Rater) -> Standing | None:
    # On every claim: SQL compiled once per process (annotate.compiled), no ORM compile per request.
    return cast("Standing | None", compiled.first(
        ("standing",), lambda project_id, rater_id: Standing.objects.filter(project_id=project_id, rater_id=rater_id)
        .order_by("pk")[:1], project_id=project.pk, rater_id=rater.pk,
    ))


def _initial_state(project: Project) -> str:
    return State.TRAINING if project.training_size > 0 else State.QUALIFIED


def qualification_state(rater: Rater, project: Project) -> QualificationState:
    """The annotator's standing in the project, with the counts behind it (a few queries)."""
    standing = _standing(project, rater)
    state = standing.state if standing is not None else _initial_state(project)
    training = gold_results(project=project, rater=rater, training=True) if project.training_size else []
    since = standing.checked_since if standing is not None else None
    recent = gold_results(project=project, rater=rater, training=False, since=since)[-project.gold_window:]
    return QualificationState(
        state=state, training_size=project.training_size, training_done=len(training),
        training_passed=sum(training), window=project.gold_window, recent_gold=len(recent),
        recent_passed=sum(recent), bar=project.qualification_bar,
    )


def _set_state(standing: Standing, state: str, *, user: User | None = None, note: str = "", now: datetime) -> None:
    before = audit_snapshot(standing) if standing.pk else None
    standing.state = state
    if state == State.QUALIFIED:
        standing.checked_since = now  # a fresh window: the old failures are not counted twice
    if user is not None:
        standing.decided_by = user
        standing.note = note
    standing.save()
    audit_record(action=f"standing.{state}", obj=standing, before=before, after=audit_snapshot(standing))


def _training_tasks_done(project: Project, rater: Rater) -> int:
    return Assignment.objects.filter(project=project, rater=rater, status=DONE, training=True).count()


def _is_gold(assignment: Assignment) -> bool:
    task = assignment.response if assignment.protocol == Assignment.Protocol.RATING else assignment.pair
    return task is not None and task.item.role == Item.Role.GOLD


def check_after_submit(*, assignment: Assignment, now: datetime | None = None) -> None:
    """After a submit: ends the training round (qualified or below the bar) once it is complete,
    and runs the continuous check after a main-queue gold task. Idempotent: a replayed submit
    finds the state it left. Nothing to do (no query) after a regular task."""
    now = now or timezone.now()
    project = assignment.project
    if not assignment.training and (project.qualification_bar <= 0 or not _is_gold(assignment)):
        return
    rater = assignment.rater  # read only past the early return: a regular task costs no query
    with transaction.atomic():
        standing, _ = Standing.objects.select_for_update().get_or_create(
            project=project, rater=rater, defaults={"state": _initial_state(project), "checked_since": now}
        )
        if standing.state == State.TRAINING and _training_tasks_done(project, rater) >= project.training_size:
            results = gold_results(project=project, rater=rater, training=True)
            meets = _meets(sum(results), len(results), project.qualification_bar)
            _set_state(standing, State.QUALIFIED if meets else State.FAILED, now=now)
        elif standing.state == State.QUALIFIED and not assignment.training and project.qualification_bar > 0:
            recent = gold_results(project=project, rater=rater, training=False, since=standing.checked_since)
            window = recent[-project.gold_window:]
            # Only a full window judges: two early misses out of two say little.
            if len(window) >= project.gold_window and not _meets(sum(window), len(window), project.qualification_bar):
                _set_state(standing, State.PAUSED, now=now)


# --- the queue behind the gate ----------------------------------------------------------------------


@dataclass(frozen=True)
class Gate:
    """What the annotator gets next: a task (training or main queue), or a reason they get none."""

    assignment: Assignment | None
    state: str
    blocked: bool  # no task because of their standing, not because the queue is empty

    @property
    def message(self) -> str:
        return MESSAGES.get(self.state, "") if self.blocked else ""

    @property
    def training(self) -> bool:
        return self.assignment is not None and self.assignment.training


def current_state(project: Project, rater: Rater) -> str:
    """The standing's state alone (one query): what the queue's gate needs on every claim."""
    standing = _standing(project, rater)
    return standing.state if standing is not None else _initial_state(project)


def claim_next(*, project: Project, rater: Rater) -> Gate:
    """The annotator's next task through the gate: the training round first (where the project
    has one), the main queue once qualified, nothing while paused, below the bar or excluded.
    Within the training round and the main queue a task already held is handed back first (a
    reload shows the same task)."""
    state = current_state(project, rater)
    if state == State.TRAINING:
        assignment = None
        if _training_tasks_done(project, rater) < project.training_size:
            assignment = assignment_claim_training(project=project, rater=rater)
        if assignment is not None:
            return Gate(assignment, state, False)
        # The round is complete, or the project has no more gold for this annotator: settle it
        # on what they did (nothing done: nothing to hold them back with).
        state = end_training_round(project=project, rater=rater).state
    if state not in MAY_ANNOTATE:
        return Gate(None, state, True)
    return Gate(assignment_claim_next(project=project, rater=rater), state, False)


def end_training_round(*, project: Project, rater: Rater, now: datetime | None = None) -> QualificationState:
    """Qualified or below the bar, on the training tasks done so far."""
    now = now or timezone.now()
    with transaction.atomic():
        standing, _ = Standing.objects.select_for_update().get_or_create(
            project=project, rater=rater, defaults={"state": State.TRAINING}
        )
        if standing.state == State.TRAINING:
            results = gold_results(project=project, rater=rater, training=True)
            meets = _meets(sum(results), len(results), project.qualification_bar)
            _set_state(standing, State.QUALIFIED if meets else State.FAILED, now=now)
    return qualification_state(rater, project)


# --- what the annotator sees after a training task --------------------------------------------------


@dataclass(frozen=True)
class Feedback:
    passed: bool | None
    # (label, expected, given) rows: an attribute and its values, or "Preference" and two labels
    rows: list[tuple[str, str, str]]
    guideline: str  # markdown: the item's passage, else the project's guidelines
    state: QualificationState


def training_feedback(*, assignment: Assignment, strength_labels: dict[int, str]) -> Feedback:
    """The expected answer beside the annotator's, for a training task they have just done.

    `strength_labels` are the labels the annotator saw (shown order: A = left), so the expected
    strength is turned into the order they were shown, not the stored one."""
    from .verdicts import stored_strength

    project, rater = assignment.project, assignment.rater
    rows: list[tuple[str, str, str]] = []
    passed: bool | None
    if assignment.protocol == Assignment.Protocol.RATING:
        response = assignment.response
        assert response is not None
        item = response.item
        given = dict(Rating.objects.filter(rater=rater, response=response).values_list("attribute__name", "value"))
        gold = response.gold_ratings or {}
        rows = [(name, str(value), str(given.get(name, "-"))) for name, value in gold.items()]
        passed = gold_rating_passes(given, gold)
    else:
        pair = assignment.pair
        assert pair is not None
        item = pair.item
        preference = Preference.objects.filter(rater=rater, pair=pair).first()
        if pair.gold_strength is not None:
            expected = stored_strength(pair.gold_strength, assignment.shown_order)
            given_label = "-"
            if preference is not None:
                given_label = strength_labels.get(stored_strength(preference.strength, assignment.shown_order), "-")
            rows = [("Preference", strength_labels.get(expected, str(expected)), given_label)]
        passed = None if preference is None else gold_preference_passes(preference.strength, pair.gold_strength)
    guideline = str((item.metadata or {}).get("guideline") or project.guidelines or "")
    return Feedback(passed=passed, rows=rows, guideline=guideline, state=qualification_state(rater, project))


# --- the researcher's decision ---------------------------------------------------------------------


def standing_decide(*, project: Project, rater: Rater, decision: str, user: User, note: str = "") -> Standing:
    """Reinstate (back to the queue, a fresh check window, and back into the project if they were
    removed), exclude (annotations out of gold, reports and exports, no more tasks) or remove (the
    same, and their membership of the project ends: out of its members and their projects list).

    Nothing annotated is deleted: "remove" is the issue's "delete", done as an exclusion (the
    trust rule: nothing annotated is hard-deleted). Exclude and remove give the tasks the
    annotator holds back to the pool at once: their queue is closed, so waiting for the claims to
    time out would only keep the tasks from everyone else."""
    if decision not in DECISIONS:
        raise ValidationError(f"decision must be one of {', '.join(DECISIONS)}.", field="decision")
    if decision == "remove" and rater.user_id == user.pk:
        raise ValidationError("You cannot remove yourself from the project.", field="decision")
    with transaction.atomic():
        standing, _ = Standing.objects.select_for_update().get_or_create(
            project=project, rater=rater, defaults={"state": _initial_state(project)}
        )
        _set_state(standing, DECISIONS[decision], user=user, note=note.strip()[:2000], now=timezone.now())
        membership = Membership.objects.filter(project=project, user_id=rater.user_id).first() if rater.user_id else None
        if decision == "reinstate":
            if membership is None and rater.user_id:
                # Removed before: back in as the annotator they were (audited by annotate.audit).
                Membership.objects.create(project=project, user_id=rater.user_id, role=Membership.Role.ANNOTATOR)
        elif decision == "remove" and membership is not None:
            member_remove(membership=membership)  # releases their claims too
        else:
            assignment_release_claims(project=project, rater=rater)
    return standing


def excluded_raters(project: Project | int) -> QuerySet[Standing, Any]:
    """Rater ids whose annotations the project's gold, reports and exports leave out (a subquery:
    use as `.exclude(rater__in=excluded_raters(project))`)."""
    project_id = project if isinstance(project, int) else project.pk
    return Standing.objects.filter(project_id=project_id, state__in=LEFT_OUT).values("rater")


@dataclass(frozen=True)
class StandingRow:
    standing: Standing
    state: QualificationState
    annotations: int  # the rater's ratings and preferences in the project: flagged while held back

    @property
    def label(self) -> str:
        return State(self.standing.state).label


def standing_rows(project: Project) -> list[StandingRow]:
    """Every annotator with a standing in the project, those waiting for a decision first."""
    rows = []
    for standing in Standing.objects.filter(project=project).select_related("rater", "decided_by"):
        rater = standing.rater
        annotations = (
            Rating.objects.filter(rater=rater, response__item__project=project).count()
            + Preference.objects.filter(rater=rater, pair__item__project=project).count()
        )
        rows.append(StandingRow(standing, qualification_state(rater, project), annotations))
    return sorted(rows, key=lambda r: (not r.state.flagged, r.standing.rater.name))
