"""Assemble the whole report from the long-format annotation table.

`report_from_table` is pure (a DataFrame in, a JSON-ready dict out) so the benchmark and the
tests can feed it synthetic tables; `build_report` loads the table through the one selector.
Every figure registers its per-item sums with one Resampler, so the bootstrap of the whole
report is a single pass (reports/metrics/bootstrap.py).
"""

from __future__ import annotations

import ctypes
import functools
import gc
import itertools
import math
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd
from django.conf import settings
from django.utils import timezone

from annotate.adjudication import adjudicated_verdicts
from annotate.models import ChecklistQuestion, Project
from annotate.verdicts import (
    VERDICT_LABELS,
    GoldSource,
    combine_orders,
    gold_verdicts,
    verdict_of,
    with_adjudicated,
)

from .cards import CardInputs, evaluators_section, judge_cards_section, style_section
from .metrics.agreement import (
    Level,
    cohen_kappas_from_confusion,
    coincidences_per_unit,
    fleiss_from_sums,
    fleiss_unit_stats,
    krippendorff_from_coincidences,
    percent_from_confusion,
    rank_correlations_from_table,
)
from .metrics.bootstrap import Estimate, Resampler, per_unit_sums
from .metrics.checklists import COMPARISONS, checklist_effect
from .metrics.classification import SCORES, score_against_gold
from .metrics.consistency import Consistency, consistency, implied_verdicts
from .metrics.judges import (
    calibration,
    first_shown_win_rate,
    length_bias,
    position_both_orders,
    rating_self_preference,
    self_preference,
)
from .metrics.leaderboard import (
    bradley_terry,
    comparisons,
    kendall_tau_between,
    kendall_tau_ci,
    labels_in,
    rating_board,
)
from .metrics.memo import by_rater, memoised, on_pairs_of, pair_rows, relative_order, rows_of
from .metrics.panels import FIGURES as PANEL_FIGURES
from .metrics.panels import panel_vs_members
from .metrics.verdicts import apply_wildbench_rule
from .panels import mark_qualification, panel_members, qualification_marks
from .selectors import (
    RANKING,
    RATING,
    ReportFilters,
    annotations_table,
    judge_runs_table,
    judgments_table,
    response_styles,
)

TOP_LEVEL = ("agreement", "judge_vs_gold", "consistency", "position", "self_preference", "length", "leaderboard",
             "judge_cards", "evaluators", "checklists", "panels")  # fmt: skip
DEFAULT_ATTRIBUTES = ("helpfulness", "overall")


@dataclass
class ReportOptions:
    attribute: str | None = None
    rater_group: str | None = None  # rows shown; gold always comes from every human rater
    rounds: int = 1000
    seed: int = 0
    wildbench_k: int | None = None
    gold_panel: list[str] | None = None  # rater labels whose majority is gold, instead of all humans
    # "majority" or "adjudicated" (a reviewer's final verdict where there is one): annotate.verdicts
    gold: str = "majority"
    details: bool = False  # add a "details" key (charts: confusions, reliability bins, cross-rater)
    attribute_order: list[str] = field(default_factory=list)
    # Item ids (the table's `item`) that have a live checklist: the checklist section's split.
    checklist_items: frozenset = frozenset()
    # Panel rater label -> {"members": [member labels], "rule": ...} (reports.panels.panel_members).
    panels: dict[str, dict] = field(default_factory=dict)


def build_report(project: Project, filters: ReportFilters | None = None, **options: Any) -> dict:
    filters = filters or ReportFilters()
    opts = report_options(project, filters, options)
    table = annotations_table(project, table_filters(filters), apply_rater_group=False)
    release_freed_memory()  # the COPY reader's buffers and parser chunks
    inputs, adjudicated = report_inputs(project, opts)
    return finish_report(project, report_from_table(table, opts, inputs, adjudicated=adjudicated), opts)


# build_report in its steps, so reports.incremental can load only new rows and absorb them.


def report_options(project: Project, filters: ReportFilters, options: dict[str, Any]) -> ReportOptions:
    options = dict(options)
    options["gold"] = options.get("gold") or project.gold_source
    return ReportOptions(
        attribute=filters.attribute,
        rater_group=filters.rater_group,
        rounds=options.pop("rounds", settings.CONCORDANCE["BOOTSTRAP_ROUNDS"]),
        attribute_order=list(project.attributes.values_list("name", flat=True)),
        checklist_items=frozenset(ChecklistQuestion.objects.filter(item__project=project, retired_at__isnull=True)
                                  .values_list("item_id", flat=True)),
        panels=panel_members(project),
        **options,
    )


def table_filters(filters: ReportFilters) -> ReportFilters:
    """The selector's filters: every attribute and rater (gold comes from all humans)."""
    return ReportFilters(since=filters.since, until=filters.until, exclude_gold=filters.exclude_gold)


def report_inputs(
    project: Project, opts: ReportOptions, known: CardInputs | None = None
) -> tuple[CardInputs, pd.DataFrame | None]:
    """What the report reads besides annotation rows. `known`: a kept state's inputs, whose
    response styles are extended by the responses added since, not counted again."""
    inputs = CardInputs(judgments=judgments_table(project), runs=judge_runs_table(project),
                        styles=response_styles(project, known.styles if known is not None else None))  # fmt: skip
    adjudicated = adjudicated_verdicts(project) if opts.gold == "adjudicated" else None
    return inputs, adjudicated


def finish_report(project: Project, report: dict, opts: ReportOptions) -> dict:
    mark_qualification(report, qualification_marks(project))  # "not qualified" beside every judge
    if "details" in report:
        # When and from how much: the page says so, since a cached report can be an hour old.
        report["details"]["computed_at"] = timezone.now().isoformat(timespec="seconds")
    if opts.details:  # the report page's human-effort section (issue 13): routing data, not the table's
        from .effort import human_effort

        report["details"]["human_effort"] = human_effort(project, rounds=opts.rounds, seed=opts.seed)
    return report


# --- small helpers ---------------------------------------------------------------------------


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


def _ci(est: Estimate | _Slice | None, k: int | None = None) -> list[float | None] | None:
    if est is None or est.ci is None:
        return None
    ci = est.ci if k is None else est.ci[:, k]
    lo, hi = _num(ci[0]), _num(ci[1])
    return None if lo is None or hi is None else [lo, hi]


def _val(est: Estimate | _Slice | None, k: int | None = None) -> float | None:
    if est is None:
        return None
    return _num(est.value if k is None else est.value[k])


def _in_group(rater: str, kind: str, group: str | None) -> bool:
    if not group:
        return True
    if group == "humans":
        return kind == "human"
    if group == "judges":
        return kind == "judge"
    return rater == group


def choose_attribute(available: list[str], requested: str | None, order: list[str]) -> str | None:
    if requested:
        return requested if requested in available else None
    for name in DEFAULT_ATTRIBUTES:
        if name in available:
            return name
    ordered = [a for a in order if a in available] + sorted(set(available) - set(order))
    return ordered[0] if ordered else None


# --- the report ------------------------------------------------------------------------------


@contextmanager
def _older_objects_frozen() -> Iterator[None]:
    """Objects alive before the report (Django's, the modules', the table) are left out of the
    cycle collector's scans while it runs: release_freed_memory's collections and the automatic
    ones then walk only the report's own objects (about 0.2 s of 4.7 at 1M annotations went to
    walking the rest). Frozen objects are still freed by reference counting."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@_older_objects_frozen()
def report_from_table(
    table: pd.DataFrame,
    opts: ReportOptions,
    inputs: CardInputs | None = None,
    adjudicated: pd.DataFrame | None = None,
    *,
    prepare: Callable[[Resampler], None] | None = None,
) -> dict:
    """`adjudicated`: reviewers' final verdicts (pair, item, verdict), used as gold where
    opts.gold is "adjudicated" (annotate.verdicts.with_adjudicated). `prepare` sets up the
    shared Resampler before any figure registers (reports.incremental keeps its sums)."""
    # Items coded in id order, not in the order the rows came: the seeded bootstrap then draws
    # the same items whatever order the database returned them in, and a report that absorbed
    # new rows (reports.incremental) is the one a rebuild computes.
    items, item_ids = pd.factorize(table["item"], sort=True)
    table = table.assign(item=items)
    if adjudicated is not None and len(adjudicated):
        # Into the same item codes as the table; a decided pair nobody in the table judged has no figure to enter.
        code_of = pd.Series(np.arange(len(item_ids)), index=item_ids)
        adjudicated = adjudicated[adjudicated["item"].isin(code_of.index)]
        adjudicated = adjudicated.assign(item=code_of.loc[adjudicated["item"]].to_numpy())
    n_units = int(items.max()) + 1 if len(items) else 0
    boot = Resampler(n_units=n_units, rounds=opts.rounds, seed=opts.seed)
    if prepare is not None:
        prepare(boot)

    prefs = _preferences(table, opts)
    ratings = _ratings(table)
    raters = _raters(table)
    attribute = choose_attribute(
        list(ratings["attribute"].unique()) if len(ratings) else [], opts.attribute, opts.attribute_order
    )
    verdicts = combine_orders(prefs) if len(prefs) else _empty_verdicts()
    if opts.gold_panel:
        gold_source = verdicts[verdicts["rater"].isin(opts.gold_panel)]
    else:
        gold_source = verdicts[verdicts["kind"] == "human"]
    gold = with_adjudicated(gold_verdicts(gold_source), adjudicated, cast(GoldSource, opts.gold))
    shown = [r for r in raters if _in_group(r, raters[r]["kind"], opts.rater_group)]

    pending: dict[str, Any] = {}
    pending["agreement"] = _agreement(verdicts, ratings, shown, raters, boot)
    release_freed_memory()  # the agreement section's temporaries are the largest (rater pairs)
    # Each flush starts multiplying the figures registered so far while the next sections run
    # (Resampler.flush): the agreement section's are half the product's entries.
    boot.flush()
    pending["judge_vs_gold"] = _judge_vs_gold(verdicts, gold, shown, raters, boot, opts.gold)
    # The ratings of the report's attribute, one frame for the two sections that read them: split
    # by rater once (memo.by_rater keeps a frame's split while an update runs) and hashed once.
    rated = ratings[(ratings["attribute"] == attribute).to_numpy()] if attribute else ratings.iloc[:0]
    pending["consistency"] = _consistency(verdicts, rated, prefs, shown, raters, attribute, boot)
    boot.flush()
    # The judge bias audit's per-rater figures, by (figure, rater), which the judge cards reuse.
    audit: dict[tuple[str, str], Any] = {}
    pending["position"] = _position(prefs, gold, shown, raters, boot, audit)
    pending["self_preference"] = _self_preference(verdicts, gold, ratings, shown, raters, boot, audit)
    pending["length"] = _length(verdicts, gold, shown, boot, audit)
    pending["calibration"] = _calibration(prefs, gold, shown, raters, boot)
    pending["leaderboard"] = _leaderboard(verdicts, rated, shown, raters, opts, boot)
    boot.flush()
    # Issue 14 (reports/cards.py): judge report cards, the evaluator leaderboard, style control.
    inputs = inputs or CardInputs()
    pending["judge_cards"], gold_cards = judge_cards_section(prefs, verdicts, gold, shown, raters, inputs,
                                                             pd.Index(item_ids), boot, audit)  # fmt: skip
    pending["evaluators"] = evaluators_section(verdicts, gold_cards, boot)
    styled = style_section(verdicts, prefs, shown, raters, inputs.styles)
    has_checklist = np.isin(np.asarray(item_ids), list(opts.checklist_items)) if len(item_ids) else np.zeros(0, bool)
    pending["checklists"] = _checklists(verdicts, raters, has_checklist, boot)
    pending["panels"] = _panels(verdicts, gold, shown, opts.panels, boot, opts.gold)
    release_freed_memory()  # before the product's matrix is assembled (the report's peak)
    boot.run()

    report = {key: pending[key]() for key in TOP_LEVEL}
    for group, board in styled().items():
        # Each board gains its style-controlled twin (a group with comparisons always has a board).
        if group in report["leaderboard"]:
            report["leaderboard"][group]["style_controlled"] = board
    if opts.details:
        report["details"] = {
            "attribute": attribute,
            "bootstrap_rounds": opts.rounds,
            "n_annotations": len(table),
            "n_items": n_units,
            "n_gold_pairs": len(gold),
            "gold_source": opts.gold,
            "gold_counts": dict(zip(VERDICT_LABELS, np.bincount(gold["gold"].to_numpy(dtype=np.int64),
                                                                minlength=3).tolist(), strict=True)),
            **pending["agreement"].details(),
            **pending["judge_vs_gold"].details(),
            **pending["consistency"].details(),
            **pending["self_preference"].details(),
            "calibration": pending["calibration"](),
        }
    return report


def release_freed_memory() -> None:
    """Hand the heap's free pages back to the OS (glibc's malloc_trim; nothing elsewhere). The
    temporaries of a section at 10M annotations (1-30 MB arrays, below glibc's mmap threshold)
    leave free holes in the heap that still count as resident; the next section's large arrays
    are mapped fresh beside them. Measured at 10M: 160 MB off after the synthetic table."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    gc.collect()
    libc.malloc_trim(0)


class _Slice:
    """One row of a batched estimate (e.g. one rater pair of the agreement matrix)."""

    def __init__(self, est: Estimate, row: int, n: int) -> None:
        self._est, self._row, self.n = est, row, n

    @property
    def value(self) -> np.ndarray:
        return self._est.value[..., self._row, :]

    @property
    def ci(self) -> np.ndarray | None:
        ci = self._est.ci
        return None if ci is None else ci[..., self._row, :]


class _Section:
    """A report section: figures registered before the bootstrap, rendered to JSON after it."""

    def __init__(self, render, details=None):
        self._render = render
        self._details = details or (lambda: {})

    def __call__(self):
        return self._render()

    def details(self) -> dict:
        return self._details()


def _preferences(table: pd.DataFrame, opts: ReportOptions) -> pd.DataFrame:
    cols = ["id", "created_at", "rater", "kind", "item", "pair", "response_a", "response_b",
            "model_a", "model_b", "len_a", "len_b", "strength", "shown_order", "p_a", "p_tie", "p_b"]  # fmt: skip
    # Columns picked with the rows: filtering the whole table first copied all 25 of its columns
    # (600 MB at 10M annotations) to keep 17.
    p = table.loc[(table["protocol"] == RANKING).to_numpy(), cols]
    for col in ("pair", "response_a", "response_b", "len_a", "len_b", "strength"):
        p[col] = p[col].to_numpy(dtype=np.int64)
    labels = _labels(table)
    for col in ("rater", "kind", "model_a", "model_b", "shown_order"):
        p[col] = p[col].astype(labels)
    # Earliest annotation first: the order that breaks ties in the gold majority.
    p = p.sort_values(["created_at", "id"], kind="stable")
    p["order"] = np.arange(len(p))
    if opts.wildbench_k is not None:
        p = apply_wildbench_rule(p, opts.wildbench_k)
    return p


def _ratings(table: pd.DataFrame) -> pd.DataFrame:
    r = table.loc[(table["protocol"] == RATING).to_numpy(), ["rater", "kind", "item", "response", "model", "attribute", "value"]]
    for col in ("response", "value"):
        r[col] = r[col].to_numpy(dtype=np.int64)
    labels = _labels(table)
    for col in ("rater", "kind", "model", "attribute"):
        r[col] = r[col].astype(labels)
    return r


LABEL_COLUMNS = ("rater", "kind", "model_a", "model_b", "shown_order", "model", "attribute")


def _labels(table: pd.DataFrame) -> pd.CategoricalDtype:
    """One vocabulary for every label column of the report's frames (raters, kinds, models,
    attributes, shown orders): categoricals of the same categories compare, merge and group on
    their integer codes, and any two of them (model_a against model_b, one frame's rater against
    another's) can be compared. Plain strings cost seconds per filter at 10M annotations."""
    names: set[str] = set()
    for col in LABEL_COLUMNS:
        values = table[col].cat.categories if isinstance(table[col].dtype, pd.CategoricalDtype) else table[col].unique()
        names.update(str(v) for v in values)
    return pd.CategoricalDtype(sorted(names))


def _raters(table: pd.DataFrame) -> dict[str, dict]:
    r = table[["rater", "kind", "rater_model"]].drop_duplicates("rater")
    out = {
        str(row.rater): {"kind": str(row.kind), "model": str(row.rater_model)}
        for row in r.itertuples(index=False)
    }
    return dict(sorted(out.items(), key=lambda kv: (kv[1]["kind"] != "human", kv[0])))


def _empty_verdicts() -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype=t) for c, t in [("rater", str), ("pair", np.int64), ("kind", str), ("item", np.int64),
                                            ("model_a", str), ("model_b", str), ("len_a", np.int64),
                                            ("len_b", np.int64), ("order", np.int64), ("verdict", np.int64),
                                            ("strength", np.int64)]}  # fmt: skip
    )


# --- agreement -------------------------------------------------------------------------------


def _kappas(flat: np.ndarray) -> np.ndarray:
    # Contiguous once: a column slice of the resampled sums would be copied by every reshape.
    conf = np.ascontiguousarray(flat).reshape(*flat.shape[:-1], 3, 3)
    kappas = cohen_kappas_from_confusion(conf, [None, "quadratic", "linear"])
    return np.concatenate([percent_from_confusion(conf)[..., None], kappas], axis=-1)


def _agreement(verdicts: pd.DataFrame, ratings: pd.DataFrame, shown: list[str], raters: dict, boot: Resampler):
    v = verdicts[verdicts["rater"].isin(shown)]
    # Pairs coded in id order, not in the verdicts' order (which another rater's new rows move):
    # a kappa block's input is then the same arrays while its raters' verdicts are the same.
    pair_codes, pairs = pd.factorize(v["pair"], sort=True)
    # Raters coded among those with verdicts (in the order shown): a rater who only rates (or a
    # new one with no verdicts yet) moves no other rater's code, so no block's memo key.
    ranking = labels_in(v["rater"])
    judged = [r for r in shown if r in ranking]
    rater_codes = pd.Categorical(v["rater"], categories=judged).codes.astype(np.int64)
    wide = np.full((len(pairs), len(judged)), -1, dtype=np.int64)
    wide[pair_codes, rater_codes] = v["verdict"].to_numpy()
    pair_item = np.zeros(len(pairs), dtype=np.int64)
    pair_item[pair_codes] = v["item"].to_numpy()

    # Every two raters of the same pair, in blocks by the later rater b (pairs (a, b), a < b in
    # the order shown): each block is one estimate, memoised on what it counts, so a judge's new
    # run recomputes the blocks it is in, and leaves every other block (all the humans' pairs
    # when the judges come after them) as it was.
    verdict = v["verdict"].to_numpy()
    order = _lexsort(rater_codes, pair_codes)
    p_sorted, r_sorted, v_sorted = pair_codes[order], rater_codes[order], verdict[order]
    item_sorted = pair_item[p_sorted]
    rows = []
    for b, (units, a_codes, cells) in enumerate(_earlier_partners(p_sorted, r_sorted, v_sorted, item_sorted, len(judged))):
        if not len(units):
            continue
        with boot.scope(judged[b]):  # the block of b's pairs: one appears when b's first partner does
            block = _kappa_block(units, a_codes, cells, boot)
        for g, a in enumerate(block.raters):
            rows.append((judged[a], judged[b], _Slice(block.estimate, g, int(block.confusion[g].sum())),
                         block.confusion[g].reshape(3, 3)))  # fmt: skip
    # In the order of the rater pairs, (a, b) by a then b, as the batched matrix listed them.
    position = {r: k for k, r in enumerate(judged)}
    rows.sort(key=lambda row: (position[row[0]], position[row[1]]))

    # Fleiss' kappa over the human pool, on pairs with at least two human verdicts.
    humans = [k for k, r in enumerate(judged) if raters[r]["kind"] == "human"]
    fleiss = None
    if len(humans) >= 2:
        hw = wide[:, humans]
        counts = np.stack([(hw == c).sum(axis=1) for c in range(3)], axis=1)
        keep = counts.sum(axis=1) >= 2
        if keep.any():
            stats = fleiss_unit_stats(counts[keep])
            units = np.repeat(pair_item[keep], stats.shape[1])
            cols = np.tile(np.arange(stats.shape[1]), int(keep.sum()))
            per_unit = per_unit_sums(units, cols, stats.ravel(), n_units=boot.n_units, width=stats.shape[1])
            fleiss = boot.estimate(per_unit, fleiss_from_sums, n=int(keep.sum()))

    alphas = _krippendorff(ratings, verdicts, shown, raters, boot)
    scores = _score_correlations(ratings, shown, boot)

    def render() -> dict:
        return {
            "pairs": [
                {
                    "rater_a": a,
                    "rater_b": b,
                    "n": est.n,
                    "percent": _val(est, 0),
                    "cohen_kappa": _val(est, 1),
                    "cohen_kappa_quadratic": _val(est, 2),
                    "ci": _ci(est, 1),
                    "percent_ci": _ci(est, 0),
                    "cohen_kappa_quadratic_ci": _ci(est, 2),
                }
                for a, b, est, _ in rows
            ],
            "fleiss_kappa": _val(fleiss),
            "krippendorff_alpha": {name: _val(levels[_alpha_level(name)]) for name, levels in alphas.items()},
            "scores": [
                {
                    "rater_a": a,
                    "rater_b": b,
                    "attribute": attribute,
                    "n": est.n,
                    "spearman": _val(est, 0),
                    "kendall_tau_b": _val(est, 1),
                    "ci_spearman": _ci(est, 0),
                    "ci_kendall": _ci(est, 1),
                }
                for a, b, attribute, est in scores
            ],
            # Added keys: the intervals of the pool figures, on the same shared item bootstrap.
            "fleiss_kappa_ci": _ci(fleiss),
            "krippendorff_alpha_ci": {name: _ci(levels[_alpha_level(name)]) for name, levels in alphas.items()},
        }

    def details() -> dict:
        return {
            "agreement_pairs": [
                {
                    "rater_a": a,
                    "rater_b": b,
                    "n": est.n,
                    "percent_ci": _ci(est, 0),
                    "cohen_kappa_linear": _val(est, 3),
                    "cohen_kappa_quadratic_ci": _ci(est, 2),
                    "confusion": conf.astype(int).tolist(),
                }
                for a, b, est, conf in rows
            ],
            "fleiss_kappa": {"value": _val(fleiss), "n": fleiss.n if fleiss else 0, "ci": _ci(fleiss)},
            "krippendorff_alpha": {
                name: {level: {"value": _val(e), "n": e.n if e else 0, "ci": _ci(e)} for level, e in levels.items()}
                for name, levels in alphas.items()
            },
        }

    return _Section(render, details)


def _earlier_partners(
    p_sorted: np.ndarray, r_sorted: np.ndarray, v_sorted: np.ndarray, item_sorted: np.ndarray, n_r: int,
    levels: int = 3,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per rater b (codes 0..n_r-1), every label of b beside each earlier rater's label of the same
    unit (a pair's verdicts, a response's scores: codes 0..levels-1): (item, rater a, cell =
    label_a * levels + label_b), in the order of b's labels, then of a. Labels sorted by unit,
    then rater: the earlier raters of position i are the positions from its unit's first one up
    to i. A rater's duplicate label of a unit is not paired with itself."""
    starts = np.flatnonzero(np.r_[True, p_sorted[1:] != p_sorted[:-1]])
    first = np.repeat(starts, np.diff(np.r_[starts, len(p_sorted)]))  # each position's pair's first
    by_rater = np.argsort(_narrow(r_sorted), kind="stable")
    bounds = np.searchsorted(r_sorted[by_rater], np.arange(n_r + 1))
    for b in range(n_r):
        mine = by_rater[bounds[b]:bounds[b + 1]]
        count = mine - first[mine]
        total = int(count.sum())
        if not total:
            yield np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
            continue
        at = np.repeat(mine, count)
        # Partner k of position i: first[i] + k, k = 0..count[i]-1.
        partner = np.repeat(first[mine] - np.cumsum(np.r_[0, count[:-1]]), count) + np.arange(total)
        keep = r_sorted[partner] < b
        at, partner = at[keep], partner[keep]
        # As small integers: what the blocks' memo keys hash (tens of MB per update at 1M).
        yield (item_sorted[at].astype(_index_dtype(int(item_sorted.max(initial=0)) + 1)),
               r_sorted[partner].astype(_index_dtype(n_r)), (v_sorted[partner] * levels + v_sorted[at]).astype(np.int32))


@dataclass
class _KappaBlock:
    raters: np.ndarray  # the earlier raters a of the block's pairs (a, b), ascending
    confusion: np.ndarray  # per rater a, its 9 cells over every pair both judged
    estimate: Estimate


@memoised
def _kappa_block(units: np.ndarray, a_codes: np.ndarray, cells: np.ndarray, boot: Resampler) -> _KappaBlock:
    """Percent agreement and Cohen's kappas of one later rater with each earlier one: one batched
    estimate over the 9 confusion cells of every rater pair of the block."""
    raters, group, _ = _small_unique(a_codes, int(a_codes.max()) + 1)
    column = group * 9 + cells
    width = len(raters) * 9
    per_unit = per_unit_sums(units, column, 1.0, n_units=boot.n_units, width=width)
    confusion = np.bincount(column, minlength=width).reshape(-1, 9)
    return _KappaBlock(raters, confusion, boot.estimate(per_unit, _kappas_of_cells, n=len(units)))


def _kappas_of_cells(s: np.ndarray) -> np.ndarray:
    """_kappas of summed cells laid out rater pair by rater pair (9 each). Module level: a kept
    state stays picklable with its estimates (a shared cache, the tests)."""
    return _kappas(s.reshape(*s.shape[:-1], -1, 9))


def _small_unique(values: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """np.unique(values, return_inverse=True, return_counts=True) for codes in [0, size) with
    size small (rater pairs, contingency cells): one bincount instead of sorting millions."""
    counts = np.bincount(values, minlength=size)
    present = np.flatnonzero(counts)
    remap = np.zeros(size, dtype=np.int64)
    remap[present] = np.arange(len(present))
    return present, remap[values], counts[present]


def _sorted_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(values, return_inverse=True) for integer scores: a bincount over their range
    when it is small (a rating scale), not a sort of every score."""
    if not len(values) or values.dtype.kind not in "iu" or int(values.max()) - int(values.min()) >= 4096:
        domain, inverse = np.unique(values, return_inverse=True)
        return domain, inverse.reshape(-1)
    low = int(values.min())
    present, inverse, _ = _small_unique(values - low, int(values.max()) - low + 1)
    return (present + low).astype(values.dtype), inverse


def _narrow(codes: np.ndarray) -> np.ndarray:
    """Codes as 16-bit integers where they fit: numpy's stable sort of those is a radix sort,
    5x its merge sort of the same codes as int64 (360k rater codes: 4 ms against 24)."""
    if not len(codes):
        return codes
    lo, hi = int(codes.min()), int(codes.max())
    if 0 <= lo and hi < 2**16:
        return codes.astype(np.uint16)
    return codes.astype(np.int16) if -(2**15) <= lo and hi < 2**15 else codes


def _lexsort(minor: np.ndarray, major: np.ndarray) -> np.ndarray:
    """np.lexsort((minor, major)): by major, then minor, ties in place. Two stable sorts, minor
    first (least significant key first gives the same order), each a radix sort where its codes
    fit in 16 bits: 360k (response, rater) keys in about 30 ms, where lexsort took 71."""
    by_minor = np.argsort(_narrow(minor), kind="stable")
    return by_minor[np.argsort(_narrow(major[by_minor]), kind="stable")]


def _index_dtype(n: int) -> type:
    """The smallest index type for positions below n: int32 halves what 10M-row index arrays hold."""
    return np.int32 if n < 2**31 else np.int64


def _alpha_level(name: str) -> str:
    """The level the report's headline alpha uses: ordinal for scores, nominal for verdicts."""
    return "nominal" if name == "preference" else "ordinal"


def _score_correlations(
    ratings: pd.DataFrame, shown: list[str], boot: Resampler
) -> list[tuple[str, str, str, _Slice]]:
    """Spearman's rho and Kendall's tau-b between every two raters shown, per attribute, over the
    responses both rated. Each rater pair's figure is a function of its contingency table of
    scores (agreement.rank_correlations_from_table), so the pairs of one later rater are one
    batched estimate on the shared bootstrap, memoised like the kappas' blocks. Pairs with fewer
    than two common responses are left out (no correlation is defined)."""
    out: list[tuple[str, str, str, _Slice]] = []
    rater_codes = pd.Categorical(ratings["rater"], categories=shown).codes
    kept = np.flatnonzero(rater_codes >= 0)
    if not len(kept):
        return out
    n_r = len(shown)
    # The attributes in the order they first appear, from the categorical's integer codes.
    labels = ratings["attribute"].astype("category")
    attr_codes, present = pd.factorize(labels.cat.codes.to_numpy()[kept])
    attributes = labels.cat.categories[present]
    responses, values, items = (ratings[c].to_numpy() for c in ("response", "value", "item"))
    position = {r: k for k, r in enumerate(shown)}
    for a_code, attribute in enumerate(attributes):
        # One attribute's rows at a time, not every column of every kept row at once (230 MB at 10M).
        sel = kept[attr_codes == a_code]
        resp, value = responses[sel], values[sel]
        rater, item = rater_codes[sel].astype(np.int64), items[sel]
        # Sorted by response then rater; one score per rater and response (of duplicates, the last row).
        order = _lexsort(rater, resp)
        resp, rater, value, item = resp[order], rater[order], value[order], item[order]
        last = np.ones(len(resp), dtype=bool)
        last[:-1] = (resp[1:] != resp[:-1]) | (rater[1:] != rater[:-1])
        resp, rater, value, item = resp[last], rater[last], value[last], item[last]
        # Raters coded among those who scored this attribute (in the order shown): one who did
        # not (a new annotator with preferences only) moves no other rater's code, so no
        # block's memo key.
        scored, rater = _small_unique(rater, n_r)[:2]
        names = [shown[k] for k in scored]
        domain, vcode = _sorted_codes(value)
        v = len(domain)
        blocks = _earlier_partners(resp, rater, vcode, item, len(names), levels=v)
        found = []
        for b, (units, a_codes, cells) in enumerate(blocks):
            if len(units):
                with boot.scope(str(attribute), names[b]):
                    block = _correlation_block(units, a_codes, cells, v, boot)
                found += [(names[a], names[b], str(attribute), _Slice(block.estimate, g, int(size)))
                          for g, (a, size) in enumerate(zip(block.raters, block.sizes, strict=True)) if size >= 2]  # fmt: skip
        del resp, rater, value, item, order, last, vcode
        # In the order of the rater pairs, (a, b) by a then b.
        out += sorted(found, key=lambda row: (position[row[0]], position[row[1]]))
    return out


@dataclass
class _CorrelationBlock:
    raters: np.ndarray  # the earlier raters a of the block's pairs (a, b), ascending
    sizes: np.ndarray  # responses each pair both scored
    estimate: Estimate


@memoised
def _correlation_block(units: np.ndarray, a_codes: np.ndarray, cells: np.ndarray, v: int, boot: Resampler) -> _CorrelationBlock:
    """Rank correlations of one later rater with each earlier one, from the contingency table of
    their scores (cells a * v + b per rater pair). Only observed cells become bootstrap columns
    (a wide scale would make v * v mostly empty)."""
    raters, group, sizes = _small_unique(a_codes, int(a_codes.max()) + 1)
    code = group * (v * v) + cells
    observed, column, _ = _small_unique(code, len(raters) * v * v)
    per_unit = per_unit_sums(units, column, 1.0, n_units=boot.n_units, width=len(observed), by_item=True)
    statistic = functools.partial(_correlations_of_cells, cells=observed, n_groups=len(raters), v=v)
    return _CorrelationBlock(raters, sizes, boot.estimate(per_unit, statistic, n=len(units)))


def _correlations_of_cells(s: np.ndarray, *, cells: np.ndarray, n_groups: int, v: int) -> np.ndarray:
    """Spearman's rho and Kendall's tau-b per rater pair from the summed observed cells (module
    level, with functools.partial: a kept state stays picklable with its estimates)."""
    table = np.zeros((*s.shape[:-1], n_groups * v * v))
    table[..., cells] = s
    return rank_correlations_from_table(table.reshape(*s.shape[:-1], n_groups, v, v))


def _krippendorff(
    ratings: pd.DataFrame, verdicts: pd.DataFrame, shown: list[str], raters: dict, boot: Resampler
) -> dict[str, dict[str, Estimate | None]]:
    """Alpha among the human raters shown: per attribute on ratings (units = responses), and on
    preference verdicts (units = pairs). Nominal, ordinal and interval levels are all kept."""
    humans = {r for r in shown if raters[r]["kind"] == "human"}
    out: dict[str, dict[str, Estimate | None]] = {}
    sources: list[tuple[str, pd.DataFrame]] = []
    hr = ratings.loc[ratings["rater"].isin(humans).to_numpy(), ["attribute", "response", "item", "value"]]
    for attribute, grp in hr.groupby("attribute", sort=False):
        sources.append((str(attribute), grp.rename(columns={"response": "unit"})[["unit", "item", "value"]]))
    hv = verdicts.loc[verdicts["rater"].isin(humans).to_numpy(), ["pair", "item", "verdict"]]
    if len(hv):
        sources.append(("preference", hv.rename(columns={"pair": "unit", "verdict": "value"})[["unit", "item", "value"]]))
    for name, df in sources:
        out[name] = _alphas(df, boot)
    return out


_NO_ALPHA: dict[str, Estimate | None] = {"nominal": None, "ordinal": None, "interval": None}


@memoised
def _alphas(df: pd.DataFrame, boot: Resampler) -> dict[str, Estimate | None]:
    """Krippendorff's alpha at each level from one source's rows (unit, item, value)."""
    domain = np.unique(df["value"].to_numpy())
    if len(domain) < 2:
        return dict(_NO_ALPHA)
    unit_codes, units = pd.factorize(df["unit"])
    val_codes = np.searchsorted(domain, df["value"].to_numpy())
    v = len(domain)
    counts = np.bincount(unit_codes * v + val_codes, minlength=len(units) * v).reshape(-1, v)
    unit_item = np.zeros(len(units), dtype=np.int64)
    unit_item[unit_codes] = df["item"].to_numpy()
    pairable = counts.sum(axis=1) >= 2
    if not pairable.any():
        return dict(_NO_ALPHA)
    co = coincidences_per_unit(counts[pairable])
    nz_u, nz_c = np.nonzero(co)
    per_unit = per_unit_sums(unit_item[pairable][nz_u], nz_c, co[nz_u, nz_c], n_units=boot.n_units, width=v * v)
    # Statistics as module-level partials, not lambdas: a kept state (reports.cache) stays picklable.
    levels: tuple[Level, ...] = ("nominal", "ordinal", "interval")
    return {level: boot.estimate(per_unit, functools.partial(_alpha, domain=domain, level=level), n=int(pairable.sum()))
            for level in levels}  # fmt: skip


def _alpha(s: np.ndarray, *, domain: np.ndarray, level: Level) -> np.ndarray:
    v = len(domain)
    return krippendorff_from_coincidences(s.reshape(*s.shape[:-1], v, v), domain, level)


# --- judge vs gold ---------------------------------------------------------------------------


def _judge_vs_gold(verdicts: pd.DataFrame, gold: pd.DataFrame, shown: list[str], raters: dict, boot: Resampler,
                   source: str = "majority"):
    judges = [r for r in shown if raters[r]["kind"] == "judge"]
    v_of = by_rater(verdicts, judges, ["pair", "verdict"])
    results = {}
    for j in judges:
        with boot.scope(j):
            results[j] = score_against_gold(v_of[j], gold, boot)
    results = {j: s for j, s in results.items() if s.n}

    def render() -> list[dict]:
        return [
            {
                "judge": j,
                "n": s.n,
                "gold": source,  # which gold: "majority" or "adjudicated"
                **{k: _val(s.estimate, i) for i, k in enumerate(SCORES)},
                "ci": _ci(s.estimate, 0),
                # Accuracy without tied gold counts only the pairs whose gold is A or B.
                "n_no_ties": int(s.confusion.sum() - s.confusion[1].sum()),
                **{f"{k}_ci": _ci(s.estimate, i) for i, k in enumerate(SCORES) if k != "accuracy"},
            }
            for j, s in results.items()
        ]

    def details() -> dict:
        return {
            "judge_vs_gold": [
                {
                    "judge": j,
                    "cis": {k: _ci(s.estimate, i) for i, k in enumerate(SCORES)},
                    "confusion": s.confusion.astype(int).tolist(),
                }
                for j, s in results.items()
            ]
        }

    return _Section(render, details)


# --- ratings vs rankings ---------------------------------------------------------------------


def _pair_table(prefs: pd.DataFrame) -> pd.DataFrame:
    """One row per pair, in pair id order (not the order rows came: another rater's earlier
    rows would reorder it, and so every rater's memo keys on it)."""
    return pair_rows(prefs, ["pair", "item", "response_a", "response_b"])


def _consistency(
    verdicts: pd.DataFrame,
    rated: pd.DataFrame,
    prefs: pd.DataFrame,
    shown: list[str],
    raters: dict,
    attribute: str | None,
    boot: Resampler,
):
    rows: list[tuple[str, Any]] = []
    cross: list[tuple[str, str, Any]] = []
    if attribute is not None and len(verdicts) and len(rated):
        r = rated  # the attribute's ratings
        pairs = _pair_table(prefs)
        # Each rater's ratings meet its own rankings, pair by pair; rater by rater, so an update
        # that leaves a rater's rows alone reuses its figures (reports.metrics.memo).
        v_of = by_rater(verdicts, shown, ["pair", "verdict", "strength"])
        r_of = by_rater(r, shown, ["response", "value"])
        joined_of: dict[str, pd.DataFrame] = {}
        for rater in shown:
            if len(v_of[rater]) and len(r_of[rater]):
                with boot.scope(rater):
                    c, joined = _rater_consistency(v_of[rater], r_of[rater], on_pairs_of(pairs, v_of[rater]), boot)
                if c is not None:
                    rows.append((rater, c))
                    joined_of[rater] = joined
        humans = tuple(joined_of[name] for name, _ in rows if raters[name]["kind"] == "human")
        if len(humans) > 1:
            rows.append(("humans", _pooled_consistency(humans, boot)))
        cross = _cross_consistency(verdicts, r, pairs, shown, raters, boot)

    def render() -> list[dict]:
        return [
            {"rater": name, "n": c.n, "consistency": _val(c.estimate), "ci": _ci(c.estimate),
             "confusion": c.confusion.astype(int).tolist()}
            for name, c in rows
        ]  # fmt: skip

    def details() -> dict:
        return {
            "consistency_by_strength": {
                name: [{**row, "ci": _ci(c.by_strength_estimate, k)} for k, row in enumerate(c.by_strength)]
                for name, c in rows
            },
            "consistency_cross": [
                {"ratings_by": x, "rankings_by": y, "n": c.n, "consistency": _val(c.estimate), "ci": _ci(c.estimate),
                 "confusion": c.confusion.astype(int).tolist()}
                for x, y, c in cross
            ],  # fmt: skip
        }

    return _Section(render, details)


# The columns each per-rater figure reads: all its memoised computation is keyed on.
POSITION_COLUMNS = ["pair", "item", "strength", "shown_order"]
SELF_COLUMNS = ["pair", "item", "model_a", "model_b", "verdict"]
LENGTH_COLUMNS = ["pair", "item", "len_a", "len_b", "verdict"]


@memoised
def _group_boards(
    verdicts: pd.DataFrame, ratings: pd.DataFrame, rounds: int, seed: int, boot: Resampler
) -> tuple[Any, Any]:
    """A rater group's two leaderboards: Bradley-Terry from its verdicts (model_a, model_b,
    verdict), and the mean rating per model, a response's score being the group's mean rating
    of it (ratings: item, response, model, value)."""
    bt = bradley_terry(comparisons(verdicts), rounds=rounds, seed=seed)
    per_response = ratings.groupby(["item", "response", "model"], observed=True)["value"].mean()
    return bt, rating_board(per_response.rename("score").reset_index(), boot)


@memoised
def _rater_consistency(
    v: pd.DataFrame, scores: pd.DataFrame, pairs: pd.DataFrame, boot: Resampler
) -> tuple[Consistency | None, pd.DataFrame]:
    """One rater's consistency: its verdicts (pair, verdict, strength) against the verdicts its
    ratings (response, value) imply. Also returns the joined rows (item, implied, verdict,
    strength), which the pooled humans' figure reads."""
    by_response = pd.Index(scores["response"])
    if not by_response.is_unique:  # more than one score per response: the joins' every combination
        sa = scores.rename(columns={"response": "response_a", "value": "score_a"})
        sb = scores.rename(columns={"response": "response_b", "value": "score_b"})
        joined = v.merge(pairs, on="pair").merge(sa, on="response_a").merge(sb, on="response_b")
        joined["implied"] = verdict_of(joined["score_b"] - joined["score_a"])
        joined = joined[["item", "implied", "verdict", "strength"]]
        return (consistency(joined, boot) if len(joined) else None), joined
    # What the inner joins on pair, response_a and response_b give (rows in v's order), by lookups.
    at = pd.Index(pairs["pair"]).get_indexer(v["pair"])
    has_pair = np.flatnonzero(at >= 0)
    joined = _implied_beside(pairs, at[has_pair], v, has_pair, by_response, scores["value"].to_numpy())
    return (consistency(joined, boot) if len(joined) else None), joined


def _implied_beside(
    pairs: pd.DataFrame, pair_rows: np.ndarray, ranked: pd.DataFrame, ranked_rows: np.ndarray,
    by_response: pd.Index, score: np.ndarray,
) -> pd.DataFrame:
    """Rows (item, implied, verdict, strength) for matched rows of the pair table and of the
    verdicts (pair_rows[k] beside ranked_rows[k]) whose two responses both have a score: the
    inner joins on response_a and response_b, by lookups in the scores' unique responses."""
    ia = by_response.get_indexer(pairs["response_a"].to_numpy()[pair_rows])
    ib = by_response.get_indexer(pairs["response_b"].to_numpy()[pair_rows])
    keep = (ia >= 0) & (ib >= 0)
    pair_rows, ranked_rows = pair_rows[keep], ranked_rows[keep]
    return pd.DataFrame({
        "item": pairs["item"].to_numpy()[pair_rows],
        "implied": verdict_of(score[ib[keep]] - score[ia[keep]]),
        "verdict": ranked["verdict"].to_numpy()[ranked_rows],
        "strength": ranked["strength"].to_numpy()[ranked_rows],
    })  # fmt: skip


@memoised
def _pooled_consistency(joined: tuple[pd.DataFrame, ...], boot: Resampler) -> Consistency:
    return consistency(pd.concat(joined, ignore_index=True), boot)


def _cross_consistency(
    verdicts: pd.DataFrame, r: pd.DataFrame, pairs: pd.DataFrame, shown: list[str], raters: dict, boot: Resampler
) -> list[tuple[str, str, Any]]:
    """Ratings by X vs rankings by Y, where X and Y are "humans" (mean human rating; gold
    verdict) or one judge. Shows whether the protocol or the rater drives a disagreement."""
    sources: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
    hr = r[r["kind"] == "human"]
    hv = verdicts[verdicts["kind"] == "human"]
    if len(hr) and len(hv):
        sources["humans"] = _humans_source(hr[["response", "value"]], relative_order(hv[["pair", "item", "verdict", "order"]]))
    judges = [j for j in shown if raters[j]["kind"] == "judge"]
    r_of = by_rater(r, judges, ["response", "value"])
    v_of = by_rater(verdicts, judges, ["pair", "verdict", "strength"])
    for j in judges:
        if len(r_of[j]) or len(v_of[j]):
            sources[j] = (r_of[j].rename(columns={"value": "score"}), v_of[j])
    out = []
    for x, y in itertools.permutations(sources, 2):
        scores, _ = sources[x]
        _, ranked = sources[y]
        if scores.empty or ranked.empty:
            continue
        with boot.scope(x, y):
            c = _cross_one(on_pairs_of(pairs, ranked), scores, ranked, boot)
        if c is not None:
            out.append((x, y, c))
    return out


@memoised
def _humans_source(hr: pd.DataFrame, hv: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The humans as one source of cross consistency: mean human rating per response; gold."""
    return (
        hr.groupby("response")["value"].mean().rename("score").reset_index(),
        gold_verdicts(hv).rename(columns={"gold": "verdict"}).assign(strength=0),
    )


@memoised
def _cross_one(pairs: pd.DataFrame, scores: pd.DataFrame, ranked: pd.DataFrame, boot: Resampler) -> Consistency | None:
    by_pair = pd.Index(ranked["pair"])
    by_response = pd.Index(scores["response"])
    if by_pair.is_unique and by_response.is_unique:
        # The joins below (pairs with the verdicts on pair, then with the scores on each
        # response), by index lookups, rows in pairs' order: 20 of them per report.
        at = by_pair.get_indexer(pairs["pair"])
        has_verdict = np.flatnonzero(at >= 0)
        joined = _implied_beside(pairs, has_verdict, ranked, at[has_verdict], by_response, scores["score"].to_numpy())
        return consistency(joined, boot) if len(joined) else None
    if by_pair.is_unique:
        # The inner join of pairs with the verdicts on pair (rows in pairs' order), by a lookup.
        at = by_pair.get_indexer(pairs["pair"])
        keep = at >= 0
        ranked_pairs = pairs.loc[keep].assign(verdict=ranked["verdict"].to_numpy()[at[keep]],
                                              strength=ranked["strength"].to_numpy()[at[keep]])  # fmt: skip
    else:
        ranked_pairs = pairs.merge(ranked[["pair", "verdict", "strength"]], on="pair")
    joined = implied_verdicts(ranked_pairs, scores)
    return consistency(joined, boot) if len(joined) else None


# --- judge bias audit ------------------------------------------------------------------------


def _position(prefs: pd.DataFrame, gold: pd.DataFrame, shown: list[str], raters: dict, boot: Resampler,
              audit: dict[tuple[str, str], Any]):  # fmt: skip
    results = []
    p_of = by_rater(prefs, shown, POSITION_COLUMNS)
    for rater in shown:
        if not len(p_of[rater]):
            continue
        grp = p_of[rater]
        both = raters[rater]["kind"] == "judge" and grp["shown_order"].nunique() == 2
        with boot.scope(rater):
            pos = position_both_orders(grp, gold, boot) if both else first_shown_win_rate(grp, boot)
        results.append((rater, pos))
        if both:
            audit["position", rater] = pos

    def render() -> list[dict]:
        out = []
        for rater, pos in results:
            if pos.estimate is not None:
                out.append({"judge": rater, "n": pos.n, "consistency": _val(pos.estimate, 0),
                            "first_position_rate": _val(pos.estimate, 1),
                            "agreement_both_orders": _val(pos.estimate, 2),
                            "consistency_ci": _ci(pos.estimate, 0),
                            "n_inconsistent": pos.n_inconsistent,
                            "first_position_rate_ci": _ci(pos.estimate, 1),
                            "n_gold": pos.n_gold,
                            "agreement_both_orders_ci": _ci(pos.estimate, 2)})  # fmt: skip
            else:
                # One order per pair: the first-shown win rate stands in (0.5 = no position bias),
                # over the rater's n non-tied verdicts.
                out.append({"judge": rater, "n": pos.n, "consistency": None,
                            "first_position_rate": _val(pos.first_shown_win_rate),
                            "agreement_both_orders": None,
                            "consistency_ci": None,
                            "n_inconsistent": None,
                            "first_position_rate_ci": _ci(pos.first_shown_win_rate),
                            "n_gold": None,
                            "agreement_both_orders_ci": None})  # fmt: skip
        return out

    return _Section(render)


def _self_preference(
    verdicts: pd.DataFrame, gold: pd.DataFrame, ratings: pd.DataFrame, shown: list[str], raters: dict, boot: Resampler,
    audit: dict[tuple[str, str], Any],
):
    results = []
    judges = [j for j in shown if raters[j]["kind"] == "judge"]
    v_of = by_rater(verdicts, judges, SELF_COLUMNS)
    rating_columns = ["response", "model", "attribute", "value"]
    human_ratings = ratings.loc[(ratings["kind"] == "human").to_numpy(), rating_columns]
    r_of = by_rater(ratings, judges, rating_columns)
    for j in judges:
        model = raters[j]["model"]
        with boot.scope(j):
            sp = self_preference(v_of[j], gold, model, boot) if model else None
        if sp is not None and model != "nan":
            audit["self", j] = sp
        rating_form = rating_self_preference(human_ratings, r_of[j], model) if model and len(ratings) else {}
        results.append((j, model, sp, rating_form))

    def render() -> list[dict]:
        out = []
        for j, model, sp, _ in results:
            est = sp.estimate if sp else None
            out.append(
                {
                    "judge": j,
                    "model": model or None,
                    "n": sp.n if sp else 0,
                    "raw_win_rate": _val(est, 0),
                    "gold_win_rate": _val(est, 1),
                    "dbg": _val(est, 2),
                    "dbg_ci": _ci(est, 2),
                    "equal_opportunity_gap": _val(est, 3),
                    "raw_win_rate_ci": _ci(est, 0),
                    # The gold win rate, DBG and the gap are over the own pairs that have gold.
                    "n_gold": sp.n_gold if sp else 0,
                    "gold_win_rate_ci": _ci(est, 1),
                    "equal_opportunity_gap_ci": _ci(est, 3),
                }
            )
        return out

    def details() -> dict:
        return {
            "self_preference": [
                {
                    "judge": j,
                    "note": None if model else "This judge has no response model of its own.",
                    "n_gold": sp.n_gold if sp else 0,
                    "raw_win_rate_ci": _ci(sp.estimate if sp else None, 0),
                    "gold_win_rate_ci": _ci(sp.estimate if sp else None, 1),
                    "equal_opportunity_gap_ci": _ci(sp.estimate if sp else None, 3),
                    "rating_form": rating_form,
                }
                for j, model, sp, rating_form in results
            ]
        }

    return _Section(render, details)


def _length(verdicts: pd.DataFrame, gold: pd.DataFrame, shown: list[str], boot: Resampler,
            audit: dict[tuple[str, str], Any]):  # fmt: skip
    results = []
    v_of = by_rater(verdicts, shown, LENGTH_COLUMNS)
    for rater in shown:
        with boot.scope(rater):
            lb = audit["length", rater] = length_bias(v_of[rater], gold, boot)
        if lb.n:
            results.append((rater, lb))

    def render() -> list[dict]:
        return [
            {"rater": r, "n": lb.n, "longer_wins_rate": _val(lb.estimate, 0),
             "gold_longer_wins_rate": _val(lb.estimate, 1),
             "longer_wins_rate_ci": _ci(lb.estimate, 0),
             "n_gold": lb.n_gold,
             "gold_longer_wins_rate_ci": _ci(lb.estimate, 1)}
            for r, lb in results
        ]  # fmt: skip

    return _Section(render)


def _calibration(prefs: pd.DataFrame, gold: pd.DataFrame, shown: list[str], raters: dict, boot: Resampler):
    results = []
    judges = [j for j in shown if raters[j]["kind"] == "judge"]
    p_of = by_rater(prefs, judges, ["pair", "item", "p_a", "p_b"])
    for j in judges:
        grp = p_of[j]
        if grp["p_a"].notna().any():
            with boot.scope(j):
                cal = calibration(grp, gold, boot)
            if cal.n:
                results.append((j, cal))

    def render() -> list[dict]:
        return [{"judge": j, "n": c.n, "ece": _val(c.ece), "ci": _ci(c.ece), "bins": c.bins} for j, c in results]

    return _Section(render)


# --- leaderboards ----------------------------------------------------------------------------


def _group_seed(seed: int, group: str) -> int:
    """The seed of a group's Bradley-Terry bootstrap (it resamples the group's comparisons, not
    the report's items): from the group's name, not its place among the groups, so a judge
    added to the project leaves every other group's interval as it was (and its fit memoised)."""
    return seed + 1 + zlib.crc32(group.encode())


def _leaderboard(
    verdicts: pd.DataFrame,
    rated: pd.DataFrame,
    shown: list[str],
    raters: dict,
    opts: ReportOptions,
    boot: Resampler,
):
    """rated: the ratings of the report's attribute (none without one)."""
    groups: dict[str, list[str]] = {}
    humans = [r for r in shown if raters[r]["kind"] == "human"]
    if humans:
        groups["humans"] = humans
    for j in shown:
        if raters[j]["kind"] == "judge":
            groups[j] = [j]
    boards = {}
    for name, members in groups.items():
        v = rows_of(verdicts, members, ["model_a", "model_b", "verdict"])
        gr = rows_of(rated, members, ["item", "response", "model", "value"])
        with boot.scope(name):
            bt, rb = _group_boards(v, gr, opts.rounds, _group_seed(opts.seed, name), boot)
        if bt.n or rb.models:
            boards[name] = (bt, rb)

    def render() -> dict:
        out = {}
        for name, (bt, rb) in boards.items():
            bt_rows: list[dict[str, Any]] = [
                {"model": m, "elo": _num(bt.elo[i]), "ci": None if bt.ci is None else [_num(bt.ci[0, i]), _num(bt.ci[1, i])]}
                for i, m in enumerate(bt.models)
            ] if bt.n else []  # fmt: skip
            bt_rows.sort(key=lambda row: -(row["elo"] or 0))
            rating_rows: list[dict[str, Any]] = [
                {"model": m, "mean": _val(rb.estimate, i), "ci": _ci(rb.estimate, i)} for i, m in enumerate(rb.models)
            ]
            rating_rows.sort(key=lambda row: -(row["mean"] if row["mean"] is not None else -math.inf))
            tau = kendall_tau_between(
                {row["model"]: row["elo"] for row in bt_rows if row["elo"] is not None},
                {row["model"]: row["mean"] for row in rating_rows if row["mean"] is not None},
            )
            # Round k of the Bradley-Terry bootstrap (over comparisons) meets round k of the
            # rating board's (over items, the shared Resampler): see leaderboard.kendall_tau_ci.
            tau_ci = None
            if tau is not None and rb.estimate is not None:
                tau_ci = kendall_tau_ci(bt.models, bt.samples, rb.models, rb.estimate.samples)
            out[name] = {
                "bradley_terry": bt_rows, "ratings": rating_rows, "kendall_tau": tau,
                "kendall_tau_ci": None if tau_ci is None else [_num(tau_ci[0]), _num(tau_ci[1])],
                # False: no finite maximum-likelihood fit (some model never lost or never won
                # against the rest); the Elo figures are then only an ordering.
                "bradley_terry_identifiable": bool(bt.identifiable) if bt.n else None,
                "never_lost": bt.never_lost or [], "never_won": bt.never_won or [],
            }
        return out

    return _Section(render)


# --- checklists (TICK) ---------------------------------------------------------------------


def _checklists(verdicts: pd.DataFrame, raters: dict, has_checklist: np.ndarray, boot: Resampler):
    """Human-human and judge-human agreement on items with and without a checklist, and the
    difference (reports.metrics.checklists)."""
    kinds = {r: info["kind"] for r, info in raters.items()}
    columns = ["rater", "pair", "item", "verdict"]
    # Two humans' agreement reads the humans' verdicts only: a judge's new run leaves it as it was.
    humans = verdicts.loc[(verdicts["kind"] == "human").to_numpy(), columns]
    effects = {c: checklist_effect(humans if c == "human_human" else verdicts[columns], kinds, has_checklist, boot, c)
               for c in COMPARISONS}  # fmt: skip

    def render() -> dict:
        out: dict[str, Any] = {"n_items_with_checklist": int(np.asarray(has_checklist, dtype=bool).sum())}
        for name, e in effects.items():
            est = e.estimate
            out[name] = {
                "with": {"n": e.n_with, "n_items": e.items_with, "percent": _val(est, 0), "percent_ci": _ci(est, 0),
                         "cohen_kappa": _val(est, 1), "cohen_kappa_ci": _ci(est, 1)},
                "without": {"n": e.n_without, "n_items": e.items_without, "percent": _val(est, 2),
                            "percent_ci": _ci(est, 2), "cohen_kappa": _val(est, 3), "cohen_kappa_ci": _ci(est, 3)},
                "difference": {"percent": _val(est, 4), "percent_ci": _ci(est, 4),
                               "cohen_kappa": _val(est, 5), "cohen_kappa_ci": _ci(est, 5)},
            }
        return out

    return render


# --- panels against their members (issue 13) ------------------------------------------------


def _panel_answer(panel: str, best: str, diff: float | None, ci: list[float | None] | None, n: int) -> str:
    """The sentence the report leads with: does the panel beat its best member on accuracy?"""
    if diff is None:
        return f"{panel}: no pairs with gold that it and every member judged"
    interval = f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci and ci[0] is not None and ci[1] is not None else ""
    if diff > 0:
        unclear = "; the interval includes 0, so not a clear gain" if ci and ci[0] is not None and ci[0] <= 0 else ""
        return f"{panel} beats its best member {best} by {diff:+.2f} accuracy{interval}, n={n}{unclear}"
    return f"{panel} does not beat its best member {best}: {diff:+.2f} accuracy{interval}, n={n}"


def _panels(verdicts: pd.DataFrame, gold: pd.DataFrame, shown: list[str], panels: dict[str, dict], boot: Resampler,
            source: str = "majority"):  # fmt: skip
    """Per panel shown: its accuracy and kappa against gold beside each member's, on the pairs all
    of them judged, and the paired difference panel - best member (reports.metrics.panels)."""
    results = []
    for p, info in panels.items():
        if p in shown:
            with boot.scope(p):
                results.append((p, info, panel_vs_members(verdicts, gold, p, list(info["members"]), boot)))
    n_figures = len(PANEL_FIGURES)

    def render() -> list[dict]:
        out = []
        for panel, info, c in results:
            size = len(c.members) + 1
            rows: list[dict[str, Any]] = []
            difference: dict[str, Any] = {}
            if c.estimate is not None:
                for k, rater in enumerate([panel, *c.members]):
                    row: dict[str, Any] = {"rater": rater, "role": "panel" if k == 0 else "member"}
                    for i, f in enumerate(PANEL_FIGURES):
                        row[f], row[f"{f}_ci"] = _val(c.estimate, i * size + k), _ci(c.estimate, i * size + k)
                    rows.append(row)
                for i, f in enumerate(PANEL_FIGURES):
                    col = n_figures * size + i
                    difference[f], difference[f"{f}_ci"] = _val(c.estimate, col), _ci(c.estimate, col)
            diff = difference.get("accuracy")
            out.append({
                "panel": panel, "rule": info.get("rule"), "n": c.n, "gold": source, "raters": rows,
                "best_member": c.best, "difference": difference, "absent_members": c.absent,
                "beats_best_member": None if diff is None else bool(diff > 0),
                "answer": _panel_answer(panel, c.best.get("accuracy", ""), diff, difference.get("accuracy_ci"), c.n),
            })  # fmt: skip
        return out

    return _Section(render)
