"""Simulation for the README's "Beyond one machine": the report's bootstrap, split by items.

Every figure's bootstrap is w @ S (reports/metrics/bootstrap.py): w the multiplicities of each
item in a round, S the per-item sums of every figure. Items are the rows of S, so cutting the
items into shards cuts S into row blocks, and w @ S = sum over shards of w[:, shard] @ S[shard].
This script builds the whole report on a synthetic table (bench/reports.py), takes the one
product it ran (its S, as the product holds it), and redoes one chunk of 50 rounds shard by
shard: the integer columns (counts) must come out equal to the last bit, the fractional ones
(means) equal up to the order of a sum; it prints the time of the whole product and of each
shard, and how many stored entries of S each shard holds.

Run: python bench/report_shards.py [--annotations 1000000] [--shards 4 16]
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from reports.build import ReportOptions, report_from_table  # noqa: E402
from reports.metrics import bootstrap  # noqa: E402


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_reports", Path(__file__).with_name("reports.py"))
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _shard_product(product: bootstrap._Product, lo: int, hi: int) -> bootstrap._Product:
    """The same product restricted to items lo..hi-1 (a worker's S: its items' rows only)."""
    part = object.__new__(bootstrap._Product)
    part.__dict__.update(product.__dict__)
    part.m32 = product.m32[:, lo:hi]
    part.m64 = product.m64[:, lo:hi]
    return part


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--annotations", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, nargs="+", default=[4, 16])
    args = parser.parse_args()
    bench = _bench_module()
    items = math.ceil(args.annotations / bench.PER_ITEM)
    table = bench.synthetic_table(items)
    held: dict[str, bootstrap._Product] = {}
    original_finish = bootstrap._Product.finish

    def keep(self: bootstrap._Product) -> None:  # the product the report runs, kept for the replay
        original_finish(self)
        held["product"] = self

    bootstrap._Product.finish = keep  # type: ignore[method-assign]
    t0 = time.perf_counter()
    report_from_table(table, ReportOptions(rounds=1000, seed=0, details=True))
    report_s = time.perf_counter() - t0
    product = held["product"]
    n = product.m32.shape[1]
    w = bootstrap.Resampler(n_units=n, rounds=50).weights(50, np.random.default_rng(0))
    t0 = time.perf_counter()
    whole = product.times(w)
    whole_s = time.perf_counter() - t0
    integer_cols = np.isin(product.expand, product.rows32)
    out = {"annotations": len(table), "items": n, "report_seconds": round(report_s, 2),
           "columns": int(product.width), "stored_entries": int(product.m32.nnz + product.m64.nnz),
           "chunk_rounds": 50, "whole_chunk_seconds": round(whole_s, 3), "shards": []}  # fmt: skip
    print(f"{len(table):,} annotations, {n:,} items: S has {out['columns']:,} columns, "
          f"{out['stored_entries']:,} stored entries; one chunk of 50 rounds {whole_s:.3f} s", flush=True)
    for k in args.shards:
        bounds = np.linspace(0, n, k + 1).astype(int)
        total = np.zeros_like(whole)
        times, entries = [], []
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            part = _shard_product(product, lo, hi)
            t0 = time.perf_counter()
            total += part.times(np.ascontiguousarray(w[:, lo:hi]))
            times.append(time.perf_counter() - t0)
            entries.append(int(part.m32.nnz + part.m64.nnz))
        exact = bool(np.array_equal(total[:, integer_cols], whole[:, integer_cols]))
        frac = ~integer_cols
        rel = float(np.nanmax(np.abs(total[:, frac] - whole[:, frac]) / np.maximum(np.abs(whole[:, frac]), 1e-300))) \
            if frac.any() else 0.0  # fmt: skip
        row = {"shards": k, "sum_of_shard_seconds": round(sum(times), 3), "largest_shard_seconds": round(max(times), 3),
               "largest_shard_entries": max(entries), "integer_columns_equal": exact,
               "fractional_max_relative_difference": rel}  # fmt: skip
        out["shards"].append(row)
        print(f"{k} shards: sum of shard products equals the whole on the integer columns: {exact}; "
              f"fractional columns within {rel:.1e} (relative); shard time sum {sum(times):.3f} s, "
              f"largest shard {max(times):.3f} s and {max(entries):,} entries", flush=True)
    out["load_average"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
