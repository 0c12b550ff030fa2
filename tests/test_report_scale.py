"""The report's fast paths (issue 15) against the plain ways they replace, on small random cases.

- The bootstrap product (reports/metrics/bootstrap.py `_Product`: identical columns once, integer
  columns in float32) equals the plain float64 sparse product bit for bit: same draws, same sums.
- The whole report with the fast product equals the report with the plain one, key for key.
- The report's figures equal the per-row Python baseline of bench/reports.py on a synthetic table.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.sparse as sp

from reports.build import ReportOptions, report_from_table
from reports.metrics import bootstrap
from tests.bench_helpers import bench_reports


class _PlainProduct:
    """The product as it was before issue 15: one float64 sparse matrix, all columns."""

    def __init__(self, blocks: list[sp.csr_matrix], *, seen: dict | None = None, offset: int = 0) -> None:
        self.blocks = list(blocks)
        self.offset = offset  # where a flushed part's columns go (Resampler.flush); it copies nothing
        self.copies: list[tuple[int, int]] = []

    def add(self, block: sp.csr_matrix) -> None:
        self.blocks.append(block)

    def finish(self) -> None:
        self.stats_t = sp.hstack(self.blocks, format="csr").T.tocsr()
        self.width = self.stats_t.shape[0]

    def times(self, w: np.ndarray, out: np.ndarray | None = None, *, parallel: bool = True) -> np.ndarray:
        if not hasattr(self, "stats_t"):
            self.finish()
        result = np.asarray(self.stats_t @ w.T).T
        if out is not None:
            out[...] = result
        return result


def _blocks(rng: np.random.Generator, n_units: int) -> list[sp.csr_matrix]:
    """Per-item sums as the figures register them: counts, 0/1 rates with a shared denominator
    (registered twice), fractional values, and an integer column too large for float32."""
    units = rng.integers(0, n_units, 400)
    counts = bootstrap.per_unit_sums(units, rng.integers(0, 9, 400), 1.0, n_units=n_units, width=9)
    hits = rng.random(400) < 0.6
    rate_cols = np.column_stack([hits, np.ones(400)]).astype(float)
    rate = bootstrap.per_unit_sums(np.repeat(units, 2), np.tile([0, 1], 400), rate_cols.ravel(),
                                   n_units=n_units, width=2)  # fmt: skip
    fractional = bootstrap.per_unit_sums(units, rng.integers(0, 3, 400), rng.random(400) / 3, n_units=n_units, width=3)
    large = bootstrap.per_unit_sums(units[:50], np.zeros(50), 2.0**20, n_units=n_units, width=1)
    return [counts, rate, rate.copy(), fractional, large]


def test_fast_product_equals_the_plain_float64_product_bit_for_bit():
    # Item by item (CSC) instead of row by row: the fractional rows still add up in the same
    # order, to the last bit.
    rng = np.random.default_rng(0)
    n_units = 60
    blocks = _blocks(rng, n_units)
    fast, plain = bootstrap._Product(list(blocks)), _PlainProduct(blocks)  # _Product releases its list
    # The duplicate rate block and its copy were multiplied once; the large column went float64.
    assert fast.n_distinct < fast.width
    assert len(fast.rows32) and len(fast.rows64)
    resampler = bootstrap.Resampler(n_units=n_units, rounds=50)
    w = resampler.weights(0, 50)
    assert np.array_equal(fast.times(w), plain.times(w))
    # A chunk with a multiplicity past the float32 bound takes the float64 path, still equal.
    w[3, 7] = 1000.0
    assert np.array_equal(fast.times(w), plain.times(w))


def test_resampler_results_unchanged_by_the_fast_product(monkeypatch):
    rng = np.random.default_rng(2)
    n_units = 60

    def samples() -> list[np.ndarray]:
        boot = bootstrap.Resampler(n_units=n_units, rounds=120, seed=5)
        ests = [boot.estimate(b, lambda s: s, n=1) for b in _blocks(np.random.default_rng(3), n_units)]
        boot.run()
        return [e.samples for e in ests]

    fast = samples()
    monkeypatch.setattr(bootstrap, "_Product", _PlainProduct)
    plain = samples()
    assert rng is not None
    for a, b in zip(fast, plain, strict=True):
        assert np.array_equal(a, b)


def test_flushed_parts_give_the_one_products_samples(monkeypatch):
    # Figures multiplied in parts while the sections go on (Resampler.flush): a part's row that
    # an earlier part has is copied from it, and a part of copies only multiplies nothing. The
    # samples are the one product's, bit for bit, and so the plain product's.
    n_units = 60

    def samples(flushes: bool, product: type = bootstrap._Product) -> tuple[list[np.ndarray], list[list]]:
        monkeypatch.setattr(bootstrap, "_Product", product)
        boot = bootstrap.Resampler(n_units=n_units, rounds=150, seed=5)
        blocks = _blocks(np.random.default_rng(3), n_units)
        ests = []
        # Parts: counts and two rate blocks; fractional, large and a rate block again; a rate block.
        for k, block in enumerate([*blocks, blocks[1], blocks[2]]):
            ests.append(boot.estimate(block, lambda s: s, n=1))
            if flushes and k in (2, 5):
                boot.flush()
        parts = list(boot._parts)
        boot.run()
        copies = [part.result()[0].copies for part in parts]
        return [e.samples for e in ests], copies

    flushed, copies = samples(True)
    assert len(copies) == 2 and copies[0] == []
    assert copies[1] == [(17, 9), (18, 10)]  # the first part's rate columns, registered again
    one, _ = samples(False)
    plain, _ = samples(False, _PlainProduct)
    for a, b, c in zip(flushed, one, plain, strict=True):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    # Not flushed where the shared multiplicities would not fit: the same samples still.
    monkeypatch.setattr(bootstrap, "WEIGHTS_MAX_BYTES", 0)
    for a, b in zip(samples(True)[0], one, strict=True):
        assert np.array_equal(a, b)


@pytest.fixture(scope="module")
def synthetic():
    bench = bench_reports()
    return bench, bench.synthetic_table(300, seed=7)


def test_whole_report_identical_with_the_plain_product(synthetic, monkeypatch):
    _, table = synthetic
    opts = ReportOptions(rounds=100, seed=3, details=True)
    fast = report_from_table(table, opts)
    monkeypatch.setattr(bootstrap, "_Product", _PlainProduct)
    plain = report_from_table(table, opts)
    assert json.dumps(fast, sort_keys=True) == json.dumps(plain, sort_keys=True)


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None or (isinstance(b, float) and math.isnan(b)):
        return a is None and (b is None or math.isnan(b))
    return a == pytest.approx(b, abs=1e-12)


def test_report_figures_equal_the_per_row_python_baseline(synthetic):
    bench, table = synthetic
    report = report_from_table(table, ReportOptions(rounds=0, seed=0))
    rows = table.astype(object).where(table.notna(), None).to_dict("records")
    naive, _, _ = bench.naive_report(rows, rounds=0, seed=0)
    kappas = {(p["rater_a"], p["rater_b"]): p["cohen_kappa"] for p in report["agreement"]["pairs"]}
    assert kappas and set(kappas) == set(naive["kappa"])
    for key, value in naive["kappa"].items():
        assert _close(kappas[key], value), key
    # (Judge accuracy is left out: the baseline breaks a gold tie by the lowest code, the report
    # by the earliest annotation, as METRICS.md says; tests/test_verdicts.py covers gold.)
    for row in report["length"]:
        assert _close(row["longer_wins_rate"], naive["length"][row["rater"]])
    for row in report["position"]:
        if row["consistency"] is not None:
            assert _close(row["consistency"], naive["position"][row["judge"]])
    own = {r["judge"]: r for r in report["self_preference"]}["judge:m0-judge"]
    assert _close(own["raw_win_rate"], naive["self"]["judge:m0-judge"])
    for row in report["consistency"]:
        if row["rater"] in naive["consistency"]:
            assert _close(row["consistency"], float(np.mean(naive["consistency"][row["rater"]])))
    # Bradley-Terry without rounds is the MLE; the baseline's MM reaches the same fit.
    elo = {r["model"]: r["elo"] for r in report["leaderboard"]["humans"]["bradley_terry"]}
    for model, value in naive["elo"].items():
        assert elo[model] == pytest.approx(value, abs=1e-3)


@pytest.mark.django_db
def test_column_wise_reader_gives_the_same_report_as_the_tuple_reader(project, monkeypatch):
    """The selector's COPY reader (PostgreSQL) against the values_list reader it replaces:
    labels with empty models, missing probabilities, ratings and preferences, same report."""
    from annotate.models import Item, Pair, Preference, Rater, Rating, Response
    from reports import selectors
    from reports.build import build_report

    humans = [Rater.objects.create(kind="human", name=f"h{k}") for k in range(3)]
    judge = Rater.objects.create(kind="judge", name="j, \"quoted\"", model="alpha")
    helpfulness = project.attributes.get(name="helpfulness")
    rng = np.random.default_rng(0)
    for i in range(15):
        item = Item.objects.create(project=project, external_id=f"i{i}", prompt=f"p{i}")
        ra = Response.objects.create(item=item, external_id="a", text="x" * (5 + i), model="alpha" if i % 2 else "")
        rb = Response.objects.create(item=item, external_id="b", text="y,\n" * (3 + i % 4), model="beta")
        pair = Pair.objects.create(item=item, response_a=ra, response_b=rb)
        for k, h in enumerate(humans):
            Preference.objects.create(rater=h, rater_kind="human", pair=pair, strength=int(rng.integers(-3, 4)),
                                      shown_order="ab" if k % 2 else "ba")  # fmt: skip
            Rating.objects.create(rater=h, response=ra, attribute=helpfulness, value=int(rng.integers(1, 6)))
            Rating.objects.create(rater=h, response=rb, attribute=helpfulness, value=int(rng.integers(1, 6)))
        probs = {"A": 0.7, "tie": 0.1, "B": 0.2} if i % 3 else None
        Preference.objects.create(rater=judge, rater_kind="judge", pair=pair, strength=int(rng.integers(-1, 2)),
                                  shown_order="ab", probabilities=probs)  # fmt: skip
    copy_table = selectors.annotations_table(project)
    copied = build_report(project, rounds=40, details=True)
    monkeypatch.setattr(selectors, "_copy_frame", selectors._records_frame)
    tuple_table = selectors.annotations_table(project)
    tupled = build_report(project, rounds=40, details=True)
    for report in (copied, tupled):
        report["details"].pop("computed_at")
    assert json.dumps(copied, sort_keys=True) == json.dumps(tupled, sort_keys=True)
    assert len(copy_table) == len(tuple_table) == 15 * (3 + 6 + 1)
    key = ["protocol", "id"]
    a = copy_table.sort_values(key).reset_index(drop=True)
    b = tuple_table.sort_values(key).reset_index(drop=True)
    for col in selectors.COLUMNS:
        assert a[col].astype(str).tolist() == b[col].astype(str).tolist(), col


def test_integer_rows_is_the_row_by_row_check(monkeypatch):
    """bootstrap._integer_rows gives, per row, what checking the row alone gives (all entries
    integers, absolute sum within the float32 bound), across segment boundaries too."""
    rng = np.random.default_rng(5)
    rows = []
    for _ in range(300):
        k = int(rng.integers(0, 12))
        kind = rng.integers(0, 3)
        values = rng.integers(-5, 6, k).astype(float) if kind == 0 else rng.random(k) * 3 if kind == 1 else \
            np.full(k, float(2**19 // max(k, 1) + 1))  # fmt: skip
        rows.append(values)
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
    data = np.concatenate(rows) if rows else np.zeros(0)
    want = [bool(np.array_equal(r, np.rint(r))) and np.abs(r).sum() * bootstrap._WEIGHT_BOUND < bootstrap._F32_EXACT
            for r in rows]  # fmt: skip
    monkeypatch.setattr(bootstrap, "_ROWS_AT_ONCE", 7)  # many segments
    assert bootstrap._integer_rows(data, indptr).tolist() == want
    monkeypatch.setattr(bootstrap, "_ROWS_AT_ONCE", 1 << 22)
    assert bootstrap._integer_rows(data, indptr).tolist() == want


@pytest.mark.parametrize(("minor_range", "major_range"), [((0, 27), (0, 51_000)), ((0, 27), (0, 5_000_000)),
                                                          ((-5, 5), (-100_000, 100_000)), ((0, 70_000), (0, 2**40))])  # fmt: skip
def test_lexsort_by_two_stable_sorts_is_numpys(minor_range, major_range):
    """build._lexsort (radix sorts where the codes fit in 16 bits) orders as np.lexsort does,
    ties included: rows of equal keys keep their order, which the score correlations' last
    duplicate and the kappas' pairs read."""
    from reports.build import _lexsort

    rng = np.random.default_rng(4)
    for n in (0, 1, 2_000, 100_000):
        minor, major = rng.integers(*minor_range, n), rng.integers(*major_range, n)
        assert np.array_equal(_lexsort(minor, major), np.lexsort((minor, major)))
