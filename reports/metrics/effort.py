"""Human effort: labels spent per pair against uniform overlap, where routed gold and full gold
differ, and the labels-vs-agreement curve of the routing policies replayed on a project's own
fully labelled pairs (the live counterpart of bench/routing.py).

Pure functions over per-pair human verdicts (annotate.verdicts codes, earliest first); the
policies are annotate.routing's and gold is annotate.verdicts' gold_label.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from annotate.routing import JudgeSignal, Policy, decide, reads_labels_only, routed_gold
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
    1..overlap humans, the naive way.

    A pair's outcome under the first-m points and under a policy that reads only the labels
    (annotate.routing.reads_labels_only) is a function of its labels alone, and pairs have few
    distinct label sequences (at most 3**overlap): those points replay each sequence once, and
    their intervals count each round's draws per sequence once for all of them (the same draws
    and the same means as resampling every pair's hit: sums of 0/1 are exact). Replaying every
    pair in Python took 2.6 s of a report page at 25,641 pairs (measured here). A judge policy
    reads the pair's judge signal and spot-check draw too, and is replayed pair by pair."""
    full = {pid: tuple(v[:overlap]) for pid, v in votes.items() if len(v) >= overlap}
    if not full:
        return []
    ids = sorted(full)
    sequences: dict[tuple[int, ...], int] = {}
    kind = np.array([sequences.setdefault(full[p], len(sequences)) for p in ids], dtype=np.int64)
    distinct = list(sequences)
    gold_of_kind = np.array([gold_of(seq) for seq in distinct], dtype=object)  # each sequence's full gold
    gold = gold_of_kind[kind]
    # Per round, how many of its draws are of each label sequence (rounds x sequences).
    per_kind = None
    if rounds > 0:
        per_kind = np.concatenate([
            np.bincount((kind[block] + len(distinct) * np.arange(len(block))[:, None]).ravel(),
                        minlength=len(block) * len(distinct)).reshape(-1, len(distinct))
            for block in _draws(len(ids), rounds, seed)
        ])  # fmt: skip
    points = []
    named: list[tuple[str, int | None, Policy | None]] = [(f"first {m} human{'s' if m > 1 else ''}", m, None) for m in range(1, overlap + 1)]
    named += [(name, None, policy) for name, policy in policies]
    for name, m, policy in named:
        means = None
        if policy is None or reads_labels_only(policy):
            # One replay per label sequence (no signal, no pair key: the policy does not read them).
            outcome = [_replay(seq, m, policy, None, 0, seed) for seq in distinct]
            asked_of = np.array([len(asked) for asked, _ in outcome], dtype=np.int64)
            reached = np.array([g for _, g in outcome], dtype=object)
            used = int(asked_of[kind].sum())
            hit_of = reached == gold_of_kind
            hits = hit_of[kind].astype(bool)
            if per_kind is not None:
                means = (per_kind @ hit_of.astype(np.float64)) / len(ids)
        else:
            used, hits = 0, np.zeros(len(ids), dtype=bool)
            for i, pid in enumerate(ids):
                asked, reached_gold = _replay(full[pid], m, policy, (signals or {}).get(pid), pid, seed)
                hits[i] = reached_gold == gold[i]
                used += len(asked)
            if rounds > 0:
                means = np.concatenate([hits[block].mean(axis=1) for block in _draws(len(ids), rounds, seed)])
        ci = None
        if means is not None:
            lo, hi = percentile_ci(means[:, None])[:, 0]
            ci = [float(lo), float(hi)]
        points.append({"policy": name, "labels": used, "full_labels": len(ids) * overlap,
                       "saved_fraction": 1.0 - used / (len(ids) * overlap), "agreement": float(hits.mean()),
                       "agreement_ci": ci, "n": len(ids)})  # fmt: skip
    return points


def _draws(n: int, rounds: int, seed: int, chunk: int = 64) -> Iterator[np.ndarray]:
    """The bootstrap's resamples of n pairs, `chunk` rounds at a time: the rows of one
    integers(0, n, size=(rounds, n)) draw of the seeded generator (its stream is read in the
    same order), without holding all of them (205 MB at 25,641 pairs)."""
    rng = np.random.default_rng(seed)
    for start in range(0, rounds, chunk):
        yield rng.integers(0, n, size=(min(chunk, rounds - start), n))


def _replay(labels: Sequence[int], m: int | None, policy: Policy | None, signal: JudgeSignal | None, pair_key: int,
            seed: int) -> tuple[list[int], int | None]:  # fmt: skip
    """One pair's replay: the labels asked for and the gold reached, under the first m humans
    (policy None) or a policy asking for the recorded labels one at a time."""
    if policy is None:
        asked = list(labels[: m or len(labels)])
        return asked, gold_of(asked)
    asked = []
    while True:
        d = decide(policy, asked, signal, pair_key=pair_key, seed=seed)
        if not d.need_more or len(asked) == len(labels):
            break
        asked.append(labels[len(asked)])
    return asked, routed_gold(asked, signal, d)
