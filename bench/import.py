"""Import speed: N pairs (JSONL, 2 responses + 1 pair + 3 human preferences an item) through
the real import path, against a row-by-row ORM baseline on a subsample (rows/s compared).

    python bench/import.py [--pairs 100000] [--baseline-pairs 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._django import setup  # noqa: E402

ROWS_PER_ITEM = 1 + 2 + 1 + 3  # item, two responses, pair, three preferences


def write_file(path: Path, pairs: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with path.open("w") as fh:
        fh.write(json.dumps({"raters": [{"name": f"bench-h{k}", "kind": "human"} for k in range(3)]}) + "\n")
        for i in range(pairs):
            row = {
                "id": f"q{i}", "prompt": f"Question number {i}: explain something.",
                "responses": [
                    {"id": "a", "model": "model-a", "text": "Answer A " * rng.randint(5, 40)},
                    {"id": "b", "model": "model-b", "text": "Answer B " * rng.randint(5, 40)},
                ],
                "preferences": [
                    {"rater": f"human:bench-h{k}", "pair": ["a", "b"], "strength": rng.randint(-3, 3)} for k in range(3)
                ],
            }
            fh.write(json.dumps(row) + "\n")


def baseline(pairs: int) -> float:
    """The naive way: one ORM save per row, as a hand-written loader would do it."""
    from django.db import transaction

    from annotate.models import Item, Pair, Preference, Rater, Response
    from annotate.services import project_create

    rng = random.Random(1)
    project = project_create(name="bench-baseline")
    raters = [Rater.objects.get_or_create(kind="human", name=f"bench-h{k}")[0] for k in range(3)]
    start = time.perf_counter()
    with transaction.atomic():
        for i in range(pairs):
            item = Item.objects.create(project=project, external_id=f"q{i}", prompt=f"Question {i}")
            a = Response.objects.create(item=item, external_id="a", text="A " * rng.randint(5, 40), model="model-a")
            b = Response.objects.create(item=item, external_id="b", text="B " * rng.randint(5, 40), model="model-b")
            pair = Pair.objects.create(item=item, response_a=a, response_b=b)
            for rater in raters:
                Preference.objects.create(rater=rater, rater_kind="human", pair=pair, strength=rng.randint(-3, 3))
    return pairs * ROWS_PER_ITEM / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--baseline-pairs", type=int, default=2_000)
    args = parser.parse_args()
    setup("concordance_bench_import")
    from annotate.importers import import_files

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pairs.jsonl"
        write_file(path, args.pairs)
        print(f"file: {path.stat().st_size / 1e6:.1f} MB, {args.pairs} pairs", flush=True)
        start = time.perf_counter()
        result = import_files(project_name="bench-import", fmt="jsonl", paths=[path])
        seconds = time.perf_counter() - start
        rows = sum(result.counts.values())
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        load = os.getloadavg()
        print(f"import: {rows} rows in {seconds:.1f} s ({rows / seconds:,.0f} rows/s); created {result.counts}; "
              f"process max RSS {peak_mb:.0f} MB; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
        start = time.perf_counter()
        again = import_files(project_name="bench-import", fmt="jsonl", paths=[path])
        print(f"re-import of the same file: {time.perf_counter() - start:.1f} s, created {again.counts}", flush=True)
    base = baseline(args.baseline_pairs)
    print(f"baseline (row-by-row ORM, {args.baseline_pairs} pairs): {base:,.0f} rows/s", flush=True)
    print(json.dumps({"rows": rows, "rows_per_s": round(rows / seconds, 1), "baseline_rows_per_s": round(base, 1),
                      "ratio": round(rows / seconds / base, 2), "seconds": round(seconds, 2),
                      "peak_mb": round(peak_mb, 1), "load_average": round(load[0], 2)}))


if __name__ == "__main__":
    main()
