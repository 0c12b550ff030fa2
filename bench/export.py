"""Export benchmark: N pairs x 3 human preferences, helpsteer2-preference streamed to a file
versus built whole in memory (the naive way).

    python bench/export.py [--pairs 100000] [--rebuild] [--keep] [--traced]
    python bench/export.py --pairs 1000000     # the 1M figure

Database: its own PostgreSQL database `concordance_bench_export_<pairs>` on the server of
DATABASE_URL (default postgres://postgres@127.0.0.1:5432), created, migrated and filled by COPY
here, dropped at the end unless --keep (a kept one is reused; --rebuild refills it); set
BENCH_EXPORT_DATABASE_URL to point elsewhere. When no PostgreSQL answers, it falls back to
SQLite in a temporary folder.

Each measured run is its own child process, so one run's memory never shows in another's.
`peak_mb` and `baseline_peak_mb` are the peak RSS of the streaming and of the in-memory run;
the streaming one stays about the same whatever the number of pairs (one item batch), the
in-memory one grows with it. --traced adds a run of each under tracemalloc (the peak of Python
allocations; slower). The last line is one JSON object (BENCH.md).
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
DB_PREFIX = "concordance_bench_export"
WORDS = ("the answer model response clearly explains code example step result because however "
         "therefore python function value list error test data user prompt reason correct").split()


def _database_url(db_name: str, fresh: bool) -> str:
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
            if fresh:
                conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db_name,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{db_name}"')
        return f"{server}/{db_name}"
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
    """The bench's project: `pairs` items of two responses and one pair, three human
    preferences a pair. Written by COPY straight into the tables (ids allocated here, the
    sequences moved past them after), from pools of generated texts: building 1M pairs as ORM
    objects took longer than the export it is there to measure."""
    from django.core.management import call_command
    from django.db import connection

    from annotate.models import Item, Pair, Preference, Project, Rater, Response
    from annotate.services import project_create

    call_command("migrate", verbosity=0)
    existing = Project.objects.filter(name=PROJECT).first()
    if existing is not None and not rebuild and Pair.objects.filter(item__project=existing).count() == pairs:
        print(f"reusing {pairs} pairs in project {PROJECT!r}", file=sys.stderr)
        return
    if existing is not None:
        # A fresh database is much faster than deleting a million pairs row by row.
        raise SystemExit(f"project {PROJECT!r} exists with another size: run with --rebuild")
    if connection.vendor != "postgresql":
        _build_orm(pairs)
        return
    started = time.perf_counter()
    project = project_create(name=PROJECT)
    raters = [Rater.objects.get_or_create(kind="human", name=f"bench-h{i}")[0].pk for i in range(3)]
    rng = random.Random(0)
    prompts = [_text(rng, 25) for _ in range(4096)]
    answers = [_text(rng, 70) for _ in range(4096)]
    reasons = [_text(rng, 12) + " " + _text(rng, 20) for _ in range(4096)]
    with connection.cursor() as wrapper:
        cursor = wrapper.cursor
        bases = {}
        for model in (Item, Response, Pair, Preference):
            cursor.execute(f'SELECT COALESCE(MAX(id), 0) FROM "{model._meta.db_table}"')
            bases[model] = cursor.fetchone()[0]
        item0, resp0, pair0 = bases[Item], bases[Response], bases[Pair]
        with cursor.copy('COPY annotate_item (id, project_id, external_id, prompt, context, metadata, role, created_at) '
                         "FROM STDIN") as copy:
            for k in range(pairs):
                copy.write_row((item0 + k + 1, project.pk, f"i{k}", prompts[rng.randrange(4096)], "", "{}", "task", "now"))
        with cursor.copy("COPY annotate_response (id, item_id, external_id, text, model, created_at) FROM STDIN") as copy:
            for k in range(pairs):
                for j in (1, 2):
                    copy.write_row((resp0 + 2 * k + j, item0 + k + 1, f"r{j}", answers[rng.randrange(4096)], f"m{j}", "now"))
        with cursor.copy("COPY annotate_pair (id, item_id, response_a_id, response_b_id, created_at) FROM STDIN") as copy:
            for k in range(pairs):
                copy.write_row((pair0 + k + 1, item0 + k + 1, resp0 + 2 * k + 1, resp0 + 2 * k + 2, "now"))
        with cursor.copy("COPY annotate_preference (rater_id, rater_kind, pair_id, strength, shown_order, justification, "
                         "verdict_only, time_on_task_ms, created_at, updated_at) FROM STDIN") as copy:
            for k in range(pairs):
                for rater in raters:
                    copy.write_row((rater, "human", pair0 + k + 1, rng.randint(-3, 3), "ab", reasons[rng.randrange(4096)],
                                    False, rng.randint(5000, 90000), "now", "now"))
            print(f"\rbuilt {pairs} pairs", end="", file=sys.stderr)
        for model in (Item, Response, Pair):
            table = model._meta.db_table
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM \"{table}\"))")
        # What autovacuum would do a little later: plans on fresh tables use real row counts.
        cursor.execute("ANALYZE")
    print(f"\nbuilt in {time.perf_counter() - started:.1f}s (COPY)", file=sys.stderr)


def _build_orm(pairs: int) -> None:
    """SQLite (no PostgreSQL here): the same project through bulk_create."""
    from annotate.models import Item, Pair, Preference, Rater, Response
    from annotate.services import project_create

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


def run_streaming(out: Path) -> int:
    from annotate.models import Project
    from exports.services import ExportOptions, export_write

    result = export_write(project=Project.objects.get(name=PROJECT), options=ExportOptions("helpsteer2-preference"), out=out)
    return next(iter(result.rows.values()))


def run_in_memory(out: Path, limit: int | None = None) -> int:
    """The naive way: load every pair and preference, build every row, join one string, write.
    limit: only the first `limit` items' pairs (the baseline on a subsample)."""
    from collections import defaultdict

    from annotate.models import Pair, Preference, Project
    from exports.aggregate import Vote
    from exports.formats import helpsteer2_preference_rows, jsonl_line
    from exports.selectors import ExportFilters, ItemRow, PairRecord

    project = Project.objects.get(name=PROJECT)
    scope: dict = {}
    if limit is not None:
        ids = project.items.order_by("id").values_list("id", flat=True)
        last = ids[limit - 1] if ids.count() > limit else None
        if last is not None:
            scope = {"item_id__lte": last}
    pairs = list(Pair.objects.filter(item__project=project, **scope).order_by("item_id", "id").values(
        "id", "item__external_id", "item__prompt", "item__role", "response_a__text", "response_b__text"))
    votes: dict[int, list[Vote]] = defaultdict(list)
    pair_scope = {"pair__" + k: v for k, v in scope.items()}
    for p in Preference.objects.filter(pair__item__project=project, rater_kind="human", **pair_scope).order_by("id").values(
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


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


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


def child(mode: str, traced: bool, url: str, limit: int | None = None) -> None:
    import hashlib

    _setup_django(url)
    from annotate.models import Project

    Project.objects.filter(name=PROJECT).exists()  # the connection opened before the peak is counted
    out = Path(tempfile.mkdtemp(prefix="bench-export-")) / "pref.jsonl"
    rss_before = _rss_mb("VmRSS")
    if traced:
        tracemalloc.start()
    cpu = time.process_time()
    started = time.perf_counter()
    rows = run_streaming(out) if mode == "stream" else run_in_memory(out, limit)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    peak = tracemalloc.get_traced_memory()[1] if traced else 0
    rss = _peak_rss_mb()
    digest = hashlib.sha256()
    with out.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    print(json.dumps({
        "mode": mode, "rows": rows, "seconds": seconds, "cpu_seconds": cpu, "traced_peak_mb": peak / 2**20,
        "rss_mb": rss, "rss_before_mb": rss_before, "bytes": out.stat().st_size, "sha256": digest.hexdigest(),
    }))
    out.unlink()


def _measure(mode: str, traced: bool, url: str, limit: int | None = None) -> dict:
    answer = subprocess.run(
        [sys.executable, __file__, "--child", mode, *(["--trace"] if traced else []), "--url", url,
         *(["--limit", str(limit)] if limit is not None else [])],
        check=True, capture_output=True, text=True, cwd=ROOT,
    )
    return json.loads(answer.stdout.strip().splitlines()[-1])


def _drop(url: str, db_name: str) -> None:
    if not url.endswith("/" + db_name):
        return  # SQLite, or a database named by BENCH_EXPORT_DATABASE_URL: not ours to drop
    import psycopg

    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
    print(f"dropped database {db_name}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the database for the next run")
    parser.add_argument("--traced", action="store_true", help="also measure the peak of Python allocations")
    parser.add_argument("--child", choices=["stream", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--baseline-pairs", type=int, default=100_000,
                        help="pairs the in-memory baseline builds (its memory grows with them: 1M would need some 14 GB)")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.trace, args.url, args.limit)
        return
    limit = args.baseline_pairs if args.baseline_pairs < args.pairs else None
    db_name = f"{DB_PREFIX}_{args.pairs}"
    url = _database_url(db_name, fresh=args.rebuild)
    print(f"database: {url}", file=sys.stderr)
    try:
        _setup_django(url)
        build(args.pairs, args.rebuild)
        from django.db import connections

        connections.close_all()
        stream = _measure("stream", False, url)
        memory = _measure("memory", False, url, limit)
        traced = {mode: _measure(mode, True, url, limit) for mode in ("stream", "memory")} if args.traced else {}
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            _drop(url, db_name)
    load = os.getloadavg()
    rows_per_s = stream["rows"] / stream["seconds"]
    baseline_rows_per_s = memory["rows"] / memory["seconds"]
    print(f"helpsteer2-preference, {args.pairs} pairs x 3 human preferences, {stream['bytes'] / 2**20:.0f} MiB of JSONL; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for name, run in (("streaming", stream), (f"in memory ({memory['rows']} pairs)", memory)):
        print(f"  {name}: {run['seconds']:.1f}s ({run['cpu_seconds']:.1f}s CPU), {run['rows'] / run['seconds']:,.0f} rows/s, "
              f"peak RSS {run['rss_mb']:.0f} MiB ({run['rss_before_mb']:.0f} MiB before the export)"
              + (f", peak Python allocations {traced[run['mode']]['traced_peak_mb']:.1f} MiB" if traced else ""))
    same = stream["sha256"] == memory["sha256"] if limit is None else None
    print(f"  the two files are {'byte-identical' if same else 'DIFFERENT'}" if limit is None
          else f"  the baseline built {memory['rows']} of the {stream['rows']} rows (--baseline-pairs): files not compared")
    line = {
        "pairs": args.pairs,
        "rows_per_s": round(rows_per_s, 1),
        "peak_mb": round(stream["rss_mb"], 1),
        "baseline_peak_mb": round(memory["rss_mb"], 1),
        "baseline_rows_per_s": round(baseline_rows_per_s, 1),
        "baseline_pairs": memory["rows"],
        "seconds": round(stream["seconds"], 2),
        "cpu_seconds": round(stream["cpu_seconds"], 2),
        "memory_ratio": round(memory["rss_mb"] / max(stream["rss_mb"], 1e-9), 1),
        "identical_output": same,
        "load_average": round(load[0], 2),
    }
    if traced:
        line["traced_peak_mb"] = round(traced["stream"]["traced_peak_mb"], 1)
        line["baseline_traced_peak_mb"] = round(traced["memory"]["traced_peak_mb"], 1)
    print(json.dumps(line))


if __name__ == "__main__":
    main()
