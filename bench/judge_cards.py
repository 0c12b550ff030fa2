"""What the judge cards and the style-controlled boards (issue 14) add to a report, and how the
style-controlled fit (Newton, reports/metrics/style.py) compares with the naive way (one
scikit-learn unpenalised LogisticRegression per rater group on the same design).

python bench/judge_cards.py [--items 3000] [--repeats 3]. Synthetic table of bench/reports.py
(8 models, 20 humans, 4 judges). Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from sklearn.linear_model import LogisticRegression  # noqa: E402

from bench.reports import synthetic_table  # noqa: E402
from reports import build  # noqa: E402
from reports.build import ReportOptions, report_from_table  # noqa: E402
from reports.cards import CardInputs  # noqa: E402
from reports.metrics.leaderboard import comparisons  # noqa: E402
from reports.metrics.style import STYLE_FEATURES, style_controlled_bt  # noqa: E402
from reports.metrics.verdicts import TIE, B, combine_orders  # noqa: E402


def _styles(n_items: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    k = 2 * n_items
    return pd.DataFrame({"response": np.arange(k), "length": rng.integers(50, 3000, k), "headers": rng.integers(0, 4, k),
                         "list_items": rng.integers(0, 9, k), "bold": rng.integers(0, 4, k)})  # fmt: skip


def _naive_style_fits(verdicts: pd.DataFrame, prefs: pd.DataFrame, styles: pd.DataFrame) -> None:
    responses = prefs.drop_duplicates("pair")[["pair", "response_a", "response_b"]]
    s = styles.set_index("response")[list(STYLE_FEATURES)]
    for _, grp in verdicts.groupby("rater"):
        comps = comparisons(grp)
        comps = grp.loc[comps.index].merge(responses, on="pair")
        models = sorted(set(comps["model_a"]) | set(comps["model_b"]))
        x = np.zeros((len(comps), len(models)))
        x[np.arange(len(comps)), comps["model_a"].map(models.index)] += 1
        x[np.arange(len(comps)), comps["model_b"].map(models.index)] -= 1
        fa, fb = s.loc[comps["response_a"]].to_numpy(float), s.loc[comps["response_b"]].to_numpy(float)
        with np.errstate(invalid="ignore"):
            d = np.nan_to_num((fa - fb) / (fa + fb))
        x = np.column_stack([x[:, 1:], (d - d.mean(0)) / d.std(0)])
        v = comps["verdict"].to_numpy()
        tie = v == TIE
        LogisticRegression(C=np.inf, fit_intercept=False, max_iter=10_000).fit(
            np.vstack([x, x[tie]]), np.concatenate([(v != B).astype(int), np.zeros(tie.sum(), int)]),
            sample_weight=np.concatenate([np.where(tie, 0.5, 1.0), np.full(tie.sum(), 0.5)]),
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    table = synthetic_table(args.items, seed=1)
    styles = _styles(args.items, seed=2)
    opts = ReportOptions(rounds=args.rounds)
    with_cards, without, ours, naive = [], [], [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        report_from_table(table, opts, CardInputs(styles=styles))
        with_cards.append(time.perf_counter() - t0)
        # The same report with the issue-14 sections stubbed out: what they add.
        saved = (build.judge_cards_section, build.evaluators_section, build.style_section)
        build.judge_cards_section = lambda *a, **k: ((lambda: []), {})  # type: ignore[assignment]
        build.evaluators_section = lambda *a, **k: (lambda: {})  # type: ignore[assignment]
        build.style_section = lambda *a, **k: (lambda: {})  # type: ignore[assignment]
        try:
            t0 = time.perf_counter()
            report_from_table(table, opts, CardInputs(styles=styles))
            without.append(time.perf_counter() - t0)
        finally:
            build.judge_cards_section, build.evaluators_section, build.style_section = saved
        prefs = build._preferences(table, opts)
        verdicts = combine_orders(prefs)
        responses = prefs.drop_duplicates("pair")[["pair", "response_a", "response_b"]]
        t0 = time.perf_counter()
        for _, grp in verdicts.groupby("rater"):
            comps = grp.loc[comparisons(grp).index].merge(responses, on="pair")
            style_controlled_bt(comps, styles)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _naive_style_fits(verdicts, prefs, styles)
        naive.append(time.perf_counter() - t0)
    load = os.getloadavg()[0]
    med = statistics.median
    print(f"items {args.items}, annotations {len(table)}, bootstrap rounds {args.rounds}, load average {load:.1f}")
    print(f"report with cards + style: {med(with_cards):.2f} s (runs {', '.join(f'{t:.2f}' for t in with_cards)})")
    print(f"report without them:       {med(without):.2f} s")
    print(f"style fits, ours (Newton + Wald CI, {verdicts['rater'].nunique()} raters): {med(ours):.3f} s; "
          f"scikit-learn per rater (point only): {med(naive):.3f} s")  # fmt: skip
    print(json.dumps({"annotations": len(table), "seconds": med(with_cards), "baseline_seconds": med(without),
                      "added_seconds": med(with_cards) - med(without), "style_fit_seconds": med(ours),
                      "naive_style_fit_seconds": med(naive), "ratio": med(naive) / med(ours), "load_average": load}))


if __name__ == "__main__":
    main()
