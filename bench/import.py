"""Import speed and memory: N pairs (JSONL, 2 responses + 1 pair + 3 human preferences an item)
through the real import path (streamed in batches, one transaction), against a row-by-row ORM
baseline on a subsample, extrapolated as rows/s (rows/s compared).

    python bench/import.py [--pairs 100000] [--baseline-pairs 2000] [--reimport]
    python bench/import.py --pairs 1000000      # the 1M figure (a few minutes more)

Database: its own PostgreSQL database (`--db`, default concordance_bench_import), created
fresh here and dropped at the end. `peak_mb` is the importing process's peak RSS during the
import (its high-water mark reset just before), `rss_before_mb` what the process held before
(Django, the models): the import's own memory is the difference, and it stays about the same
whatever the file's size (a batch of 5,000 items and 25 bytes per item id seen).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._django import drop, setup  # noqa: E402

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


def _rss_mb(field: str) -> float:
    """VmHWM (peak) or VmRSS (now) of this process, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    """Start the peak RSS afresh (Linux: writing 5 to clear_refs resets VmHWM), so it measures
    the import and not what ran before it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        print("could not reset the peak RSS: peak_mb includes what ran before the import", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--baseline-pairs", type=int, default=2_000)
    parser.add_argument("--reimport", action=argparse.BooleanOptionalAction, default=None,
                        help="import the same file again (nothing new is created); default: up to 200k pairs")
    parser.add_argument("--db", default="concordance_bench_import")
    args = parser.parse_args()
    reimport = args.reimport if args.reimport is not None else args.pairs <= 200_000
    setup(args.db)
    from django.conf import settings

    from annotate.importers import import_files

    # As in production: with DEBUG on (the default without a secret key) Django keeps the SQL
    # of the last 9,000 queries, tens of MB at 1M pairs, which is the bench's memory, not the
    # import's.
    settings.DEBUG = False

    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "pairs.jsonl"
            write_file(path, args.pairs)
            print(f"file: {path.stat().st_size / 1e6:.1f} MB, {args.pairs} pairs", flush=True)
            rss_before = _rss_mb("VmRSS")
            _reset_peak()
            cpu = time.process_time()
            start = time.perf_counter()
            result = import_files(project_name="bench-import", fmt="jsonl", paths=[path])
            seconds = time.perf_counter() - start
            cpu = time.process_time() - cpu
            peak_mb = _rss_mb("VmHWM")
            rows = sum(result.counts.values())
            load = os.getloadavg()
            print(f"import: {rows} rows in {seconds:.1f} s ({rows / seconds:,.0f} rows/s, {cpu:.1f} s CPU in this process); "
                  f"created {result.counts}; peak RSS {peak_mb:.0f} MB ({rss_before:.0f} MB before the import); "
                  f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
            if reimport:
                start = time.perf_counter()
                again = import_files(project_name="bench-import", fmt="jsonl", paths=[path])
                print(f"re-import of the same file: {time.perf_counter() - start:.1f} s, created {again.counts}", flush=True)
        base = baseline(args.baseline_pairs)
        print(f"baseline (row-by-row ORM saves on {args.baseline_pairs} pairs, rows/s extrapolated to any size): "
              f"{base:,.0f} rows/s", flush=True)
    finally:
        drop(args.db)
        print(f"dropped database {args.db}", flush=True)
    print(json.dumps({"rows": rows, "rows_per_s": round(rows / seconds, 1), "baseline_rows_per_s": round(base, 1),
                      "ratio": round(rows / seconds / base, 2), "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
                      "peak_mb": round(peak_mb, 1), "rss_before_mb": round(rss_before, 1), "pairs": args.pairs,
                      "load_average": round(load[0], 2)}))


if __name__ == "__main__":
    main()
