"""Routing on a live project: load what annotate.routing's pure policies decide on, store their
decisions (with reasons), the queue's priority hook, and the preview of a policy's cost.

The ORM is touched here only; every decision is annotate.routing's. Only regular (task-role)
pairs are routed: gold and attention pairs go to every annotator as before.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Exists, F, FloatField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from . import routing
from .models import (
    Assignment,
    Item,
    Pair,
    PairRouting,
    Preference,
    Project,
    Rater,
    RoutingDecision,
    RoutingPolicy,
)
from .verdicts import TIE, VERDICT_LABELS, gold_label, verdict_code

if TYPE_CHECKING:
    from judges.models import JudgeQualification

# Fewer pairs with human gold than this, and a judge's confidence is not calibrated: its pairs
# are routed as if there were no judge (adaptive overlap), never on an uncalibrated guess.
MIN_CALIBRATION_PAIRS = 30


# policy_of's memo on the project instance: a claim asks for the policy in its candidate query
# and again in the recount under the lock, a submit once more; one read per request serves all.
_POLICY_MEMO = "_routing_policy_memo"


def policy_of(project: Project) -> RoutingPolicy | None:
    """The project's routing policy when one is on; None for uniform overlap (the default).
    Read once per project instance (a request's), forgotten when policy_set stores a new one."""
    if _POLICY_MEMO in project.__dict__:
        return project.__dict__[_POLICY_MEMO]
    if Project.routing_policy.is_cached(project):
        # Loaded with the project (select_related("routing_policy"): the page view's and the
        # submit's project): no query. None where the project has no policy row.
        row: RoutingPolicy | None = Project.routing_policy.related.get_cached_value(project)  # type: ignore[assignment]
    else:
        row = RoutingPolicy.objects.filter(project=project).first()
    policy = row if row is not None and row.active else None
    project.__dict__[_POLICY_MEMO] = policy
    return policy


def as_policy(row: RoutingPolicy, *, overlap: int) -> routing.Policy:
    return routing.Policy(
        kind=row.kind,  # type: ignore[arg-type]
        overlap=overlap,
        k=min(row.k, overlap),
        threshold=row.threshold,
        spot_check_rate=row.spot_check_rate,
        unsure=row.unsure,  # type: ignore[arg-type]
    )


def human_verdicts(pair_ids: Iterable[int] | QuerySet) -> dict[int, list[int]]:
    """Per pair, the verdict of each human preference, earliest first (a human has one per pair).
    A queryset of pair ids is read as a subquery: one statement, where a list of a large
    project's 25,641 ids cost 0.4 s in Django and psycopg before PostgreSQL saw it."""
    out: dict[int, list[int]] = defaultdict(list)
    ids = pair_ids if isinstance(pair_ids, QuerySet) else list(pair_ids)
    rows = (
        Preference.objects.filter(pair_id__in=ids, rater_kind=Rater.Kind.HUMAN)
        .order_by("created_at", "id")
        .values_list("pair_id", "strength")
    )
    for pair_id, strength in rows:
        out[pair_id].append(verdict_code(strength))
    return out


@dataclass(frozen=True)
class RawJudgment:
    verdict: int
    score: float
    orders_agree: bool
    orders: int  # shown orders judged (position consistency needs both)


def judge_raw(judge: Rater, pair_ids: Iterable[int]) -> dict[int, RawJudgment]:
    """The judge's combined verdict per pair (MT-Bench's rule over its shown orders, as
    annotate.verdicts.combine_strengths), whether its orders agreed, and its raw confidence: the
    mean probability it gave the combined verdict (the share of orders behind it when it stored
    no probabilities)."""
    per_pair: dict[int, list[tuple[int, dict | None]]] = defaultdict(list)
    for pair_id, strength, probs in Preference.objects.filter(rater=judge, pair_id__in=list(pair_ids)).values_list(
        "pair_id", "strength", "probabilities"
    ):
        per_pair[pair_id].append((strength, probs))
    panel_orders = _panel_orders(judge, list(per_pair))
    out: dict[int, RawJudgment] = {}
    for pair_id, rows in per_pair.items():
        verdicts = {verdict_code(s) for s, _ in rows}
        agree = len(verdicts) == 1
        verdict = verdicts.pop() if agree else TIE
        label = VERDICT_LABELS[verdict]
        probs = [p.get(label) for _, p in rows if p]
        if probs and all(isinstance(x, (int, float)) for x in probs):
            score = float(sum(probs) / len(probs))
        else:
            score = sum(verdict_code(s) == verdict for s, _ in rows) / len(rows)
        orders = len(rows)
        if panel_orders is not None:
            # A panel stores one verdict per pair: its shown orders are its members'.
            agree, orders = panel_orders.get(pair_id, (agree, orders))
        out[pair_id] = RawJudgment(verdict, score, agree, orders)
    return out


def _panel_orders(rater: Rater, pair_ids: list[int]) -> dict[int, tuple[bool, int]] | None:
    """For a panel's rater (None for any other rater): per pair, whether every member that
    judged it gave the same verdict in both shown orders, and the fewest orders a member judged.
    A panel's position consistency is then its members' joint one: the panel's verdict can only
    be trusted not to hinge on the order when none of its members' verdicts does. Qualification
    and routing both read it here, so a panel's consistency and its ORDERS_DISAGREE pairs agree."""
    from judges.models import Panel  # as annotate.access does: the judges app's table

    panel = Panel.objects.filter(rater=rater).first()
    if panel is None or not pair_ids:
        return None
    out: dict[int, tuple[bool, int]] = {}
    for member in panel.members.select_related("rater").order_by("pk"):
        for pair_id, r in judge_raw(member.rater, pair_ids).items():
            agree, orders = out.get(pair_id, (True, r.orders))
            out[pair_id] = (agree and r.orders_agree, min(orders, r.orders))
    return out


def human_gold(project: Project, *, min_humans: int) -> dict[int, int]:
    """Gold per pair from annotate.verdicts: a gold pair's known answer, else the gold of its
    human verdicts when it has at least `min_humans` of them."""
    out: dict[int, int] = {}
    for pair_id, strength in Pair.objects.filter(
        item__project=project, item__role=Item.Role.GOLD, gold_strength__isnull=False
    ).values_list("pk", "gold_strength"):
        if strength is not None:
            out[pair_id] = verdict_code(strength)
    task_pairs = Pair.objects.filter(item__project=project, item__role=Item.Role.TASK).values_list("pk", flat=True)
    for pair_id, verdicts in human_verdicts(task_pairs).items():
        if len(verdicts) >= min_humans:
            label = gold_label([v - 1 for v in verdicts])
            if label is not None:
                out[pair_id] = VERDICT_LABELS.index(label)
    return out


def bar_shortfalls(*, n: int, kappa: float | None, consistency: float | None, min_kappa: float,
                   min_consistency: float) -> list[str]:  # fmt: skip
    """Why a judge's figures on a project's human gold miss the project's bar (empty: they meet
    it). The one rule of qualification: judge_qualify stores its verdict by it, and the reports'
    "not qualified" marks say which part of it failed."""
    out = []
    if n < MIN_CALIBRATION_PAIRS:
        out.append(f"{n} pairs with human gold < {MIN_CALIBRATION_PAIRS}")
    if kappa is None:
        out.append("kappa undefined")
    elif kappa < min_kappa:
        out.append(f"kappa {kappa:.2f} < {min_kappa:.2f}")
    if consistency is None:
        out.append("position consistency not measured (never judged in both shown orders)")
    elif consistency < min_consistency:
        out.append(f"position consistency {consistency:.2f} < {min_consistency:.2f}")
    return out


@dataclass(frozen=True)
class Standing:
    """Whether a judge may be used as qualified on a project, and why (the reports print it)."""

    qualified: bool
    reason: str
    at: datetime | None = None  # when the latest qualification ran; None: never

    def as_json(self) -> dict:
        return {"qualified": self.qualified, "reason": self.reason, "at": self.at.isoformat() if self.at else None}


NEVER_QUALIFIED = "never run: qualify it on this project (its routing page)"
# A panel is qualified as one rater, on its own verdicts (reports.qualification.panel_qualify).
PANEL_STANDING = "never run: qualify the panel on this project (its routing page)"


def standing_of(latest: JudgeQualification | None) -> Standing:
    """A judge's standing from its latest qualification on the project (None: never run). The
    stored verdict decides (judge_qualify wrote it by bar_shortfalls against the bar of that
    day); the reason names the figures against that bar."""
    if latest is None:
        return Standing(False, NEVER_QUALIFIED)
    misses = bar_shortfalls(n=latest.n, kappa=latest.kappa, consistency=latest.consistency,
                            min_kappa=latest.min_kappa, min_consistency=latest.min_consistency)  # fmt: skip
    if latest.qualified:
        met = f"kappa {latest.kappa:.2f} >= {latest.min_kappa:.2f}" if latest.kappa is not None else "met the bar"
        return Standing(True, f"qualified on {latest.n} pairs: {met}", latest.at)
    return Standing(False, "below bar: " + ("; ".join(misses) if misses else "did not meet the bar of its day"), latest.at)


def latest_qualifications(project: Project) -> dict[int, JudgeQualification]:
    """Rater id (a judge's or a panel's) -> its latest qualification on the project (its
    standing; older rows are its history), with the rater, in one query."""
    from judges.models import JudgeQualification  # as annotate.access does: the judges app's table

    latest: dict[int, JudgeQualification] = {}
    rows = JudgeQualification.objects.filter(project=project).select_related("judge__rater", "panel__rater")
    for q in rows.order_by("-at", "-id"):
        latest.setdefault(q.rater.pk, q)
    return latest


def judge_standings(project: Project) -> dict[int, Standing]:
    """Rater id -> standing, for every judge or panel qualified (or not) on the project, in one
    query; a rater missing from it has never been qualified here (standing_of(None))."""
    return {rater_id: standing_of(q) for rater_id, q in latest_qualifications(project).items()}


def judge_qualified(project: Project, judge: Rater) -> bool:
    """Only a judge (or panel) whose latest qualification on this project met its bar may
    route it."""
    from django.db.models import Q

    from judges.models import JudgeQualification  # as annotate.access does: the judges app's table

    latest = (
        JudgeQualification.objects.filter(Q(judge__rater=judge) | Q(panel__rater=judge), project=project)
        .order_by("-at", "-id")
        .first()
    )
    return standing_of(latest).qualified


def routing_judge_check(project: Project, judge: Rater) -> None:
    """A panel may be named by a routing policy only once it is qualified on the project (a
    judge may be named before, and routes as adaptive overlap until it is: its preview says so).
    A panel exists only to route, and an unqualified one would route nothing."""
    from judges.models import Panel

    panel = Panel.objects.filter(rater=judge).first()
    if panel is not None and (panel.project_id != project.pk or not judge_qualified(project, judge)):
        from .errors import ValidationError

        raise ValidationError(
            f"Panel {judge.name} is not qualified on this project: qualify it first (Judge qualification).",
            field="judge",
        )


def judge_signals(project: Project, judge: Rater | None, pair_ids: list[int], *, min_humans: int) -> dict[int, routing.JudgeSignal]:
    """Calibrated judge signals for `pair_ids`: isotonic regression (judges.calibration) of
    "the judge's verdict equals gold" on its raw score, fitted on the project's pairs with human
    gold, leaving out the pair being scored. Empty when there is too little gold to calibrate."""
    if judge is None or not judge_qualified(project, judge):
        return {}
    from judges.calibration import calibrator_fit  # scikit-learn: only when a judge routes

    gold = human_gold(project, min_humans=min_humans)
    raw = judge_raw(judge, set(gold) | set(pair_ids))
    calib = [(pid, raw[pid], gold[pid]) for pid in gold if pid in raw]
    if len(calib) < MIN_CALIBRATION_PAIRS:
        return {}
    scores = [r.score for _, r, _ in calib]
    correct = [r.verdict == g for _, r, g in calib]
    fitted = calibrator_fit(scores, correct)
    out: dict[int, routing.JudgeSignal] = {}
    index = {pid: i for i, (pid, _, _) in enumerate(calib)}
    for pid in pair_ids:
        if pid not in raw:
            continue
        r = raw[pid]
        if pid in index:  # never calibrate a pair on itself
            keep = [i for i in range(len(calib)) if i != index[pid]]
            conf = calibrator_fit([scores[i] for i in keep], [correct[i] for i in keep]).predict([r.score])[0]
        else:
            conf = fitted.predict([r.score])[0]
        out[pid] = routing.JudgeSignal(r.verdict, float(conf), r.orders_agree)
    return out


def routing_refresh(*, project: Project, pair_ids: Iterable[int] | None = None) -> int:
    """Decide again for the project's regular pairs (or the given ones) and store each changed
    decision with its reason. Returns how many decisions were stored."""
    row = policy_of(project)
    if row is None:
        return 0  # uniform overlap: nothing to decide, and no query on the submit path
    qs = Pair.objects.filter(item__project=project, item__role=Item.Role.TASK)
    if pair_ids is not None:
        qs = qs.filter(pk__in=list(pair_ids))
    ids = list(qs.values_list("pk", flat=True))
    if not ids:
        return 0
    policy = as_policy(row, overlap=project.overlap)
    humans = human_verdicts(ids)
    current = {r.pair_id: r for r in PairRouting.objects.filter(pair_id__in=ids)}
    signals: dict[int, routing.JudgeSignal] = {}
    if row.kind == RoutingPolicy.Kind.JUDGE:
        if pair_ids is not None and all(pid in current for pid in ids):
            # One more human label on known pairs (the submit path): the judge's signal has not
            # changed, so reuse the stored one rather than refit the calibration.
            signals = {
                pid: routing.JudgeSignal(r.judge_verdict, r.judge_confidence, bool(r.judge_orders_agree))
                for pid, r in current.items()
                if r.judge_verdict is not None and r.judge_confidence is not None
            }
        else:
            signals = judge_signals(project, row.judge, ids, min_humans=policy.k)
    stored = 0
    with transaction.atomic():
        for pid in ids:
            votes = humans.get(pid, [])
            signal = signals.get(pid)
            d = routing.decide(policy, votes, signal, pair_key=pid, seed=project.pk)
            now = current.get(pid)
            stored_signal = (None, None, None) if signal is None else (signal.verdict, signal.confidence, signal.orders_agree)
            if now is not None and (now.need_more, now.reason, now.humans, now.priority) == (
                d.need_more, d.reason, len(votes), d.priority
            ) and (now.judge_verdict, now.judge_confidence, now.judge_orders_agree) == stored_signal:
                continue
            PairRouting.objects.update_or_create(
                pair_id=pid,
                defaults={"need_more": d.need_more, "priority": d.priority, "reason": d.reason, "humans": len(votes),
                          "judge_verdict": stored_signal[0], "judge_confidence": stored_signal[1],
                          "judge_orders_agree": stored_signal[2]},
            )  # fmt: skip
            RoutingDecision.objects.create(
                pair_id=pid, policy=row.kind, humans=len(votes), need_more=d.need_more, priority=d.priority,
                reason=d.reason, detail=d.detail[:200], judge_confidence=None if signal is None else signal.confidence,
            )  # fmt: skip
            stored += 1
    return stored


# --- the queue's hook -------------------------------------------------------------------------------


def _open_claims(now: datetime) -> QuerySet:
    return Assignment.objects.filter(pair=OuterRef("pk"), status=Assignment.Status.CLAIMED, expires_at__gt=now)


def routed_candidates(qs: QuerySet, *, project: Project, now: datetime) -> QuerySet:
    """The queue's candidate pairs under the project's routing policy: closed pairs left out,
    one open claim per pair at a time (a policy decides on each label before asking the next,
    so two parallel claims would spend a label it may not need), highest priority first."""
    if policy_of(project) is None:
        return qs
    closed = PairRouting.objects.filter(pair=OuterRef("pk"), need_more=False)
    priority = Subquery(PairRouting.objects.filter(pair=OuterRef("pk")).values("priority")[:1], output_field=FloatField())
    return (
        qs.filter(~Exists(closed), ~Exists(_open_claims(now)))
        .annotate(routing_priority=Coalesce(priority, Value(routing.PRIORITY_NORMAL)))
        .order_by(F("routing_priority").desc(), "pk")
    )


def routing_room(*, project: Project, pair_id: int, now: datetime, exclude_pk: int | None = None) -> bool:
    """The recount under the pair's lock: the candidate query's snapshot may predate a claim or
    a decision committed since."""
    if policy_of(project) is None:
        return True
    if PairRouting.objects.filter(pair_id=pair_id, need_more=False).exists():
        return False
    claims = Assignment.objects.filter(pair_id=pair_id, status=Assignment.Status.CLAIMED, expires_at__gt=now)
    if exclude_pk is not None:
        claims = claims.exclude(pk=exclude_pk)
    return not claims.exists()


# --- the preview ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    pairs: int
    uniform_labels: int
    expected_labels: float
    human_agreement: float  # P(two humans agree), from the project's pairs with two or more
    human_agreement_n: int
    confident_pairs: int
    judge_confirm_rate: float | None  # P(first human agrees with a confident judge)
    note: str

    @property
    def saved_fraction(self) -> float:
        return 1.0 - self.expected_labels / self.uniform_labels if self.uniform_labels else 0.0


# With no pair labelled twice yet, the preview assumes this rate of two humans agreeing (about
# PandaLM's: its three annotators agree pairwise on ~91% of pairs) and says so.
ASSUMED_HUMAN_AGREEMENT = 0.9


def routing_preview(*, project: Project, row: RoutingPolicy) -> Preview:
    """Expected human labels for the project's regular pairs under a policy, before turning it
    on: per pair, the labels the policy asks for when each next human agrees with the first at
    the rate seen so far (and with a confident judge at the rate seen so far)."""
    overlap = project.overlap
    policy = as_policy(row, overlap=overlap)
    ids = list(Pair.objects.filter(item__project=project, item__role=Item.Role.TASK).values_list("pk", flat=True))
    humans = human_verdicts(ids)
    twice = [v for v in humans.values() if len(v) >= 2]
    agree = sum(v[0] == v[1] for v in twice) / len(twice) if twice else ASSUMED_HUMAN_AGREEMENT
    note = "" if twice else f"No pair has two human labels yet: assumed {ASSUMED_HUMAN_AGREEMENT:.0%} agreement."
    adaptive_cost = float(policy.k) + (1.0 - agree) * max(0, overlap - policy.k) if policy.kind != "uniform" else overlap
    signals = (
        judge_signals(project, row.judge, ids, min_humans=policy.k) if policy.kind == "judge" else {}
    )
    confident = [
        pid for pid, s in signals.items()
        if s.orders_agree and s.confidence >= policy.threshold
        and not routing.is_spot_check(pid, rate=policy.spot_check_rate, seed=project.pk)
    ]  # fmt: skip
    seen = [(humans[pid][0], signals[pid].verdict) for pid in confident if humans.get(pid)]
    confirm = sum(h == j for h, j in seen) / len(seen) if seen else None
    if policy.kind == "judge" and row.judge is not None and not judge_qualified(project, row.judge):
        note += " The judge is not qualified on this project (qualify it above): pairs route as adaptive overlap."
    elif policy.kind == "judge" and row.judge is not None and not signals:
        note += f" The judge has fewer than {MIN_CALIBRATION_PAIRS} pairs with human gold to calibrate on: pairs route as adaptive overlap."
    unsure_cost = overlap if policy.unsure == "full" else adaptive_cost
    # A confident pair costs one label when its first human agrees with the judge, else the
    # humans-only adaptive cost. Without observations, the judge's own calibrated confidence
    # stands for the confirm rate (a human agrees with a right judge at about the human rate).
    total = 0.0
    for pid in ids:
        s = signals.get(pid)
        if policy.kind == "uniform":
            total += overlap
        elif policy.kind == "adaptive" or s is None:
            total += adaptive_cost
        elif pid in confident:
            b = confirm if confirm is not None else s.confidence * agree
            total += b * 1.0 + (1.0 - b) * adaptive_cost
        elif not s.orders_agree or s.confidence < policy.threshold:
            total += unsure_cost
        else:
            total += adaptive_cost  # a spot-checked pair
    return Preview(
        pairs=len(ids), uniform_labels=len(ids) * overlap, expected_labels=total, human_agreement=agree,
        human_agreement_n=len(twice), confident_pairs=len(confident), judge_confirm_rate=confirm, note=note.strip(),
    )  # fmt: skip


# --- turning a policy on or off ---------------------------------------------------------------------


def routing_policy_save(
    *, project: Project, kind: str, k: int, judge: Rater | None, threshold: float, spot_check_rate: float,
    unsure: str,
) -> RoutingPolicy:  # fmt: skip
    """Store the project's policy (audited) and decide every regular pair under it at once, so
    the queue serves by it from the next claim. Turning it off (uniform) keeps the decisions
    made so far on record; the queue simply stops reading them."""
    from .audit import audit_record, audit_snapshot

    if kind == RoutingPolicy.Kind.JUDGE and (judge is None or judge.kind != Rater.Kind.JUDGE):
        from .errors import ValidationError

        raise ValidationError("Judge routing needs a judge.", field="judge")
    if kind == RoutingPolicy.Kind.JUDGE and judge is not None:
        routing_judge_check(project, judge)
    with transaction.atomic():
        row, created = RoutingPolicy.objects.select_for_update().get_or_create(project=project)
        before = None if created else audit_snapshot(row)
        row.kind, row.k, row.judge, row.threshold = kind, k, judge, threshold
        row.spot_check_rate, row.unsure = spot_check_rate, unsure
        row.full_clean(exclude=["project"])
        row.save()
        project.__dict__.pop(_POLICY_MEMO, None)
        project._state.fields_cache.pop("routing_policy", None)  # a policy loaded with the project
        audit_record(action="routing.policy", obj=row, before=before, after=audit_snapshot(row))
        routing_refresh(project=project)
    return row
