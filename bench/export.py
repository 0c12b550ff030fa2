"""Export benchmark: 100k pairs x 3 human preferences, helpsteer2-preference streamed to a file
versus built whole in memory.

    python bench/export.py [--pairs 100000] [--rebuild]

Database: its own PostgreSQL database `concordance_bench_export` on the server of DATABASE_URL
(default postgres://postgres@127.0.0.1:5432), created and migrated here and kept between runs
(--rebuild refills it); set BENCH_EXPORT_DATABASE_URL to point elsewhere. When no PostgreSQL
answers, it falls back to SQLite in a temporary folder.

Each measured run is its own child process, so one run's memory never shows in another's:
a timed run (no tracing) for rows/s and peak RSS, and a traced run for the peak of Python
allocations (tracemalloc) during the export, which is what `peak_mb` reports. The last line is
one JSON object (BENCH.md).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROJECT = "bench-export"
DB_NAME = "concordance_bench_export"
WORDS = ("the answer model response clearly explains code example step result because however "
         "therefore python function value list error test data user prompt reason correct").split()


def _database_url() -> str:
    explicit = os.environ.get("BENCH_EXPORT_DATABASE_URL")
    if explicit:
        return explicit
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/concordance")
    if not base.startswith("postgres"):
        return base
    server = base.rsplit("/", 1)[0]
    try:
        import psycopg

        with psycopg.connect(server + "/postgres", autocommit=True, connect_timeout=3) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DB_NAME}"')
        return f"{server}/{DB_NAME}"
    except Exception as exc:  # noqa: BLE001 - no server: fall back, and say so
        folder = Path(tempfile.gettempdir()) / "concordance_bench_export"
        folder.mkdir(exist_ok=True)
        print(f"PostgreSQL not reachable ({exc.__class__.__name__}); using SQLite in {folder}", file=sys.stderr)
        return f"sqlite:///{folder / 'bench.sqlite3'}"


def _setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("CONCORDANCE_VAR_DIR", str(Path(tempfile.gettempdir()) / "concordance_bench_export_var"))
    import django

    django.setup()


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choices(WORDS, k=words)).capitalize() + "."


def build(pairs: int, rebuild: bool) -> None:
    from django.core.management import call_command

    from annotate.models import Item, Pair, Preference, Project, Rater, Response
    from annotate.services import project_create

    call_command("migrate", verbosity=0)
    existing = Project.objects.filter(name=PROJECT).first()
    if existing is not None and not rebuild and Pair.objects.filter(item__project=existing).count() == pairs:
        print(f"reusing {pairs} pairs in project {PROJECT!r}", file=sys.stderr)
        return
    if existing is not None:
        existing.delete()
    started = time.perf_counter()
    project = project_create(name=PROJECT)
    raters = [Rater.objects.get_or_create(kind="human", name=f"bench-h{i}")[0] for i in range(3)]
    rng = random.Random(0)
    batch = 5000
    for start in range(0, pairs, batch):
        n = min(batch, pairs - start)
        items = Item.objects.bulk_create(
            [Item(project=project, external_id=f"i{start + k}", prompt=_text(rng, 25)) for k in range(n)]
        )
        responses = Response.objects.bulk_create(
            [Response(item=it, external_id=f"r{j}", text=_text(rng, 70), model=f"m{j}") for it in items for j in (1, 2)]
        )
        pair_rows = Pair.objects.bulk_create(
            [Pair(item=it, response_a=responses[2 * k], response_b=responses[2 * k + 1]) for k, it in enumerate(items)]
        )
        Preference.objects.bulk_create(
            [
                Preference(rater=r, rater_kind="human", pair=p, strength=rng.randint(-3, 3),
                           justification=_text(rng, 12) + " " + _text(rng, 20), time_on_task_ms=rng.randint(5000, 90000))
                for p in pair_rows for r in raters
            ]
        )
        print(f"\rbuilt {start + n}/{pairs} pairs", end="", file=sys.stderr)
    from django.db import connection

    if connection.vendor == "postgresql":
        # What autovacuum would do a little later: plans on fresh tables use real row counts.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    print(f"\nbuilt in {time.perf_counter() - started:.1f}s", file=sys.stderr)


def run_streaming(out: Path) -> int:
    from annotate.models import Project
    from exports.services import ExportOptions, export_write

    result = export_write(project=Project.objects.get(name=PROJECT), options=ExportOptions("helpsteer2-preference"), out=out)
    return next(iter(result.rows.values()))


def run_in_memory(out: Path) -> int:
    """The naive way: load every pair and preference, build every row, join one string, write."""
    from collections import defaultdict

    from annotate.models import Pair, Preference, Project
    from exports.aggregate import Vote
    from exports.formats import helpsteer2_preference_rows, jsonl_line
    from exports.selectors import ExportFilters, ItemRow, PairRecord

    project = Project.objects.get(name=PROJECT)
    pairs = list(Pair.objects.filter(item__project=project).order_by("item_id", "id").values(
        "id", "item__external_id", "item__prompt", "item__role", "response_a__text", "response_b__text"))
    votes: dict[int, list[Vote]] = defaultdict(list)
    for p in Preference.objects.filter(pair__item__project=project, rater_kind="human").order_by("id").values(
            "pair_id", "strength", "justification", "rater__name"):
        votes[p["pair_id"]].append(Vote(p["strength"], p["justification"], p["rater__name"]))
    records = [
        PairRecord(
            item=ItemRow(0, p["item__external_id"], p["item__prompt"], p["item__role"], "train"), id=p["id"],
            response_1=p["response_a__text"], response_2=p["response_b__text"], response_1_id="", response_2_id="",
            model_1="", model_2="", votes=votes[p["id"]], kinds=["human"] * len(votes[p["id"]]),
        )
        for p in pairs
    ]
    rows = list(helpsteer2_preference_rows(records, ExportFilters()))
    out.write_text("".join(jsonl_line(r) for r in rows), encoding="utf-8")
    return len(rows)


def _peak_rss_mb() -> float:
    """This process's own high-water RSS. Not getrusage's ru_maxrss: Linux carries that over
    from the parent across exec, so a child would report the orchestrator's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str, traced: bool, url: str) -> None:
    _setup_django(url)
    out = Path(tempfile.mkdtemp(prefix="bench-export-")) / "pref.jsonl"
    run = run_streaming if mode == "stream" else run_in_memory
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    rows = run(out)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if traced else 0
    print(json.dumps({
        "rows": rows, "seconds": seconds, "traced_peak_mb": peak / 2**20,
        "rss_mb": _peak_rss_mb(), "bytes": out.stat().st_size,
    }))
    out.unlink()


def _measure(mode: str, traced: bool, url: str) -> dict:
    answer = subprocess.run(
        [sys.executable, __file__, "--child", mode, *(["--traced"] if traced else []), "--url", url],
        check=True, capture_output=True, text=True, cwd=ROOT,
    )
    return json.loads(answer.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--child", choices=["stream", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.traced, args.url)
        return
    url = _database_url()
    print(f"database: {url}", file=sys.stderr)
    _setup_django(url)
    build(args.pairs, args.rebuild)
    from django.db import connections

    connections.close_all()
    stream = _measure("stream", False, url)
    memory = _measure("memory", False, url)
    stream_traced = _measure("stream", True, url)
    memory_traced = _measure("memory", True, url)
    rows_per_s = stream["rows"] / stream["seconds"]
    baseline_rows_per_s = memory["rows"] / memory["seconds"]
    print(f"helpsteer2-preference, {args.pairs} pairs x 3 human preferences, {stream['bytes'] / 2**20:.0f} MiB of JSONL")
    print(f"  streaming: {stream['seconds']:.1f}s, {rows_per_s:,.0f} rows/s, peak Python allocations "
          f"{stream_traced['traced_peak_mb']:.1f} MiB, peak RSS {stream['rss_mb']:.0f} MiB")
    print(f"  in memory: {memory['seconds']:.1f}s, {baseline_rows_per_s:,.0f} rows/s, peak Python allocations "
          f"{memory_traced['traced_peak_mb']:.1f} MiB, peak RSS {memory['rss_mb']:.0f} MiB")
    print(json.dumps({
        "pairs": args.pairs,
        "rows_per_s": round(rows_per_s, 1),
        "peak_mb": round(stream_traced["traced_peak_mb"], 1),
        "baseline_peak_mb": round(memory_traced["traced_peak_mb"], 1),
        "baseline_rows_per_s": round(baseline_rows_per_s, 1),
        "rss_mb": round(stream["rss_mb"], 1),
        "baseline_rss_mb": round(memory["rss_mb"], 1),
        "memory_ratio": round(memory_traced["traced_peak_mb"] / max(stream_traced["traced_peak_mb"], 1e-9), 1),
    }))


if __name__ == "__main__":
    main()
