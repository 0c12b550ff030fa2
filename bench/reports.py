"""Benchmark: the whole JSON report over 1,000,000 synthetic annotations, bootstrap included.

What is timed: `report_from_table` on the long-format annotation frame already in memory (the
frame the selector would return): one verdict per rater and pair, gold, every agreement,
consistency, judge-audit and leaderboard figure, 1,000 bootstrap rounds, JSON rendering. The
database load is not in the main figure (it is the selector's two streamed queries).

Planted effects, checked at the end: 8 models with known Bradley-Terry strengths (the human
leaderboard must recover their order); judge "m0-judge" *is* model m0 and adds +150 Elo to its
own responses (DBG > 0); "positional" picks the response shown first on 25% of pairs (position
consistency ~0.75); "verbose" prefers longer responses (longer-wins rate above gold's).

Baseline: a straightforward per-row Python implementation of the same figures (dicts and loops,
bootstrap by recomputing on resampled items). It is timed on a 1/50 item subsample with a few
bootstrap rounds and extrapolated linearly to the full size and 1,000 rounds (stated below).

Run: python bench/reports.py [--annotations N [N ...]] [--repeats 3] [--rounds 1000] [--no-trace]

Each size runs in its own process (its max RSS, VmHWM, is its own) and prints one JSON line:
the BENCH.md keys (`seconds` = median wall time of --repeats runs) and beside them the runs,
`cpu_seconds` (median process CPU time: on a shared machine the wall clock also counts waits
for a core), `max_rss_mb` (the whole process, table included), the load average and rounds.
`peak_mb` is the tracemalloc peak of one extra run (as quoted before), or the max RSS with
--no-trace. The baseline runs on the first 512 items at every size and is extrapolated.

Incremental (reports.incremental, --absorb 10000, 0 to skip): 10,000 annotations absorbed into a
report computed without them, beside a rebuild on the same union table, alternating, --repeats
runs of each (medians quoted; each absorb from the same computed state):
`absorb_annotations`, `absorb_seconds`, `rebuild_seconds`, `absorb_ratio` (and
`absorb_cpu_ratio`) for rows drawn at random from the table, and the same keys with
`_new_items` for rows concentrated on the last items (a new batch every rater annotates),
`_one_judge` for one judge's rows on the last items (a judge run over items the others had
annotated), `_judge_new_items` for one judge's rows on a new batch nobody else has annotated
yet (a judge run ahead of the humans; the table is then the others' rows without that batch),
`_humans` for the humans' rows drawn at random (humans annotating items judges had judged), and
`_new_judge` for one judge's first run (a judge added to the project: the table had none of its
rows). Beside them, what keeping the state between two page views costs (`state_mb`,
`state_live_seconds`: reports.cache keeps it live; `state_file_cache_store_seconds` and
`state_file_cache_read_seconds`: the shipped file cache, where it was kept before session 16).
Measured up to 2M annotations.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from bench._machine import describe, reference_seconds, summary  # noqa: E402
from reports.build import ReportOptions, release_freed_memory, report_from_table  # noqa: E402
from reports.selectors import CATEGORICAL, COLUMNS, finish_table  # noqa: E402

MODELS = [f"m{k}" for k in range(8)]
TRUE_ELO = np.linspace(1175, 825, len(MODELS))  # m0 strongest
HUMANS = [f"h{k}" for k in range(20)]
JUDGES = {"m0-judge": "m0", "positional": "", "verbose": "", "plain": ""}
ATTRIBUTES = ["helpfulness", "correctness"]
PER_ITEM = 3 + 2 * len(JUDGES) + 2 * (3 + len(JUDGES)) * len(ATTRIBUTES)  # 39 annotations


def synthetic_table(n_items: int, seed: int = 0) -> pd.DataFrame:
    """The long annotation frame the selector returns, built column by column: categorical
    columns as codes, numbers as numpy arrays (10M rows fit in about 1 GB)."""
    rng = np.random.default_rng(seed)
    n = n_items
    ia = rng.integers(0, len(MODELS), n)
    ib = (ia + rng.integers(1, len(MODELS), n)) % len(MODELS)
    len_a = rng.lognormal(6, 0.6, n).astype(np.int64) + 1
    len_b = rng.lognormal(6, 0.6, n).astype(np.int64) + 1
    items = np.arange(n)
    pair = items
    resp_a, resp_b = 2 * items, 2 * items + 1
    frames: list[dict] = []
    next_id = [0]

    def ids(k: int) -> np.ndarray:
        out = np.arange(next_id[0], next_id[0] + k)
        next_id[0] += k
        return out

    def pref_frame(rater: str, kind: str, model: str, strength: np.ndarray, order: str, sel=None, probs=None):
        sel = np.arange(n) if sel is None else sel
        k = len(sel)
        f = {"_n": k, "protocol": "ranking", "id": ids(k),
             "created_at": np.datetime64("2025-01-01", "us") + np.arange(k).astype("timedelta64[s]"),
             "rater": f"{kind}:{rater}", "kind": kind, "rater_model": model, "item": items[sel], "item_role": "task",
             "pair": pair[sel], "response_a": resp_a[sel], "response_b": resp_b[sel],
             "model_a": (MODELS, ia[sel]), "model_b": (MODELS, ib[sel]),
             "len_a": len_a[sel], "len_b": len_b[sel], "strength": strength, "shown_order": order}  # fmt: skip
        if probs is not None:
            f["p_a"], f["p_tie"], f["p_b"] = probs
        frames.append(f)

    def verdict_strength(p_a: np.ndarray, tie: float) -> np.ndarray:
        u = rng.random(len(p_a))
        s = np.where(u < p_a * (1 - tie), -1, np.where(u < p_a * (1 - tie) + tie, 0, 1))
        return s * rng.integers(1, 4, len(p_a))

    base_diff = TRUE_ELO[ia] - TRUE_ELO[ib]
    p_a_true = 1 / (1 + 10 ** (-base_diff / 400))
    # Humans: three distinct annotators of 20 per pair, 10% ties.
    base = rng.integers(0, len(HUMANS), n)
    for slot in range(3):
        who = (base + 7 * slot) % len(HUMANS)
        s = verdict_strength(p_a_true, 0.1)
        for h in range(len(HUMANS)):
            sel = np.nonzero(who == h)[0]
            pref_frame(HUMANS[h], "human", "", s[sel], "ab" if slot % 2 else "ba", sel=sel)
    for judge, model in JUDGES.items():
        diff = base_diff.copy()
        if model:
            diff = diff + 150 * (np.array(MODELS)[ia] == model) - 150 * (np.array(MODELS)[ib] == model)
        if judge == "verbose":
            diff = diff + 0.4 * (len_a - len_b)
        p_a = 1 / (1 + 10 ** (-diff / 400))
        for order in ("ab", "ba"):
            s = verdict_strength(p_a, 0.05)
            if judge == "positional":
                first = rng.random(n) < 0.25
                s = np.where(first, -2 if order == "ab" else 2, s)
            noise = np.clip(p_a + rng.normal(0, 0.1, n), 0.01, 0.99)
            pref_frame(judge, "judge", model, s, order, probs=(noise, np.zeros(n), 1 - noise))
    # Ratings: the latent quality with noise on a 0-4 scale; three humans and every judge.
    model_of = np.empty(2 * n, dtype=np.int64)
    model_of[resp_a], model_of[resp_b] = ia, ib
    quality = (TRUE_ELO[model_of] - 1000) / 120 + 2
    resp_item = np.repeat(items, 2)
    resp_len = np.empty(2 * n, dtype=np.int64)
    resp_len[resp_a], resp_len[resp_b] = len_a, len_b
    for attribute in ATTRIBUTES:
        for rater, kind, model in [(f"h{k}r", "human", "") for k in range(3)] + [(j, "judge", m) for j, m in JUDGES.items()]:
            value = np.clip(np.rint(quality + rng.normal(0, 0.9, 2 * n)), 0, 4).astype(np.int64)
            k = 2 * n
            frames.append({
                "_n": k, "protocol": "rating", "id": ids(k), "created_at": np.datetime64("2025-01-02", "us"),
                "rater": f"{kind}:{rater}", "kind": kind, "rater_model": model, "item": resp_item, "item_role": "task",
                "response": np.arange(2 * n), "model": (MODELS, model_of), "length": resp_len,
                "attribute": attribute, "value": value,
            })  # fmt: skip
    return finish_table(_columns(frames))


def _columns(frames: list[dict]) -> pd.DataFrame:
    """Concatenate frames given as columns (a scalar, an array, or (labels, codes) for a
    categorical column) into one DataFrame without materialising strings per row."""
    sizes = [f["_n"] for f in frames]
    total = sum(sizes)
    starts = np.cumsum([0, *sizes])
    cols: dict[str, object] = {}
    for name in COLUMNS:
        if name in CATEGORICAL:
            present = {str(x) for f in frames if name in f
                       for x in (f[name][0] if isinstance(f[name], tuple) else [f[name]])}  # fmt: skip
            labels = sorted(present | ({""} if any(name not in f for f in frames) else set()))
            index = {label: k for k, label in enumerate(labels)}
            codes = np.full(total, -1, dtype=np.int16)
            for f, lo, hi in zip(frames, starts[:-1], starts[1:], strict=True):
                if name not in f:
                    continue
                if isinstance(f[name], tuple):
                    own, c = f[name]
                    codes[lo:hi] = np.array([index[str(x)] for x in own], dtype=np.int16)[c]
                else:
                    codes[lo:hi] = index[str(f[name])]
            cols[name] = pd.Categorical.from_codes(codes, categories=labels)
        elif name == "created_at":
            out = np.empty(total, dtype="datetime64[us]")
            for f, lo, hi in zip(frames, starts[:-1], starts[1:], strict=True):
                out[lo:hi] = f[name]
            cols[name] = out
        elif name in ("p_a", "p_tie", "p_b"):
            out = np.full(total, np.nan)
            for f, lo, hi in zip(frames, starts[:-1], starts[1:], strict=True):
                if name in f:
                    out[lo:hi] = f[name]
            cols[name] = out
        else:
            values = np.zeros(total, dtype=np.int64)
            missing = np.ones(total, dtype=bool)
            for f, lo, hi in zip(frames, starts[:-1], starts[1:], strict=True):
                if name in f:
                    values[lo:hi] = f[name]
                    missing[lo:hi] = False
            cols[name] = pd.arrays.IntegerArray(values, missing) if missing.any() else values
        for f in frames:
            f.pop(name, None)  # each column's parts freed once it is built (peak memory)
    return pd.DataFrame(cols, copy=False)


# --- the per-row Python baseline ---------------------------------------------------------


def naive_report(rows: list[dict], rounds: int, seed: int) -> tuple[dict, float, float]:
    """Same figures with dicts and loops; returns (figures, seconds for the point, seconds per
    bootstrap round)."""
    t0 = time.perf_counter()
    point = _naive_figures(rows)
    t_point = time.perf_counter() - t0
    by_item: dict[int, list[dict]] = defaultdict(list)
    for r in rows:
        by_item[r["item"]].append(r)
    items = list(by_item)
    rnd = random.Random(seed)
    t0 = time.perf_counter()
    for _ in range(rounds):
        sample = rnd.choices(items, k=len(items))
        resampled = []
        for copy, it in enumerate(sample):
            for r in by_item[it]:
                resampled.append({**r, "pair": (r["pair"], copy) if r["protocol"] == "ranking" else r["pair"],
                                  "response": (r["response"], copy)})  # fmt: skip
        _naive_figures(resampled)
    t_round = (time.perf_counter() - t0) / max(rounds, 1)
    return point, t_point, t_round


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def _naive_figures(rows: list[dict]) -> dict:
    verdicts: dict[tuple, list[int]] = defaultdict(list)
    orders: dict[tuple, dict[str, int]] = defaultdict(dict)
    meta: dict = {}
    kind: dict[str, str] = {}
    scores: dict[tuple, float] = {}
    for r in rows:
        kind[r["rater"]] = r["kind"]
        if r["protocol"] == "ranking":
            v = _sign(r["strength"]) + 1
            verdicts[(r["rater"], r["pair"])].append(v)
            orders[(r["rater"], r["pair"])][r["shown_order"]] = v
            meta[r["pair"]] = r
        elif r["attribute"] == "helpfulness":
            scores[(r["rater"], r["response"])] = r["value"]
    combined = {k: (v[0] if min(v) == max(v) else 1) for k, v in verdicts.items()}
    per_pair: dict = defaultdict(dict)
    for (rater, p), v in combined.items():
        per_pair[p][rater] = v
    gold = {}
    for p, vs in per_pair.items():
        counts = [0, 0, 0]
        for rater, v in vs.items():
            if kind[rater] == "human":
                counts[v] += 1
        if sum(counts):
            gold[p] = counts.index(max(counts))
    out: dict = {"kappa": {}, "judge": {}, "position": {}, "consistency": {}, "length": {}, "self": {}}
    raters = sorted(kind)
    for i, a in enumerate(raters):
        for b in raters[i + 1:]:
            conf = [[0] * 3 for _ in range(3)]
            for vs in per_pair.values():
                if a in vs and b in vs:
                    conf[vs[a]][vs[b]] += 1
            n = sum(map(sum, conf))
            if n:
                po = sum(conf[k][k] for k in range(3)) / n
                pe = sum(sum(conf[k]) * sum(row[k] for row in conf) for k in range(3)) / n / n
                out["kappa"][(a, b)] = (po - pe) / (1 - pe) if pe < 1 else float("nan")
    for rater in raters:
        hits = n = lw = ln = own_w = own_n = cons = both = 0
        for p, vs in per_pair.items():
            if rater not in vs:
                continue
            v, m = vs[rater], meta[p]
            if p in gold:
                n += 1
                hits += v == gold[p]
            if v != 1 and m["len_a"] != m["len_b"]:
                ln += 1
                lw += (v == 0) == (m["len_a"] > m["len_b"])
            model = "m0" if rater == "judge:m0-judge" else None
            if model and (m["model_a"] == model) != (m["model_b"] == model):
                own = 0 if m["model_a"] == model else 2
                own_n += 1
                own_w += 1 if v == own else 0.5 if v == 1 else 0
            o = orders[(rater, p)]
            if len(o) == 2:
                cons += o["ab"] == o["ba"]
                both += 1
            sa, sb = scores.get((rater, m["response_a"])), scores.get((rater, m["response_b"]))
            if sa is not None and sb is not None:
                out["consistency"].setdefault(rater, []).append(_sign(sb - sa) + 1 == v)
        out["judge"][rater] = hits / n if n else None
        out["length"][rater] = lw / ln if ln else None
        out["self"][rater] = own_w / own_n if own_n else None
        out["position"][rater] = cons / both if both else None
    # Bradley-Terry by MM over the human comparisons.
    wins: dict = defaultdict(float)
    for (rater, p), v in combined.items():
        if kind[rater] == "human":
            m = meta[p]
            wins[(m["model_a"], m["model_b"])] += 1 if v == 0 else 0.5 if v == 1 else 0
            wins[(m["model_b"], m["model_a"])] += 1 if v == 2 else 0.5 if v == 1 else 0
    models = sorted({a for a, _ in wins})
    strength = {m: 1.0 for m in models}
    for _ in range(200):
        new = {}
        for i in models:
            w = sum(wins[(i, j)] for j in models if j != i)
            d = sum((wins[(i, j)] + wins[(j, i)]) / (strength[i] + strength[j]) for j in models if j != i)
            new[i] = w / d if d else strength[i]
        g = math.exp(sum(math.log(x) for x in new.values()) / len(new))
        strength = {m: x / g for m, x in new.items()}
    out["elo"] = {m: 400 * math.log10(x) + 1000 for m, x in strength.items()}
    return out


# --- main ------------------------------------------------------------------------------------


def _peak_rss_mb() -> float:
    """This process's own high-water RSS (VmHWM). Not getrusage's ru_maxrss: Linux carries that
    over from the parent across exec, so a child would report the orchestrator's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _measure(items: int, args: argparse.Namespace) -> dict:
    """One size, in this process (the caller runs each size in a child, so max RSS is its own)."""
    t0 = time.perf_counter()
    table = synthetic_table(items)
    # The generator's per-rater arrays are freed but leave holes in the heap that would count in
    # the report's RSS: handed back, as build_report's selector output would be in a worker.
    release_freed_memory()
    print(f"synthetic table: {len(table):,} annotations over {items:,} items "
          f"({time.perf_counter() - t0:.1f} s to build, {table.memory_usage(deep=True).sum() / 1e6:.0f} MB)",
          flush=True)  # fmt: skip
    opts = ReportOptions(rounds=args.rounds, seed=0, details=True)
    rss0 = _peak_rss_mb()
    peak_mb = None
    if args.trace:
        # Allocation peak of one report (tracemalloc, as the figure was quoted before issue 15);
        # a warm-up run besides, not timed.
        tracemalloc.start()
        report = report_from_table(table, opts)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        peak_mb = peak / 1e6
    times, cpu = [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        report = report_from_table(table, opts)
        json.dumps(report)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    seconds = statistics.median(times)
    rss1 = _peak_rss_mb()
    load = os.getloadavg()
    # CPU seconds beside wall seconds: on a machine shared with other work the wall clock
    # counts the waits for a core too (the report itself is single-threaded).
    print(f"report: median {seconds:.2f} s of {len(times)} runs {[round(t, 2) for t in times]}, "
          f"CPU {statistics.median(cpu):.2f} s "
          f"(load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}); "
          + (f"peak {peak_mb:.0f} MB allocated during the report (tracemalloc); " if peak_mb is not None else "")
          + f"process max RSS {rss1:.0f} MB ({rss0:.0f} MB before the report)", flush=True)  # fmt: skip

    # Planted effects recovered?
    board = report["leaderboard"]["humans"]["bradley_terry"]
    order = [row["model"] for row in board]
    sp = {r["judge"]: r for r in report["self_preference"]}["judge:m0-judge"]
    pos = {r["judge"]: r for r in report["position"]}
    length = {r["rater"]: r for r in report["length"]}
    print(f"human Bradley-Terry order {order} (planted {MODELS}); Kendall tau vs ratings "
          f"{report['leaderboard']['humans']['kendall_tau']:.3f}")  # fmt: skip
    print(f"m0-judge DBG {sp['dbg']:.3f} CI {sp['dbg_ci']} (planted > 0); positional consistency "
          f"{pos['judge:positional']['consistency']:.3f} (planted: below plain), plain {pos['judge:plain']['consistency']:.3f}")  # fmt: skip
    print(f"verbose longer-wins {length['judge:verbose']['longer_wins_rate']:.3f} vs gold "
          f"{length['judge:verbose']['gold_longer_wins_rate']:.3f}")  # fmt: skip
    if not (order == MODELS and sp["dbg"] > 0):
        print("WARNING: a planted effect was not recovered")

    # Baseline on a subsample of items (the same size at every scale), extrapolated linearly.
    sub = table[table["item"] < min(args.baseline_items, items)]
    rows = sub.astype(object).where(sub.notna(), None).to_dict("records")
    _, t_point, t_round = naive_report(rows, args.baseline_rounds, seed=0)
    scale = len(table) / len(sub)
    baseline = (t_point + args.rounds * t_round) * scale
    print(f"baseline (per-row Python): {len(sub):,} annotations: {t_point:.2f} s for the figures, "
          f"{t_round:.2f} s per bootstrap round; extrapolated x{scale:.1f} rows and {args.rounds} rounds "
          f"= {baseline:,.0f} s")  # fmt: skip
    # 1 + 2 x repeats more builds per case: left out above 2M annotations (minutes at 10M, and
    # the time to absorb is quoted at 1M).
    absorb_keys = _absorb_figures(table, opts, args.absorb, max(1, args.repeats)) if args.absorb and len(table) <= 2_000_000 else {}
    out = {"annotations": len(table), "seconds": round(seconds, 3),
           "peak_mb": round(peak_mb, 1) if peak_mb is not None else round(rss1, 1),
           "baseline_seconds": round(baseline, 1), "ratio": round(baseline / seconds, 1),
           "runs": [round(t, 3) for t in times],
           "cpu_seconds": round(statistics.median(cpu), 3), "max_rss_mb": round(rss1, 1), "load_average": round(load[0], 2),
           "rounds": args.rounds, **absorb_keys}  # fmt: skip
    return out


def _absorb_figures(table: pd.DataFrame, opts: ReportOptions, k: int, repeats: int = 1) -> dict:
    """Absorbing k new annotations into a computed report (reports.incremental) beside a full
    rebuild on the same union table (`repeats` runs of each, alternating; medians), in six ways
    of arriving: k rows drawn at random from the table (the generator's draw: they touch
    thousands of existing items), k rows concentrated on new items (the last items' rows, as a new batch), k rows of one judge
    on the last items (its run over items the others had annotated already), the same judge's
    k rows on a batch only it has judged (the others' rows on those items left out), and k of
    the humans' rows drawn at random (humans annotating items the judges had judged), and the
    judge's k rows as its first run (a judge added to the project: no rows of it before)."""
    from reports.incremental import absorb, build_state

    rng = np.random.default_rng(1)
    random_rows = np.zeros(len(table), dtype=bool)
    random_rows[rng.choice(len(table), min(k, len(table)), replace=False)] = True
    items = table["item"].to_numpy()
    new_items = items >= items.max() + 1 - math.ceil(k / PER_ITEM)
    judge = (table["rater"] == "judge:plain").to_numpy()
    one_judge = judge & (items >= np.sort(items[judge])[-min(k, int(judge.sum()))])
    # A judge run ahead of the humans: of the batch's items, only that judge's rows exist.
    ahead = ~(items >= np.sort(items[judge])[-min(k, int(judge.sum()))]) | judge
    # The humans annotating items the judges had judged: k of the humans' rows at random.
    human = np.flatnonzero((table["kind"] == "human").to_numpy())
    humans = np.zeros(len(table), dtype=bool)
    humans[rng.choice(human, min(k, len(human)), replace=False)] = True
    # A new judge's first run: the same judge's rows on the last items, and none of its rows before.
    first_run = ~judge | one_judge
    out: dict = {}
    for name, new, rows in (("", random_rows, None), ("_new_items", new_items, None), ("_one_judge", one_judge, None),
                            ("_judge_new_items", one_judge[ahead], ahead), ("_humans", humans, None),
                            ("_new_judge", one_judge[first_run], first_run)):  # fmt: skip
        base = table if rows is None else table[rows].reset_index(drop=True)
        old_rows = finish_table(base[~new].reset_index(drop=True))
        new_rows = finish_table(base[new].reset_index(drop=True))
        state = build_state(old_rows, opts)
        if not out:
            out.update(_keeping_figures(state))
        # Each absorb starts from the same computed state (absorb returns a new one), and the
        # absorbs and rebuilds alternate, so a slow minute of the machine falls on both.
        absorbs, rebuilds, spent = [], [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            after = absorb(state, new_rows)
            json.dumps(after.report)
            absorbs.append((time.perf_counter() - t0, time.process_time() - c0))
            spent.append(after.stats)
            union = after.table
            del after
            t0, c0 = time.perf_counter(), time.process_time()
            json.dumps(report_from_table(union, opts))
            rebuilds.append((time.perf_counter() - t0, time.process_time() - c0))
        del state
        t_absorb, c_absorb = (statistics.median(t[i] for t in absorbs) for i in (0, 1))
        t_rebuild, c_rebuild = (statistics.median(t[i] for t in rebuilds) for i in (0, 1))
        print(f"absorb{name or ' (random rows)'}: {int(new.sum()):,} new annotations absorbed in {t_absorb:.2f} s "
              f"(CPU {c_absorb:.2f} s) vs a rebuild of the same {len(union):,} in {t_rebuild:.2f} s "
              f"(CPU {c_rebuild:.2f} s), medians of {repeats} "
              f"(absorbs {[round(t[0], 2) for t in absorbs]}, rebuilds {[round(t[0], 2) for t in rebuilds]}), "
              f"load average {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
        where = _where_absorb_went(spent[sorted(range(repeats), key=lambda i: absorbs[i][0])[repeats // 2]])
        print(f"  where the median absorb went: {where['line']}", flush=True)
        out.update({f"absorb{name}_{k}": v for k, v in where.items() if k != "line"})
        out.update({f"absorb{name}_annotations": int(new.sum()), f"absorb{name}_seconds": round(t_absorb, 3),
                    f"rebuild{name}_seconds": round(t_rebuild, 3),
                    f"absorb{name}_ratio": round(t_absorb / t_rebuild, 3),
                    f"absorb{name}_cpu_ratio": round(c_absorb / c_rebuild, 3),
                    f"absorb{name}_runs": [round(t[0], 3) for t in absorbs],
                    f"rebuild{name}_runs": [round(t[0], 3) for t in rebuilds]})  # fmt: skip
    return out


def _where_absorb_went(stats: dict) -> dict:
    """An absorb's build by where its time went (reports.metrics.memo's seconds by function):
    the memoised computations it ran again (their own time, most costly first), hashing their
    inputs to look them up, and the rest (the whole-table steps every build runs, and waiting
    for the bootstrap's product)."""
    by = dict(stats["seconds_by"])  # most costly first (reports.incremental sorts it)
    keys = by.pop("(keys)", 0.0)
    memoised = sum(by.values())
    rest = stats["build_seconds"] - memoised - keys
    top = list(by.items())[:6]
    computed = stats["computed_by"]
    line = (f"memoised computations run again {memoised:.2f} s ({sum(computed.values())} calls; "
            + ", ".join(f"{k} {v:.2f} s x{computed.get(k, 0)}" for k, v in top)
            + f"), their keys {keys:.2f} s, the rest {rest:.2f} s (whole-table steps, the product)")  # fmt: skip
    return {"line": line, "memoised_seconds": round(memoised, 3), "keys_seconds": round(keys, 3),
            "rest_seconds": round(rest, 3), "top_memoised": {k: round(v, 3) for k, v in top}}  # fmt: skip


def _keeping_figures(state) -> dict:
    """What keeping a computed state between two page views costs: live in the process
    (reports.cache.KEPT_STATES: only state_bytes, its size) against the shipped file cache,
    which pickles and compresses it on every store and reads it back on every absorb (what
    reports.cache did before session 16)."""
    import tempfile

    from django.core.cache.backends.filebased import FileBasedCache

    from reports.cache import state_bytes

    t0 = time.perf_counter()
    size = state_bytes(state)
    t_live = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as where:
        files = FileBasedCache(where, {})
        t0 = time.perf_counter()
        files.set("state", state, timeout=3600)
        t_store = time.perf_counter() - t0
        t0 = time.perf_counter()
        files.get("state")
        t_read = time.perf_counter() - t0
    print(f"keeping the state ({size / 2**20:.0f} MiB): live {t_live:.3f} s (its size); the file cache "
          f"{t_store:.2f} s to store, {t_read:.2f} s to read back", flush=True)  # fmt: skip
    return {"state_mb": round(size / 2**20, 1), "state_live_seconds": round(t_live, 3),
            "state_file_cache_store_seconds": round(t_store, 3), "state_file_cache_read_seconds": round(t_read, 3)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--annotations", type=int, nargs="+",
                        help="sizes to measure, one JSON line each (default 1,000,000)")  # fmt: skip
    parser.add_argument("--items", type=int, help="one size given in items (39 annotations each)")
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per size; the median is quoted")
    parser.add_argument("--no-trace", dest="trace", action="store_false",
                        help="skip the tracemalloc run (peak_mb is then the process max RSS)")  # fmt: skip
    parser.add_argument("--baseline-items", type=int, default=512)
    parser.add_argument("--baseline-rounds", type=int, default=3)
    parser.add_argument("--absorb", type=int, default=10_000,
                        help="new annotations absorbed into a computed report, timed beside a rebuild (0: skip)")  # fmt: skip
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print("RESULT " + json.dumps(_measure(args.child, args)), flush=True)
        return
    if args.items:
        sizes = [args.items]
    else:
        sizes = [math.ceil(n / PER_ITEM) for n in (args.annotations or [1_000_000])]
    machine = describe()  # before the sizes: the machine quiet, no table in memory
    print(summary(machine), flush=True)
    results = []
    for items in sizes:
        # Each size in its own process: its max RSS is its own, and memory is returned between sizes.
        cmd = [sys.executable, __file__, "--child", str(items), *_passthrough(args)]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
        for line in proc.stdout.splitlines():
            if line.startswith("RESULT "):
                results.append(json.loads(line[len("RESULT "):]))
            else:
                print(line)
        # The seconds in units of the reference workload, comparable across machines where
        # the seconds are not; the workload timed again after each size says how much the
        # machine's own speed moved meanwhile (bench/_machine.py).
        after = reference_seconds()
        results[-1].update(cpu_model=machine["cpu_model"], reference_seconds=machine["reference_seconds"],
                           reference_seconds_after=after,
                           seconds_per_reference=round(results[-1]["seconds"] / machine["reference_seconds"], 1))
        print(json.dumps(results[-1]), flush=True)


def _passthrough(args: argparse.Namespace) -> list[str]:
    out = ["--rounds", str(args.rounds), "--repeats", str(args.repeats), "--baseline-items", str(args.baseline_items),
           "--baseline-rounds", str(args.baseline_rounds), "--absorb", str(args.absorb)]  # fmt: skip
    return out if args.trace else [*out, "--no-trace"]


if __name__ == "__main__":
    main()
