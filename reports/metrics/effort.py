"""Human effort: labels spent per pair against uniform overlap, where routed gold and full gold
differ, and the labels-vs-agreement curve of the routing policies replayed on a project's own
fully labelled pairs (the live counterpart of bench/routing.py).

Pure functions over per-pair human verdicts (annotate.verdicts codes, earliest first); the
policies are annotate.routing's and gold is annotate.verdicts' gold_label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from annotate.routing import JudgeSignal, Policy, decide, routed_gold
from annotate.verdicts import VERDICT_LABELS, gold_label

from .bootstrap import percentile_ci


def gold_of(votes: Sequence[int]) -> int | None:
    label = gold_label([v - 1 for v in votes])  # verdict code - 1 is a strength of that sign
    return None if label is None else VERDICT_LABELS.index(label)


def effort_summary(votes: Mapping[int, Sequence[int]], closed_with: Mapping[int, int], *, pairs: int,
                   overlap: int) -> dict:  # fmt: skip
    """votes: human verdicts per regular pair; closed_with: for pairs a routing policy closed,
    how many humans it had then. Routed gold = gold of those first humans; full gold = gold of
    every label, compared only where the pair has since reached the full overlap."""
    spent = sum(len(v) for v in votes.values())
    per_pair = np.bincount([len(v) for v in votes.values()], minlength=overlap + 1) if votes else np.zeros(overlap + 1)
    compared, differ = 0, []
    for pid, n in closed_with.items():
        v = votes.get(pid, [])
        if n and len(v) >= overlap and n < len(v):
            compared += 1
            if gold_of(v[:n]) != gold_of(v):
                differ.append(pid)
    uniform = pairs * overlap
    return {
        "pairs": pairs, "labels": spent, "uniform_labels": uniform,
        "saved_fraction": None if not uniform else 1.0 - spent / uniform,
        "labels_per_pair": spent / pairs if pairs else None,
        "pairs_by_labels": {str(k): int(c) for k, c in enumerate(per_pair) if c},
        "closed_by_routing": len(closed_with), "compared_with_full_gold": compared,
        "routed_differs_from_full": differ,
    }  # fmt: skip


def effort_curve(votes: Mapping[int, Sequence[int]], *, overlap: int, policies: Sequence[tuple[str, Policy]],
                 signals: Mapping[int, JudgeSignal] | None = None, rounds: int = 1000, seed: int = 0) -> list[dict]:  # fmt: skip
    """Replay each policy on the pairs with the full overlap of human labels, asking for their
    recorded labels one at a time: labels used and agreement of the gold reached with the full
    gold (95% bootstrap interval over pairs). The first points are uniform overlap with
    1..overlap humans, the naive way."""
    full = {pid: list(v[:overlap]) for pid, v in votes.items() if len(v) >= overlap}
    if not full:
        return []
    ids = sorted(full)
    gold = np.array([gold_of(full[p]) for p in ids])
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(ids), size=(rounds, len(ids))) if rounds > 0 else None
    points = []
    named: list[tuple[str, int | None, Policy | None]] = [(f"first {m} human{'s' if m > 1 else ''}", m, None) for m in range(1, overlap + 1)]
    named += [(name, None, policy) for name, policy in policies]
    for name, m, policy in named:
        used, hits = 0, np.zeros(len(ids), dtype=bool)
        for i, pid in enumerate(ids):
            asked: list[int]
            if policy is None:
                asked = full[pid][: m or overlap]
                hits[i] = gold_of(asked) == gold[i]
            else:
                signal = (signals or {}).get(pid)
                asked = []
                while True:
                    d = decide(policy, asked, signal, pair_key=pid, seed=seed)
                    if not d.need_more or len(asked) == overlap:
                        break
                    asked.append(full[pid][len(asked)])
                hits[i] = routed_gold(asked, signal, d) == gold[i]
            used += len(asked)
        ci = None
        if draws is not None:
            lo, hi = percentile_ci(hits[draws].mean(axis=1)[:, None])[:, 0]
            ci = [float(lo), float(hi)]
        points.append({"policy": name, "labels": used, "full_labels": len(ids) * overlap,
                       "saved_fraction": 1.0 - used / (len(ids) * overlap), "agreement": float(hits.mean()),
                       "agreement_ci": ci, "n": len(ids)})  # fmt: skip
    return points
