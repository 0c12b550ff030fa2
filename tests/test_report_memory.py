"""Issue 15, peak memory at 10M annotations: the lean ways of reports/build.py,
reports/metrics/checklists.py and reports/metrics/bootstrap.py against the code they replace,
copied here as it was. Same figures, bit for bit: the whole report's JSON is identical with the
old code put back, and each replaced step gives what the old one gave on synthetic tables."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from reports import build
from reports.build import (
    RANKING,
    RATING,
    ReportOptions,
    _labels,
    _Slice,
    _small_unique,
    rank_correlations_from_table,
    report_from_table,
)
from reports.metrics import bootstrap, checklists
from reports.metrics.bootstrap import _F32_EXACT, _WEIGHT_BOUND, Resampler
from reports.metrics.verdicts import apply_wildbench_rule
from tests.bench_helpers import bench_reports

# --- the code as it was ------------------------------------------------------------------------


def old_per_unit_sums(units, columns, values, *, n_units: int, width: int) -> sp.csr_matrix:
    units = np.asarray(units, dtype=np.int64)
    values = np.broadcast_to(np.asarray(values, dtype=np.float64), units.shape)
    return sp.csr_matrix((values, (units, np.asarray(columns, dtype=np.int64))), shape=(n_units, width))


def old_preferences(table: pd.DataFrame, opts: ReportOptions) -> pd.DataFrame:
    p = table[table["protocol"] == RANKING]
    cols = ["id", "created_at", "rater", "kind", "item", "pair", "response_a", "response_b",
            "model_a", "model_b", "len_a", "len_b", "strength", "shown_order", "p_a", "p_tie", "p_b"]  # fmt: skip
    p = p[cols].copy()
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
def old_ratings(table: pd.DataFrame) -> pd.DataFrame:
    r = table[table["protocol"] == RATING][["rater", "kind", "item", "response", "model", "attribute", "value"]]
    r = r.copy()
    for col in ("response", "value"):
        r[col] = r[col].to_numpy(dtype=np.int64)
    labels = _labels(table)
    for col in ("rater", "kind", "model", "attribute"):
        r[col] = r[col].astype(labels)
    return r


def old_score_correlations(
    ratings: pd.DataFrame, shown: list[str], boot: Resampler
) -> list[tuple[str, str, str, _Slice]]:
    """Spearman's rho and Kendall's tau-b between every two raters shown, per attribute, over the
    responses both rated. Each rater pair's figure is a function of its contingency table of
    scores (agreement.rank_correlations_from_table), so all pairs of an attribute are one batched
    estimate on the shared bootstrap, like the kappas. Pairs with fewer than two common responses
    are left out (no correlation is defined)."""
    out: list[tuple[str, str, str, _Slice]] = []
    rater_codes = pd.Categorical(ratings["rater"], categories=shown).codes.astype(np.int64)
    keep = rater_codes >= 0
    if not keep.any():
        return out
    n_r = len(shown)
    attr_codes, attributes = pd.factorize(ratings["attribute"].to_numpy()[keep])
    rater_all = rater_codes[keep]
    resp_all = ratings["response"].to_numpy()[keep]
    value_all = ratings["value"].to_numpy()[keep]
    item_all = ratings["item"].to_numpy()[keep]
    for a_code, attribute in enumerate(attributes):
        sel = attr_codes == a_code
        resp, rater, value, item = resp_all[sel], rater_all[sel], value_all[sel], item_all[sel]
        # Sorted by response then rater; one score per rater and response (of duplicates, the last row).
        order = np.lexsort((rater, resp))
        resp, rater, value, item = resp[order], rater[order], value[order], item[order]
        last = np.ones(len(resp), dtype=bool)
        last[:-1] = (resp[1:] != resp[:-1]) | (rater[1:] != rater[:-1])
        resp, rater, value, item = resp[last], rater[last], value[last], item[last]
        domain, vcode = np.unique(value, return_inverse=True)
        v = len(domain)
        # Every two raters of a response: rows i and i + d of the same response (rater i's code is
        # the smaller, as rows are sorted by rater within a response).
        ia, ib = [], []
        d = 1
        while d < len(resp):
            same = np.nonzero(resp[d:] == resp[:-d])[0]
            if not len(same):
                break
            ia.append(same)
            ib.append(same + d)
            d += 1
        if not ia:
            continue
        i_a, i_b = np.concatenate(ia), np.concatenate(ib)
        group = rater[i_a] * n_r + rater[i_b]
        groups, group_codes, sizes = _small_unique(group, n_r * n_r)
        cell = group_codes * (v * v) + vcode[i_a] * v + vcode[i_b]
        # Only observed cells become bootstrap columns (a wide scale would make V*V mostly empty).
        cells, cell_codes, _ = _small_unique(cell, len(groups) * v * v)
        per_unit = old_per_unit_sums(item[i_a], cell_codes, 1.0, n_units=boot.n_units, width=len(cells))
        n_groups = len(groups)

        def statistic(s: np.ndarray, cells=cells, n_groups=n_groups, v=v) -> np.ndarray:
            table = np.zeros((*s.shape[:-1], n_groups * v * v))
            table[..., cells] = s
            return rank_correlations_from_table(table.reshape(*s.shape[:-1], n_groups, v, v))

        est = boot.estimate(per_unit, statistic, n=len(i_a))
        for g, code in enumerate(groups):
            if sizes[g] >= 2:
                out.append((shown[code // n_r], shown[code % n_r], str(attribute), _Slice(est, g, int(sizes[g]))))
    return out


def old_co_rated(verdicts: pd.DataFrame, kinds: dict[str, str], comparison: str) -> pd.DataFrame:
    """Every two raters' verdicts on the same pair (columns item, va, vb): two humans once per
    pair of them, or a judge (va) with a human (vb)."""
    rater = verdicts["rater"]
    # Any order serves to count each two humans once; the report's raters are categoricals, which
    # do not compare with <, so their codes do the ordering there.
    order = rater.cat.codes if isinstance(rater.dtype, pd.CategoricalDtype) else rater
    v = verdicts[["pair", "item", "verdict"]].assign(
        rater=order.to_numpy(), kind=rater.astype(object).map(kinds).to_numpy()
    )
    co = v.merge(v, on=["pair", "item"], suffixes=("_a", "_b"))
    if comparison == "human_human":
        # Rater names may be an unordered categorical (reports.selectors): order them as text.
        once = co["rater_a"].astype(str) < co["rater_b"].astype(str)
        co = co[(co["kind_a"] == "human") & (co["kind_b"] == "human") & once]
    elif comparison == "judge_human":
        co = co[(co["kind_a"] == "judge") & (co["kind_b"] == "human")]
    else:
        raise ValueError(f"unknown comparison {comparison!r}")
    return pd.DataFrame({"item": co["item"].to_numpy(), "va": co["verdict_a"].to_numpy(), "vb": co["verdict_b"].to_numpy()})


def old_add(self, block: sp.csr_matrix) -> None:
    """Take in one figure's per-item sums (items x columns): its transpose (CSR = its CSC
    form read sideways) split into float32 rows, float64 rows and rows already seen."""
    self._n_items = block.shape[0]
    piece = sp.csc_matrix(block).T.tocsr()
    piece.sum_duplicates()  # canonical rows (sorted, summed): equal rows compare equal
    data, indices, indptr = piece.data, piece.indices, piece.indptr
    row_of = np.repeat(np.arange(piece.shape[0]), np.diff(indptr))
    fractional = np.bincount(row_of, weights=data != np.rint(data), minlength=piece.shape[0])
    abs_total = np.bincount(row_of, weights=np.abs(data), minlength=piece.shape[0])
    new32: list[int] = []
    new64: list[int] = []
    for r in range(piece.shape[0]):
        lo, hi = indptr[r], indptr[r + 1]
        key = hashlib.blake2b(indices[lo:hi].tobytes() + data[lo:hi].tobytes(), digest_size=16).digest()
        match = self._seen.get(key)
        if match is None:
            match = self._seen[key] = len(self._is32)
            exact = fractional[r] == 0 and abs_total[r] * _WEIGHT_BOUND < _F32_EXACT
            self._is32.append(bool(exact))
            (new32 if exact else new64).append(r)
        self._expand.append(match)
    if new32:
        self._keep32.append(piece[new32].astype(np.float32))
    if new64:
        self._keep64.append(piece[new64])


def old_by_item(pieces: list[sp.csr_matrix], n: int, dtype: type) -> sp.csc_matrix:
    if not pieces:
        return sp.csc_matrix((0, n), dtype=dtype)
    rows = sp.vstack(pieces, format="csr")  # a concatenation of CSR row blocks
    pieces.clear()
    m = rows.tocsc()
    m.sort_indices()
    return m


# --- the tests ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return bench_reports().synthetic_table(400, seed=11)


def _put_back_old_code(monkeypatch) -> None:
    monkeypatch.setattr(build, "_preferences", old_preferences)
    monkeypatch.setattr(build, "_ratings", old_ratings)
    monkeypatch.setattr(build, "_score_correlations", old_score_correlations)
    monkeypatch.setattr(checklists, "co_rated", old_co_rated)
    monkeypatch.setattr(bootstrap._Product, "add", old_add)
    monkeypatch.setattr(bootstrap, "_by_item", old_by_item)


@pytest.mark.parametrize("options", [{}, {"rater_group": "humans"}, {"wildbench_k": 1}])
def test_whole_report_identical_to_the_old_code(table, monkeypatch, options):
    opts = ReportOptions(rounds=60, seed=4, details=True, checklist_items=frozenset(range(0, 400, 3)), **options)
    lean = report_from_table(table, opts)
    _put_back_old_code(monkeypatch)
    old = report_from_table(table, opts)
    assert json.dumps(lean, sort_keys=True) == json.dumps(old, sort_keys=True)


def test_frames_of_each_protocol_identical(table):
    opts = ReportOptions()
    pd.testing.assert_frame_equal(build._preferences(table, opts), old_preferences(table, opts))
    pd.testing.assert_frame_equal(build._ratings(table), old_ratings(table))


def _sorted_rows(df: pd.DataFrame) -> list[tuple]:
    return sorted(df[["item", "va", "vb"]].itertuples(index=False, name=None))


@pytest.mark.parametrize("comparison", checklists.COMPARISONS)
def test_co_rated_gives_the_rows_of_the_merge(table, comparison):
    """The same (item, va, vb) rows as the self-merge, which side is va included, on the report's
    categorical raters, on plain names (compared as text), with a rater of no known kind."""
    opts = ReportOptions()
    verdicts = build.combine_orders(build._preferences(table, opts))
    verdicts = verdicts.assign(item=pd.factorize(verdicts["item"])[0])
    kinds = {str(r): str(k) for r, k in zip(verdicts["rater"], verdicts["kind"], strict=True)}
    lean, old = checklists.co_rated(verdicts, kinds, comparison), old_co_rated(verdicts, kinds, comparison)
    assert len(lean) > 100 and _sorted_rows(lean) == _sorted_rows(old)
    rng = np.random.default_rng(0)
    names = ["h10", "h9", "h2", "j1", "j20", "x"]
    plain = pd.DataFrame({"rater": rng.choice(names, 300), "pair": rng.integers(0, 40, 300)})
    plain = plain.drop_duplicates(["rater", "pair"]).assign(verdict=lambda d: rng.integers(0, 3, len(d)))
    plain = plain.assign(item=plain["pair"] // 2)
    plain_kinds = {"h10": "human", "h9": "human", "h2": "human", "j1": "judge", "j20": "judge"}
    lean, old = checklists.co_rated(plain, plain_kinds, comparison), old_co_rated(plain, plain_kinds, comparison)
    assert len(lean) > 20 and _sorted_rows(lean) == _sorted_rows(old)
    with pytest.raises(ValueError):
        checklists.co_rated(plain, plain_kinds, "judge_judge")


def _counted(cells: tuple[np.ndarray, np.ndarray, np.ndarray]) -> list[tuple[int, int, int]]:
    from collections import Counter

    item, cell, count = cells
    totals: Counter = Counter()
    for i, c, k in zip(item.tolist(), cell.tolist(), count.tolist(), strict=True):
        totals[(i, c // 3, c % 3)] += k
    return sorted(totals.items())


def test_judge_human_cells_count_the_rows_of_co_rated(table):
    """judge_human_cells counts what co_rated lists for judge-human: every (item, va, vb) as often,
    on the report's categorical raters and on plain names with a rater of no known kind."""
    from collections import Counter

    opts = ReportOptions()
    verdicts = build.combine_orders(build._preferences(table, opts))
    verdicts = verdicts.assign(item=pd.factorize(verdicts["item"])[0])
    kinds = {str(r): str(k) for r, k in zip(verdicts["rater"], verdicts["kind"], strict=True)}
    rng = np.random.default_rng(1)
    plain = pd.DataFrame({"rater": rng.choice(["h10", "h9", "h2", "j1", "j20", "x"], 300), "pair": rng.integers(0, 40, 300)})
    plain = plain.drop_duplicates(["rater", "pair"]).assign(verdict=lambda d: rng.integers(0, 3, len(d)))
    plain = plain.assign(item=plain["pair"] // 2)
    plain_kinds = {"h10": "human", "h9": "human", "h2": "human", "j1": "judge", "j20": "judge"}
    for frame, known in ((verdicts, kinds), (plain, plain_kinds)):
        rows = checklists.co_rated(frame, known, "judge_human")
        listed = sorted(Counter(_sorted_rows(rows)).items())
        assert len(rows) > 20 and _counted(checklists.judge_human_cells(frame, known)) == listed


def test_score_correlations_identical(table):
    """Spearman and Kendall between every two raters, per attribute, on a wide scale too (many
    empty cells) and with a repeated score (the last one counts)."""
    ratings = build._ratings(table).assign(item=lambda d: pd.factorize(d["item"])[0])
    wide = ratings.assign(value=ratings["value"] * 17 + ratings["response"] % 5)
    repeated = pd.concat([ratings, ratings.iloc[:500].assign(value=0)])
    for frame in (ratings, wide, repeated):
        shown = sorted(frame["rater"].astype(str).unique())
        results = []
        for fn in (build._score_correlations, old_score_correlations):
            boot = Resampler(n_units=int(frame["item"].max()) + 1, rounds=30, seed=2)
            rows = fn(frame, shown, boot)
            boot.run()
            results.append([(a, b, attr, est.n, est.value.tolist(), est.ci.tolist()) for a, b, attr, est in rows])
        assert results[0] and json.dumps(results[0]) == json.dumps(results[1])


def test_product_takes_in_blocks_as_before(monkeypatch):
    """Rows taken in one by one (exact integers in float32, the rest float64, repeats once) as
    the whole-block pass took them, with int32 indices as with int64, NaN and large rows too."""
    rng = np.random.default_rng(5)
    n = 80
    units = rng.integers(0, n, 600)
    blocks = [
        bootstrap.per_unit_sums(units.astype(np.int32), rng.integers(0, 9, 600).astype(np.int32), 1.0,
                                n_units=n, width=9),
        old_per_unit_sums(units, rng.integers(0, 4, 600), rng.random(600), n_units=n, width=4),
        old_per_unit_sums(units[:40], np.zeros(40), 2.0**20, n_units=n, width=1),
        old_per_unit_sums(units[:40], np.arange(40) % 2, np.where(np.arange(40) == 3, np.nan, 1.0),
                          n_units=n, width=2),
    ]  # fmt: skip
    blocks.append(blocks[0].copy())
    assert (bootstrap.per_unit_sums(units.astype(np.int32), units % 3, 1.0, n_units=n, width=3)
            != old_per_unit_sums(units, units % 3, 1.0, n_units=n, width=3)).nnz == 0  # fmt: skip
    w = Resampler(n_units=n, rounds=50).weights(0, 50)
    lean = bootstrap._Product([b.copy() for b in blocks])
    monkeypatch.setattr(bootstrap._Product, "add", old_add)
    old = bootstrap._Product([b.copy() for b in blocks])
    assert lean._is32 == old._is32 and lean._expand == old._expand
    assert np.array_equal(lean.times(w), old.times(w), equal_nan=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_by_item_fills_the_arrays_vstack_and_tocsc_gave(dtype):
    rng = np.random.default_rng(8)
    n = 70
    pieces = [sp.random(int(rows), n, density=0.3, format="csr", random_state=rng, dtype=dtype)
              for rows in rng.integers(1, 30, 6)]  # fmt: skip
    pieces.append(sp.csr_matrix((4, n), dtype=dtype))  # a piece without entries
    lean = bootstrap._by_item([p.copy() for p in pieces], n, dtype)
    old = old_by_item([p.copy() for p in pieces], n, dtype)
    assert lean.shape == old.shape and lean.dtype == old.dtype and lean.has_sorted_indices
    for name in ("indptr", "indices", "data"):
        assert np.array_equal(getattr(lean, name), getattr(old, name)), name
    assert bootstrap._by_item([], n, dtype).shape == (0, n)
