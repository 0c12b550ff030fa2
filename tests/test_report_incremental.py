"""Absorbing new annotations into a computed report (reports.incremental) gives the report a
full build computes on the union table: same figures, same intervals (to float rounding), on
small synthetic cases (existing items touched, new items, a new rater, a new pair, a gold
changed by new human verdicts) and through the report cache on PostgreSQL."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from reports import incremental
from reports.build import ReportOptions, report_from_table
from reports.metrics import bootstrap
from reports.selectors import finish_table
from tests.bench_helpers import bench_reports

ROUNDS = 60


def assert_same(a: Any, b: Any, path: str = "") -> None:
    """Equal key for key; floats to rounding (the absorbed sums are old + change, not one sum)."""
    if isinstance(a, dict):
        assert set(a) == set(b), (path, set(a) ^ set(b))
        for k in a:
            assert_same(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), (path, a, b)
    else:
        assert a == b, (path, a, b)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return bench_reports().synthetic_table(40, seed=3)


def _split(table: pd.DataFrame, new: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    return finish_table(table[~new].reset_index(drop=True)), finish_table(table[new].reset_index(drop=True))


def _absorbed_equals_rebuilt(old: pd.DataFrame, new: pd.DataFrame, opts: ReportOptions) -> incremental.ReportState:
    state = incremental.build_state(old, opts)
    assert_same(state.report, report_from_table(old, opts))  # keeping the state changes nothing
    after = incremental.absorb(state, new)
    union = finish_table(pd.concat([old, new], ignore_index=True))
    assert_same(after.report, report_from_table(union, opts))
    assert after.absorbed == len(new) and len(after.table) == len(union)
    return after


OPTS = ReportOptions(rounds=ROUNDS, seed=4, details=True)


def test_new_rows_on_existing_items_update_only_the_touched_sums(table):
    rng = np.random.default_rng(0)
    new = np.zeros(len(table), dtype=bool)
    new[rng.choice(len(table), 10, replace=False)] = True
    after = _absorbed_equals_rebuilt(*_split(table, new), OPTS)
    # Same items, so the same draw: the changed figures updated on the touched items only; in
    # full only those whose columns changed (a score pair or a cell seen for the first time).
    assert after.stats["updated"] > 0 and after.stats["resampled"] < after.stats["figures"] / 10
    # Only the items the new rows are on: every figure is paired with the same figure of the
    # old build (a section registering raters in the order their rows come, which new rows
    # move, paired rater a's sums with rater b's, and every item changed).
    assert 0 < after.stats["touched_items"] <= table.loc[new, "item"].nunique()


@pytest.mark.parametrize("kind", ["human", "judge"])
def test_new_rows_of_one_kind_change_sums_on_their_items_only(table, kind):
    rng = np.random.default_rng(5)
    new = np.zeros(len(table), dtype=bool)
    new[rng.choice(np.flatnonzero((table["kind"] == kind).to_numpy()), 25, replace=False)] = True
    after = _absorbed_equals_rebuilt(*_split(table, new), OPTS)
    assert 0 < after.stats["touched_items"] <= table.loc[new, "item"].nunique()


def test_absorbing_nothing_reuses_every_figure(table):
    old, _ = _split(table, np.zeros(len(table), dtype=bool))
    state = incremental.build_state(old, OPTS)
    after = incremental.absorb(state, old.iloc[:0])
    assert_same(after.report, state.report)
    assert after.stats["reused"] == after.stats["figures"] > 0


def test_new_items_move_the_draw_and_the_old_figures_follow_it(table):
    """New items: the draw for more items is the nested one (bootstrap.nested_weights), so a
    figure kept from the previous build is not resampled in full but moved with the few
    multiplicities that changed (B0 + dW @ S0 + W @ dS), and the report is the rebuild's."""
    after = _absorbed_equals_rebuilt(*_split(table, table["item"].to_numpy() >= 35), OPTS)
    assert after.stats["redrawn"] > after.stats["resampled"] and after.stats["reused"] == 0
    # dW is sparse: fewer moved multiplicities than rounds x old items.
    assert 0 < after.stats["moved_weights"] < OPTS.rounds * 35
    # Resampled in parts beside the sections (Resampler.flush), sharing the one draw and its moves.
    assert after.stats["parts"] > 1 or bootstrap._threads() < 2


def test_absorb_on_one_core_resamples_in_one_part(table, monkeypatch):
    monkeypatch.setattr(bootstrap, "_threads", lambda: 1)
    after = _absorbed_equals_rebuilt(*_split(table, table["item"].to_numpy() >= 35), OPTS)
    assert after.stats["parts"] == 1 and after.stats["moved_weights"] > 0


def test_a_new_rater_and_its_rows(table):
    after = _absorbed_equals_rebuilt(*_split(table, (table["rater"] == "judge:verbose").to_numpy()), OPTS)
    assert after.stats["resampled"] > 0  # its figures (and widened rater-pair ones) are new
    # Every other rater's figures are paired with their own of the previous build (by scope and
    # key, not position, which the new rater's shifted): they are reused as they were. (Paired
    # by position, 24 of 182 were, and 131 were resampled in full.)
    assert after.stats["reused"] > after.stats["figures"] * 3 // 4
    # The humans' and the other judges' inputs did not change, though the new name renumbers
    # every label column's codes (memo digests read labels): their computations are reused.
    # (On codes, 77 were reused and 73 computed again.)
    assert after.stats["fits_reused"] > 4 * after.stats["fits_computed"] > 0


def test_a_new_annotator_with_preferences_only_leaves_the_rating_correlations_as_they_were(table):
    """Raters are coded among those with rows of each kind: a newcomer's verdicts move no code
    of the score correlations' blocks (nor of the kappa blocks before it), and the pair tables
    are in pair order, whoever's rows came first."""
    newcomer = (table["rater"] == "human:h5").to_numpy()
    after = _absorbed_equals_rebuilt(*_split(table, newcomer), OPTS)
    computed = after.stats["computed_by"]
    assert "_correlation_block" not in computed
    assert computed.get("_kappa_block", 0) > 0  # its own verdicts' blocks are new
    # Its rows dated among the others' reorder no pair table (memo.pair_rows): each rater's own
    # consistency and every judge's style boards are as they were; the humans' group's are new.
    assert "_rater_consistency" not in computed and computed["_style_boards"] == 1


def test_one_judges_run_reuses_the_other_raters_figures(table):
    """A judge's new verdicts and ratings on items the others had annotated: the other raters'
    per-rater figures are reused from the previous build (memoised, registrations replayed,
    their resamples kept), and the report is still the rebuild's."""
    judge = (table["rater"] == "judge:plain").to_numpy()
    items = table["item"].to_numpy()
    new = judge & (items >= 30)
    after = _absorbed_equals_rebuilt(*_split(table, new), OPTS)
    assert after.stats["fits_reused"] > after.stats["fits_computed"] > 0
    # Most figures' resamples reused; in full only those whose width changed (a rater pair or
    # a cell the judge's new rows made for the first time).
    assert after.stats["reused"] > after.stats["updated"] + after.stats["resampled"] and after.stats["updated"] > 0
    # Where its time went: only what it computed again has seconds (each its own, so together
    # with the keys they are within the build's), the judge's own figures among them.
    spent = after.stats["seconds_by"]
    assert set(spent) - {"(keys)"} == set(after.stats["computed_by"]) and "length_bias" in spent
    assert 0 < sum(spent.values()) <= after.stats["build_seconds"]


def test_a_judges_run_on_a_new_batch_reuses_the_other_raters_figures_widened(table):
    """A judge's run over items nobody had annotated yet (a new batch, after the old items):
    the bootstrap is drawn again over the larger item set, but every other rater's memoised
    figures are reused with their sums widened by the new, empty items, and the report is the
    rebuild's."""
    judge = (table["rater"] == "judge:plain").to_numpy()
    items = table["item"].to_numpy()
    batch = items >= 34
    union = table[~batch | judge].reset_index(drop=True)
    new = (union["rater"] == "judge:plain").to_numpy() & (union["item"].to_numpy() >= 34)
    old, arrived = _split(union, new)
    state = incremental.build_state(old, OPTS)
    after = incremental.absorb(state, arrived)
    assert_same(after.report, report_from_table(finish_table(pd.concat([old, arrived], ignore_index=True)), OPTS))
    assert after.report["details"]["n_items"] > state.report["details"]["n_items"]
    # A moved draw: the kept figures follow it (B0 + dW @ S0), none is resampled in full but new ones.
    assert after.stats["redrawn"] > after.stats["resampled"]
    assert after.stats["fits_reused"] > after.stats["fits_computed"] > 0
    # The reused figures' sums are the previous ones, taller by the new items, which are empty.
    assert state.boot is not None and after.boot is not None
    widened = [s for s in after.boot.sums
               if any(s.nnz == o.nnz and np.shares_memory(s.data, o.data) for o in state.boot.sums)]  # fmt: skip
    assert len(widened) > len(after.boot.sums) / 2
    assert all(s.shape[0] == after.boot.n_units > state.boot.n_units for s in widened)
    assert all(s.tocsr()[state.boot.n_units:].nnz == 0 for s in widened)


def test_a_chain_of_absorbs_equals_a_rebuild(table):
    """Memoised figures reused across several updates, each from the one before: after the
    third, still the rebuild's report (a reused figure from two updates back included)."""
    items = table["item"].to_numpy()
    raters = table["rater"].astype(str).to_numpy()
    steps = [(raters == "judge:plain") & (items >= 34), (raters == "judge:positional") & (items >= 34),
             (raters == "human:h3") & (items >= 34)]  # fmt: skip
    arrived = np.zeros(len(table), dtype=bool)
    for step in steps:
        arrived |= step
    state = incremental.build_state(finish_table(table[~arrived].reset_index(drop=True)), OPTS)
    for step in steps:
        state = incremental.absorb(state, finish_table(table[step].reset_index(drop=True)))
        assert_same(state.report, report_from_table(state.table, OPTS))
    assert state.stats["fits_reused"] > 0


def test_a_chain_of_new_batches_equals_a_rebuild(table):
    """Two new batches, then a judge's rows on old items: each absorb moves the draw kept by the
    one before (its W for the item count then), and the report is the rebuild's each time."""
    items = table["item"].to_numpy()
    raters = table["rater"].astype(str).to_numpy()
    steps = [(items >= 34) & (items < 37), items >= 37, (raters == "judge:plain") & (items < 5)]
    arrived = np.zeros(len(table), dtype=bool)
    for step in steps:
        arrived |= step
    state = incremental.build_state(finish_table(table[~arrived].reset_index(drop=True)), OPTS)
    for k, step in enumerate(steps):
        state = incremental.absorb(state, finish_table(table[step & arrived].reset_index(drop=True)))
        arrived &= ~step
        assert_same(state.report, report_from_table(state.table, OPTS))
        assert (state.stats.get("moved_weights", 0) > 0) == (k < 2)  # the draw moved for new items only


def test_a_new_pair_on_an_existing_item(table):
    old = finish_table(table.copy())
    rows = old[(old["item"] == 7) & (old["protocol"] == "ranking")].copy()
    rows["pair"] = int(old["pair"].max()) + 1
    rows["id"] = np.arange(len(rows)) + int(old["id"].max()) + 1
    rows["strength"] = -rows["strength"].to_numpy()
    _absorbed_equals_rebuilt(old, finish_table(rows.reset_index(drop=True)), OPTS)


def test_new_human_verdicts_that_change_a_gold(table):
    old = finish_table(table.copy())
    humans = old[(old["item"] == 5) & (old["kind"] == "human") & (old["protocol"] == "ranking")]
    gold = int(np.sign(np.sign(humans["strength"].to_numpy()).sum()))
    others = [f"human:h{k}" for k in range(20) if f"human:h{k}" not in set(humans["rater"].astype(str))][:4]
    template = humans.iloc[[0] * len(others)].copy()
    template["rater"] = others
    template["strength"] = -gold if gold else 2  # four new votes outweigh the three
    template["id"] = np.arange(len(others)) + int(old["id"].max()) + 1
    before = incremental.build_state(old, OPTS)
    after = _absorbed_equals_rebuilt(old, finish_table(template.reset_index(drop=True)), OPTS)
    assert after.report["details"]["gold_counts"] != before.report["details"]["gold_counts"]


def test_weights_drawn_again_from_the_seed_when_not_kept(table, monkeypatch):
    monkeypatch.setattr(bootstrap, "WEIGHTS_MAX_BYTES", 0)
    rng = np.random.default_rng(1)
    new = np.zeros(len(table), dtype=bool)
    new[rng.choice(len(table), 40, replace=False)] = True
    after = _absorbed_equals_rebuilt(*_split(table, new), OPTS)
    assert after.boot is not None and after.boot.weights is None


def test_new_items_move_the_draw_when_the_old_weights_were_not_kept(table, monkeypatch):
    # The previous draw W0 is drawn again from the seed for the old item count, so dW is the same.
    monkeypatch.setattr(bootstrap, "WEIGHTS_MAX_BYTES", 0)
    after = _absorbed_equals_rebuilt(*_split(table, table["item"].to_numpy() >= 35), OPTS)
    assert after.boot is not None and after.boot.weights is None
    assert after.stats["redrawn"] > after.stats["resampled"] and after.stats["moved_weights"] > 0


# --- through the cache, on PostgreSQL --------------------------------------------------------


@pytest.mark.django_db
def test_cached_report_absorbs_new_annotations_like_a_rebuild(project, settings):
    from django.core.cache import caches

    from annotate.models import Item, Pair, Preference, Rater, Rating, Response
    from reports.build import build_report
    from reports.cache import CACHE_ALIAS, cached_report

    settings.CONCORDANCE = {**settings.CONCORDANCE, "BOOTSTRAP_ROUNDS": ROUNDS}
    caches[CACHE_ALIAS].clear()
    humans = [Rater.objects.create(kind="human", name=f"h{k}") for k in range(3)]
    judge = Rater.objects.create(kind="judge", name="j", model="alpha")
    helpfulness = project.attributes.get(name="helpfulness")
    rng = np.random.default_rng(2)

    def add_item(i: int, raters: list[Rater]) -> Pair:
        item = Item.objects.create(project=project, external_id=f"i{i}", prompt=f"p{i}")
        ra = Response.objects.create(item=item, external_id="a", text="x" * (5 + i), model="alpha")
        rb = Response.objects.create(item=item, external_id="b", text="y" * (9 + i % 4), model="beta")
        pair = Pair.objects.create(item=item, response_a=ra, response_b=rb)
        for k, r in enumerate(raters):
            Preference.objects.create(rater=r, rater_kind=r.kind, pair=pair, strength=int(rng.integers(-3, 4)),
                                      shown_order="ab" if k % 2 else "ba")  # fmt: skip
            Rating.objects.create(rater=r, response=ra, attribute=helpfulness, value=int(rng.integers(1, 6)))
            Rating.objects.create(rater=r, response=rb, attribute=helpfulness, value=int(rng.integers(1, 6)))
        return pair

    pairs = [add_item(i, [*humans, judge]) for i in range(12)]
    first = cached_report(project, details=True)
    assert first["details"]["incremental"] is None
    # New rows only: a new item, a new judge on old pairs, a human verdict on an old pair.
    late = Rater.objects.create(kind="judge", name="late")
    add_item(12, [*humans, late])
    for pair in pairs[:5]:
        Preference.objects.create(rater=late, rater_kind="judge", pair=pair, strength=1, shown_order="ab")
    extra = Rater.objects.create(kind="human", name="h9")
    Preference.objects.create(rater=extra, rater_kind="human", pair=pairs[3], strength=-2, shown_order="ab")
    absorbed = cached_report(project, details=True)
    inc = absorbed["details"]["incremental"]
    assert inc["new_annotations"] == 4 * 3 + 5 + 1 and inc["base_annotations"] == 12 * 4 * 3
    rebuilt = build_report(project, rounds=ROUNDS, details=True)
    for report in (absorbed, rebuilt):
        report["details"].pop("computed_at")
        report["details"].pop("incremental", None)
    assert_same(absorbed, rebuilt)
    assert absorbed["details"]["n_annotations"] == 13 * 4 * 3 + 5 + 1
    caches[CACHE_ALIAS].clear()


def test_a_report_too_large_to_keep_is_built_without_a_state(project, settings):
    """Under a state cap it cannot fit, the cached report is the plain build's (no state, no
    memo held beside it), and the next change is a full build again, not an absorb."""
    from django.core.cache import caches

    from annotate.models import Item, Pair, Preference, Rater
    from reports.build import build_report
    from reports.cache import CACHE_ALIAS, KEPT_STATES, cached_report, state_cache_key
    from reports.selectors import ReportFilters

    settings.CONCORDANCE = {**settings.CONCORDANCE, "BOOTSTRAP_ROUNDS": ROUNDS, "REPORT_STATE_MAX_MB": 0}
    caches[CACHE_ALIAS].clear()
    humans = [Rater.objects.create(kind="human", name=f"h{k}") for k in range(3)]
    for i in range(6):
        item = Item.objects.create(project=project, external_id=f"i{i}", prompt=f"p{i}")
        ra = item.responses.create(external_id="a", text="x" * (5 + i), model="alpha")
        rb = item.responses.create(external_id="b", text="y" * 7, model="beta")
        pair = Pair.objects.create(item=item, response_a=ra, response_b=rb)
        for k, r in enumerate(humans):
            Preference.objects.create(rater=r, rater_kind="human", pair=pair, strength=(i + k) % 7 - 3, shown_order="ab")
    first = cached_report(project, details=True)
    assert first["details"]["incremental"] is None
    assert state_cache_key(project, ReportFilters(), {"rounds": ROUNDS}) not in KEPT_STATES
    late = Rater.objects.create(kind="human", name="h9")
    Preference.objects.create(rater=late, rater_kind="human", pair=pair, strength=3, shown_order="ba")
    second = cached_report(project, details=True)
    assert second["details"]["incremental"] is None  # built in full again
    rebuilt = build_report(project, rounds=ROUNDS, details=True)
    for report in (second, rebuilt):
        report["details"].pop("computed_at")
        report["details"].pop("incremental", None)
    assert_same(second, rebuilt)
    caches[CACHE_ALIAS].clear()


def test_a_new_judge_leaves_the_other_groups_leaderboards_as_they_were(table):
    """Each group's Bradley-Terry bootstrap is seeded by the group's name, not its place among
    the groups: a judge added before another (in the order shown) does not move that one's
    intervals. The other raters' figures are the same data, so the same numbers."""
    without = finish_table(table[(table["rater"] != "judge:m0-judge").to_numpy()].reset_index(drop=True))
    before = report_from_table(without, OPTS)["leaderboard"]
    after = report_from_table(finish_table(table.copy()), OPTS)["leaderboard"]
    assert "judge:m0-judge" in after and "judge:m0-judge" not in before
    for group in ("humans", "judge:plain", "judge:verbose"):
        assert_same(after[group]["bradley_terry"], before[group]["bradley_terry"])


def test_kept_states_keep_the_least_recently_used_out_first_and_under_the_budget():
    from annotate.lru import BoundedLRU

    kept: BoundedLRU[str, str] = BoundedLRU(100)  # reports.cache.KEPT_STATES' kind
    kept.put("a", "state a", 40)
    kept.put("b", "state b", 40)
    assert kept.get("a") == "state a"  # a is now the most recently used
    kept.put("c", "state c", 40)  # 120 > 100: b goes
    assert "b" not in kept and kept.get("a") == "state a" and kept.get("c") == "state c"
    kept.put("a", "state a2", 101)  # alone over the budget: not kept, and the old one is stale
    assert "a" not in kept and kept.get("c") == "state c"


def test_a_kept_state_expires_with_the_cache_timeout(monkeypatch):
    from annotate import lru
    from reports import cache as report_cache

    kept: lru.BoundedLRU[str, str] = lru.BoundedLRU(10, max_age=report_cache.TIMEOUT_SECONDS)
    kept.put("a", "state a", 1)
    now = lru.time.time()
    monkeypatch.setattr(lru.time, "time", lambda: now + report_cache.TIMEOUT_SECONDS + 1)
    assert kept.get("a") is None and "a" not in kept


def test_state_bytes_is_about_the_pickle_size(table):
    import pickle

    from reports.cache import state_bytes

    state = incremental.build_state(finish_table(table.copy()), OPTS)
    pickled = len(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
    assert 0.75 * pickled < state_bytes(state) < 1.25 * pickled, (state_bytes(state), pickled)


@pytest.mark.django_db
def test_with_the_shipped_file_cache_the_state_stays_in_the_process(project, settings, tmp_path):
    """The default cache (config/settings.py) is a file cache, which pickles and compresses what
    it stores (seconds for a large state): the report goes there, the state stays live here and
    the next report absorbs into it."""
    from django.core.cache import caches

    from annotate.models import Item, Pair, Preference, Rater
    from reports.cache import CACHE_ALIAS, KEPT_STATES, cached_report, state_cache_key
    from reports.selectors import ReportFilters

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                                   "LOCATION": str(tmp_path / "cache")}}  # fmt: skip
    settings.CONCORDANCE = {**settings.CONCORDANCE, "BOOTSTRAP_ROUNDS": ROUNDS}
    humans = [Rater.objects.create(kind="human", name=f"h{k}") for k in range(3)]
    pairs = []
    for i in range(6):
        item = Item.objects.create(project=project, external_id=f"i{i}", prompt=f"p{i}")
        ra = item.responses.create(external_id="a", text="x" * (5 + i), model="alpha")
        rb = item.responses.create(external_id="b", text="y" * 7, model="beta")
        pairs.append(Pair.objects.create(item=item, response_a=ra, response_b=rb))
        for k, r in enumerate(humans):
            Preference.objects.create(rater=r, rater_kind="human", pair=pairs[-1], strength=(i + k) % 7 - 3,
                                      shown_order="ab")  # fmt: skip
    assert cached_report(project, details=True)["details"]["incremental"] is None
    skey = state_cache_key(project, ReportFilters(), {"rounds": ROUNDS})
    assert skey in KEPT_STATES and caches[CACHE_ALIAS].get(skey) is None
    _, _, before = KEPT_STATES.get(skey)
    judge = Rater.objects.create(kind="judge", name="j", model="alpha")
    for pair in pairs:
        Preference.objects.create(rater=judge, rater_kind="judge", pair=pair, strength=1, shown_order="ba")
    absorbed = cached_report(project, details=True)
    assert absorbed["details"]["incremental"]["new_annotations"] == len(pairs)
    _, _, after = KEPT_STATES.get(skey)
    assert after is not before and len(after.table) == len(before.table) + len(pairs)
    caches[CACHE_ALIAS].clear()


@pytest.mark.parametrize("new_protocol", ["ranking", "rating"])
def test_new_rows_of_one_protocol_keep_the_tables_dtypes(table, new_protocol):
    """New rows of one protocol only (a judge's preference run has no ratings) have columns the
    other protocol fills (nullable or untyped); appending them must not turn the old rows into
    Python objects (seconds at 1M), and gives what finishing the concatenation gives."""
    from reports.selectors import COLUMNS, append_rows

    full = finish_table(table.copy())
    new = (full["protocol"] == new_protocol).to_numpy() & (full["item"] >= full["item"].max() - 2).to_numpy()
    old_rows, new_rows = _split(full, new)
    out = append_rows(old_rows, new_rows)
    ref = finish_table(pd.concat([old_rows, new_rows], ignore_index=True))
    assert {c: str(out[c].dtype) for c in COLUMNS} == {c: str(ref[c].dtype) for c in COLUMNS}
    assert not any(out[c].dtype == object for c in COLUMNS)
    pd.testing.assert_frame_equal(out, ref)
