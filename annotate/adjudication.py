"""Adjudication: the reviewer queue of pairs the humans split on (or whose gold they contest), and
the reviewer's final verdict with a note.

A pair is in the queue when at least two humans judged it and the share of their verdicts that
agree with the majority (annotate.verdicts' gold_label) is below the project's
`review_agreement_below`, or when it has a known gold strength and the humans' majority verdict
is another one ("contested gold"). A decided pair leaves the queue; a later decision is a new
row (Adjudication), the newest counts, nothing is overwritten or deleted.

Reports and exports read adjudicated gold through `adjudicated_verdicts` / `adjudicated_strengths`
when their gold source is "adjudicated" (annotate.verdicts.with_adjudicated / gold_label_from).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import pandas as pd
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import OuterRef, Subquery

from .audit import audit_record, audit_snapshot
from .errors import ValidationError
from .models import Adjudication, Pair, Preference, Project, Rater
from .services import validate_strength
from .training import excluded_raters
from .verdicts import VERDICT_LABELS, combine_strengths, gold_label, verdict_code, verdict_of

SPLIT, CONTESTED = "split", "contested gold"


@dataclass(frozen=True)
class ReviewRow:
    pair: Pair
    reason: str  # SPLIT or CONTESTED
    humans: int
    majority: str  # "A", "tie" or "B" (stored order)
    agreement: float  # share of the humans' verdicts that agree with the majority
    counts: dict[str, int]  # verdict -> humans

    @property
    def agreement_percent(self) -> int:
        return round(100 * self.agreement)


def human_votes(project: Project) -> dict[int, list[int]]:
    """Each pair's human strengths in stored order, one per human (both orders combined), earliest
    human first; excluded annotators (annotate.training) left out."""
    per_pair: dict[int, dict[int, list[int]]] = defaultdict(dict)
    rows = (
        Preference.objects.filter(pair__item__project=project, rater_kind=Rater.Kind.HUMAN)
        .exclude(rater__in=excluded_raters(project))
        .order_by("pair_id", "created_at", "id")
        .values_list("pair_id", "rater_id", "strength")
    )
    for pair_id, rater_id, strength in rows:
        per_pair[pair_id].setdefault(rater_id, []).append(strength)
    return {pair_id: [combine_strengths(s) for s in raters.values()] for pair_id, raters in per_pair.items()}


def _decided(project: Project) -> set[int]:
    return set(Adjudication.objects.filter(pair__item__project=project).values_list("pair_id", flat=True))


def review_queue(project: Project, *, include_decided: bool = False) -> list[ReviewRow]:
    """The pairs waiting for a reviewer, the most split first."""
    votes = human_votes(project)
    decided = set() if include_decided else _decided(project)
    gold = dict(Pair.objects.filter(item__project=project, gold_strength__isnull=False).values_list("pk", "gold_strength"))
    candidates: dict[int, tuple[str, str, float, dict[str, int], int]] = {}
    for pair_id, strengths in votes.items():
        if pair_id in decided:
            continue
        majority = gold_label(strengths)
        if majority is None:
            continue
        codes = verdict_of(strengths)
        counts = {label: int((codes == k).sum()) for k, label in enumerate(VERDICT_LABELS)}
        agreement = counts[majority] / len(strengths)
        known = gold.get(pair_id)
        if known is not None and VERDICT_LABELS[verdict_code(known)] != majority:
            candidates[pair_id] = (CONTESTED, majority, agreement, counts, len(strengths))
        elif len(strengths) >= 2 and agreement < project.review_agreement_below:
            candidates[pair_id] = (SPLIT, majority, agreement, counts, len(strengths))
    pairs = Pair.objects.select_related("item").in_bulk(list(candidates))
    rows = [
        ReviewRow(pair=pairs[pk], reason=reason, humans=n, majority=majority, agreement=agreement, counts=counts)
        for pk, (reason, majority, agreement, counts, n) in candidates.items()
    ]
    return sorted(rows, key=lambda r: (r.agreement, r.pair.pk))


def adjudicate(*, pair: Pair, reviewer: User, strength: object, note: str) -> Adjudication:
    """Record the final verdict (stored order, the project's scale) with the reviewer's note."""
    project = pair.item.project
    strength = validate_strength(project=project, strength=strength)
    note = (note or "").strip()
    if not note:
        raise ValidationError("Please say briefly why: the note is what a later reader has to go on.", field="note")
    with transaction.atomic():
        decision = Adjudication.objects.create(pair=pair, reviewer=reviewer, strength=strength, note=note[:5000])
        audit_record(action="pair.adjudicate", obj=decision, before=None, after=audit_snapshot(decision))
    return decision


def latest(pair: Pair) -> Adjudication | None:
    return pair.adjudications.select_related("reviewer").order_by("-created_at", "-id").first()


def _newest(project_id: int):
    newest = Adjudication.objects.filter(pair=OuterRef("pair")).order_by("-created_at", "-id").values("pk")[:1]
    return Adjudication.objects.filter(pair__item__project_id=project_id, pk=Subquery(newest))


def adjudicated_strengths(project: Project | int) -> dict[int, int]:
    """pair id -> the newest adjudicated strength (stored order)."""
    project_id = project if isinstance(project, int) else project.pk
    return dict(_newest(project_id).values_list("pair_id", "strength"))


def adjudicated_verdicts(project: Project | int) -> pd.DataFrame:
    """The newest decision per pair as verdict codes: columns pair, item, verdict."""
    project_id = project if isinstance(project, int) else project.pk
    rows = list(_newest(project_id).values_list("pair_id", "pair__item_id", "strength"))
    return pd.DataFrame(
        {"pair": [r[0] for r in rows], "item": [r[1] for r in rows], "verdict": [verdict_code(r[2]) for r in rows]},
        dtype="int64",
    )
