"""Judge qualification on a project: a judge (or a panel, as one rater) against the project's
human gold.

Gold comes from annotate.verdicts (through annotate.routing_services.human_gold: a gold pair's
known answer, or the gold of a pair's human labels when it has enough of them); kappa is
reports.metrics.agreement's Cohen's kappa; calibration is judges.calibration's. Every figure has
a 95% percentile bootstrap interval over pairs. The result is stored (judges.JudgeQualification)
with the project's bar and the date; routing uses only a judge whose latest row qualified.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.conf import settings

from annotate.models import Pair, Project, Rater, RoutingPolicy
from annotate.routing_services import bar_shortfalls, human_gold, judge_raw
from judges.calibration import cross_fit, ece_interval, fold_ids, reliability
from judges.models import Judge, JudgeQualification, Panel
from judges.panels import panel_refresh

from .metrics.agreement import cohen_kappa_from_confusion
from .metrics.bootstrap import percentile_ci


@dataclass(frozen=True)
class Figures:
    n: int
    accuracy: float | None
    accuracy_ci: list[float] | None
    kappa: float | None
    kappa_ci: list[float] | None
    consistency: float | None
    consistency_ci: list[float] | None
    ece: float | None
    ece_ci: list[float] | None
    reliability: dict


def _ci(samples: np.ndarray) -> list[float] | None:
    lo, hi = percentile_ci(samples[:, None])[:, 0]
    return None if np.isnan(lo) else [float(lo), float(hi)]


def _reliability_json(conf: np.ndarray, correct: np.ndarray) -> dict:
    r = reliability(conf, correct)
    return {
        "ece": r.ece,
        "bins": [
            {"lo": float(r.edges[b]), "hi": float(r.edges[b + 1]), "n": int(r.counts[b]),
             "confidence": None if not r.counts[b] else float(r.confidence[b]),
             "accuracy": None if not r.counts[b] else float(r.accuracy[b])}
            for b in range(len(r.counts))
        ],
    }  # fmt: skip


def qualification_figures(
    verdict: np.ndarray, gold: np.ndarray, score: np.ndarray, both_orders: np.ndarray, agree: np.ndarray,
    groups: np.ndarray, *, rounds: int, seed: int = 0,
) -> Figures:  # fmt: skip
    """The figures from per-pair arrays (judge's combined verdict, gold, raw score, whether both
    orders were judged and whether they agreed, the item of the pair)."""
    n = len(verdict)
    if n == 0:
        return Figures(0, None, None, None, None, None, None, None, None, {})
    correct = verdict == gold
    conf_cells = np.bincount(verdict * 3 + gold, minlength=9).reshape(3, 3).astype(float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(rounds, n))
    cells = (np.arange(rounds)[:, None] * 9 + (verdict * 3 + gold)[draws]).ravel()
    boot_conf = np.bincount(cells, minlength=rounds * 9).reshape(rounds, 3, 3).astype(float)
    acc_s = correct[draws].mean(axis=1)
    kappa_s = cohen_kappa_from_confusion(boot_conf)
    both = both_orders.astype(bool)
    consistency = float(agree[both].mean()) if both.any() else None
    with np.errstate(all="ignore"):
        cons_s = (agree[draws] & both[draws]).sum(axis=1) / both[draws].sum(axis=1)
    folds = fold_ids(groups, folds=5, seed=seed)
    conf = cross_fit(score, correct, folds, strata=(verdict == 1).astype(int))
    ece_lo, ece_hi = ece_interval(conf, correct, rounds=rounds, seed=seed)
    after = _reliability_json(conf, correct)
    kappa = float(cohen_kappa_from_confusion(conf_cells))
    return Figures(
        n=n, accuracy=float(correct.mean()), accuracy_ci=_ci(acc_s),
        kappa=None if np.isnan(kappa) else kappa, kappa_ci=_ci(kappa_s),
        consistency=consistency, consistency_ci=_ci(cons_s) if consistency is not None else None,
        ece=float(after["ece"]), ece_ci=[ece_lo, ece_hi],
        reliability={"before": _reliability_json(score, correct), "after": after},
    )  # fmt: skip


def judge_qualify(*, project: Project, judge: Judge, rounds: int | None = None) -> JudgeQualification:
    """Measure the judge on the project's human gold and store the result with the bar."""
    return _qualify(project=project, rater=judge.rater, owner={"judge": judge}, rounds=rounds)


def panel_qualify(*, project: Project, panel: Panel, rounds: int | None = None) -> JudgeQualification:
    """Measure the panel as one rater, exactly as a judge: its materialised verdicts
    (judges.panels.panel_refresh, refreshed first so they are its members' latest), their
    stored probability of the panel's verdict as its raw score (the members' vote share for
    "majority", the mean of their calibrated probabilities for "mean"), and its members' shown
    orders for position consistency (annotate.routing_services.judge_raw)."""
    if panel.project_id != project.pk:
        raise ValueError("a panel is qualified on its own project only")
    panel_refresh(panel)
    return _qualify(project=project, rater=panel.rater, owner={"panel": panel}, rounds=rounds)


def _qualify(*, project: Project, rater: Rater, owner: dict, rounds: int | None) -> JudgeQualification:
    policy = RoutingPolicy.objects.filter(project=project).first() or RoutingPolicy(project=project)
    gold = human_gold(project, min_humans=min(policy.k, project.overlap))
    raw = judge_raw(rater, gold)
    pids = [pid for pid in gold if pid in raw]
    items = dict(Pair.objects.filter(pk__in=pids).values_list("pk", "item_id"))
    figures = qualification_figures(
        np.array([raw[p].verdict for p in pids], dtype=np.int64),
        np.array([gold[p] for p in pids], dtype=np.int64),
        np.array([raw[p].score for p in pids], dtype=float),
        np.array([raw[p].orders >= 2 for p in pids], dtype=bool),
        np.array([raw[p].orders_agree for p in pids], dtype=bool),
        np.array([items[p] for p in pids]),
        rounds=rounds if rounds is not None else settings.CONCORDANCE["BOOTSTRAP_ROUNDS"],
    )
    qualified = not bar_shortfalls(n=figures.n, kappa=figures.kappa, consistency=figures.consistency,
                                   min_kappa=policy.min_kappa, min_consistency=policy.min_consistency)  # fmt: skip
    return JudgeQualification.objects.create(
        project=project, **owner, n=figures.n, accuracy=figures.accuracy, accuracy_ci=figures.accuracy_ci,
        kappa=figures.kappa, kappa_ci=figures.kappa_ci, consistency=figures.consistency,
        consistency_ci=figures.consistency_ci, ece=figures.ece, ece_ci=figures.ece_ci,
        reliability=figures.reliability, min_kappa=policy.min_kappa, min_consistency=policy.min_consistency,
        qualified=qualified,
    )  # fmt: skip
