"""Panels: several judges acting as one rater (issue 13, item 3).

The rules are pure functions over the members' combined verdicts (annotate.verdicts codes);
`panel_refresh` materialises a panel's verdicts as its own rater's Preferences, one per pair in
stored order, so reports and exports read a panel as they read any judge.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from annotate.errors import ValidationError
from annotate.models import Pair, Preference, Project, Rater, ShownOrder
from annotate.verdicts import TIE, VERDICT_LABELS, A, B, combine_strengths, verdict_code

from .models import Judge, Panel

CODES = (A, TIE, B)
# Two means closer than this are one tie: float sums of the same shares differ in the last bits.
TIE_TOLERANCE = 1e-9


def _top_or_tie(values: Sequence[float]) -> int:
    """The code with the largest value; a tie at the top (A = B, or A = tie...) is a tie: a panel
    split evenly has no verdict to give, and no member's vote counts before another's."""
    top = max(values)
    winners = [c for c in CODES if values[c] >= top - TIE_TOLERANCE]
    return winners[0] if len(winners) == 1 else TIE


def panel_majority(verdicts: Sequence[int]) -> tuple[int, tuple[float, float, float]]:
    """The majority verdict of the members' verdicts, and the vote shares (A, tie, B)."""
    if not verdicts:
        raise ValueError("no member verdicts")
    counts = [sum(v == c for v in verdicts) for c in CODES]
    shares = tuple(c / len(verdicts) for c in counts)
    return _top_or_tie(counts), (shares[0], shares[1], shares[2])


def member_distribution(verdict: int, confidence: float) -> tuple[float, float, float]:
    """A member's probabilities (A, tie, B): its confidence on its own verdict, the rest shared
    evenly by the two others (its confidence is only about its verdict being right)."""
    rest = (1.0 - confidence) / 2.0
    return tuple(confidence if c == verdict else rest for c in CODES)  # type: ignore[return-value]


def panel_mean(members: Sequence[tuple[int, float]]) -> tuple[int, tuple[float, float, float]]:
    """The verdict of the mean of the members' (verdict, calibrated confidence) distributions."""
    if not members:
        raise ValueError("no member verdicts")
    mean = np.mean([member_distribution(v, c) for v, c in members], axis=0)
    return _top_or_tie(list(mean)), (float(mean[0]), float(mean[1]), float(mean[2]))


def panel_create(*, project: Project, name: str, rule: str, members: Sequence[Judge], user: User | None = None) -> Panel:
    """A new panel of `members` (judges the caller checked are usable on the project)."""
    name = name.strip()
    if not name:
        raise ValidationError("A panel needs a name.", field="name")
    if rule not in Panel.Rule.values:
        raise ValidationError(f"Unknown rule {rule!r}.", field="rule")
    if len({m.pk for m in members}) < 2:
        raise ValidationError("A panel needs at least two judges.", field="members")
    rater_name = f"panel-{name}"
    with transaction.atomic():
        if Rater.objects.filter(project=project, kind=Rater.Kind.JUDGE, name=rater_name).exists():
            raise ValidationError(f"This project already has a panel named {name!r}.", field="name")
        rater = Rater.objects.create(kind=Rater.Kind.JUDGE, name=rater_name, project=project)
        panel = Panel.objects.create(
            rater=rater, project=project, rule=rule,
            created_by=user if user is not None and user.is_authenticated else None,
        )
        panel.members.set(list(members))
    return panel


def _member_votes(panel: Panel, pair_ids: list[int]) -> dict[int, list[tuple[int, float, bool]]]:
    """Per pair, each member's (combined verdict, confidence, calibrated?)."""
    from annotate.routing_services import judge_raw, judge_signals, policy_of

    policy = policy_of(panel.project)
    min_humans = policy.k if policy is not None else 2
    out: dict[int, list[tuple[int, float, bool]]] = defaultdict(list)
    for judge in panel.members.select_related("rater").order_by("pk"):
        strengths: dict[int, list[int]] = defaultdict(list)
        for pair_id, strength in Preference.objects.filter(rater=judge.rater, pair_id__in=pair_ids).values_list(
            "pair_id", "strength"
        ):
            strengths[pair_id].append(strength)
        if not strengths:
            continue
        # Calibrated confidence where the member is qualified and the project has the gold to fit
        # it on (annotate.routing_services); its raw score otherwise.
        signals = judge_signals(panel.project, judge.rater, list(strengths), min_humans=min_humans) \
            if panel.rule == Panel.Rule.MEAN else {}
        raw = judge_raw(judge.rater, list(strengths)) if panel.rule == Panel.Rule.MEAN else {}
        for pair_id, ss in strengths.items():
            verdict = verdict_code(combine_strengths(ss))  # both shown orders: annotate.verdicts' rule
            if pair_id in signals:
                out[pair_id].append((verdict, signals[pair_id].confidence, True))
            elif pair_id in raw:
                out[pair_id].append((verdict, raw[pair_id].score, False))
            else:
                out[pair_id].append((verdict, 1.0, False))
    return out


def panel_refresh(panel: Panel) -> int:
    """Recompute the panel's Preference on every pair of its project that a member judged.
    Idempotent: a row is written only where its verdict or probabilities changed; the panel's
    row lock serialises two refreshes (a member's run finishing twice, a retried task). A pair
    no member judges any more keeps its last panel verdict (nothing annotated is deleted).
    Returns how many preferences were created or changed."""
    with transaction.atomic():
        panel = Panel.objects.select_for_update().select_related("project", "rater").get(pk=panel.pk)
        pair_ids = list(Pair.objects.filter(item__project=panel.project).values_list("pk", flat=True))
        votes = _member_votes(panel, pair_ids)
        existing = {p.pair_id: p for p in Preference.objects.filter(rater=panel.rater, shown_order=ShownOrder.AB)}
        changed = 0
        new: list[Preference] = []
        for pair_id, member_votes in sorted(votes.items()):
            if panel.rule == Panel.Rule.MEAN:
                verdict, probs = panel_mean([(v, c) for v, c, _ in member_votes])
                calibrated = sum(cal for _, _, cal in member_votes)
                note = f"mean of {len(member_votes)} members' probabilities ({calibrated} calibrated)"
            else:
                verdict, probs = panel_majority([v for v, _, _ in member_votes])
                note = f"majority of {len(member_votes)} members"
            probabilities = {label: round(p, 6) for label, p in zip(VERDICT_LABELS, probs, strict=True)}
            strength = verdict - 1  # verdict-only: the sign in stored order
            row = existing.get(pair_id)
            if row is None:
                new.append(Preference(
                    rater=panel.rater, rater_kind=Rater.Kind.JUDGE, pair_id=pair_id, strength=strength,
                    shown_order=ShownOrder.AB, verdict_only=True, probabilities=probabilities, justification=note,
                ))
            elif (row.strength, row.probabilities, row.justification) != (strength, probabilities, note):
                row.strength, row.probabilities, row.justification = strength, probabilities, note
                row.verdict_only = True
                row.save(update_fields=["strength", "probabilities", "justification", "verdict_only", "updated_at"])
                changed += 1
        # ignore_conflicts: the unique (rater, pair, order) is the last word should a row appear
        # between the read and the insert; the lock above makes that a belt and braces.
        Preference.objects.bulk_create(new, ignore_conflicts=True)
        Panel.objects.filter(pk=panel.pk).update(refreshed_at=timezone.now())
    return changed + len(new)


def panels_of(judge: Judge, project: Project) -> list[int]:
    """The ids of the project's panels the judge sits on (refreshed when its run finishes)."""
    return list(Panel.objects.filter(project=project, members=judge).values_list("pk", flat=True))
