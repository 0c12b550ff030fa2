"""Load on the annotator queue: N concurrent annotators against gunicorn + PostgreSQL.

    python bench/annotate_load.py [--annotators 50] [--seconds 40] [--think-ms 1000]

Creates its own database (`concordance_bench_load`, dropped and re-made each run) on the
PostgreSQL at $BENCH_PG (default postgres://postgres@127.0.0.1:5432), migrates it, makes a
project with users and API tokens, starts gunicorn on a free port, and drives each annotator
as a thread with its own keep-alive connection through the REST queue: next task, think,
submit; a few submits are replayed on purpose (a double click), which must store nothing new.
Each annotator thinks `--think-ms` (uniform 0.5x-1.5x) between requests, 1 s by default: a
task every ~2 s per annotator, where a person takes 10-60 s, so the load is well above what 50
people make. Lower it (250, 0) for a stress or saturation run (throughput, not latency).
Server threads are warmed up untimed first, and annotators arrive within one think time.

Afterwards the database is checked: every acknowledged submit must have its rows (lost), no
task or submit may have more rows than it should (duplicated), and no task may have more done
annotations than the overlap (overlap_exceeded). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
DB_NAME = "concordance_bench_load"
ATTRIBUTES = ["helpfulness", "correctness", "coherence", "complexity", "verbosity"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotators", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=40.0, help="stop claiming after this long")
    parser.add_argument("--think-ms", type=float, default=1000.0)
    parser.add_argument("--items", type=int, default=400, help="items of 3 responses and 3 pairs each")
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker")
    parser.add_argument("--replay-rate", type=float, default=0.05)
    return parser.parse_args()


def pg_url(db: str) -> str:
    return f"{os.environ.get('BENCH_PG', 'postgres://postgres@127.0.0.1:5432').rstrip('/')}/{db}"


def recreate_database(db: str = DB_NAME) -> None:
    import psycopg

    with psycopg.connect(pg_url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db}"')


def prepare_database(db: str = DB_NAME) -> None:
    """A fresh, migrated database and the static manifest (DEBUG is off, as in production)."""
    recreate_database(db)
    migrate = subprocess.run([str(VENV_BIN / "python"), "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=django_env(db))
    if migrate.returncode:
        raise SystemExit("migrate failed")
    # DEBUG is off, as in production: pages need the hashed static manifest.
    subprocess.run([str(VENV_BIN / "python"), "manage.py", "collectstatic", "--noinput", "-v", "0"],
                   cwd=ROOT, env=django_env(db), check=True)


def django_env(db: str = DB_NAME) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": pg_url(db),
            "DATABASE_CONN_MAX_AGE": "60",
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": "bench-only-secret-key-" + "x" * 40,
            "DJANGO_SECURE_SSL_REDIRECT": "0",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_LOG_LEVEL": "WARNING",
            "CONCORDANCE_VAR_DIR": f"/tmp/{db}",
            "DJANGO_SETTINGS_MODULE": "config.settings",
        }
    )
    return env


def setup_data(args: argparse.Namespace, db: str = DB_NAME) -> tuple[int, dict[str, str]]:
    """Project, items and annotators with API tokens, written in bulk."""
    os.environ.update(django_env(db))
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from annotate.models import Item, Pair, Response
    from annotate.roles import user_set_role
    from annotate.services import project_create

    project = project_create(name="Load bench", overlap=args.overlap, gold_rate=0.05)
    items = Item.objects.bulk_create(
        [
            Item(project=project, external_id=f"i{n}", prompt=f"Question {n}: explain **recursion** briefly.",
                 role=Item.Role.GOLD if n % 25 == 0 else Item.Role.TASK)
            for n in range(args.items)
        ]
    )
    text = "Recursion is when a function calls itself.\n\n```python\ndef f(n):\n    return 1 if n < 2 else n * f(n - 1)\n```\n"
    responses = Response.objects.bulk_create(
        [
            Response(item=item, external_id=f"r{k}", text=text * (k + 1), model=f"model-{k}",
                     gold_ratings={"helpfulness": 3} if item.role == Item.Role.GOLD else None)
            for item in items
            for k in range(3)
        ]
    )
    by_item: dict[int, list] = defaultdict(list)
    for response in responses:
        by_item[response.item_id].append(response)
    Pair.objects.bulk_create(
        [
            Pair(item_id=item_id, response_a=rs[i], response_b=rs[j],
                 gold_strength=-2 if rs[i].gold_ratings else None)
            for item_id, rs in by_item.items()
            for i in range(3)
            for j in range(i + 1, 3)
        ]
    )
    User = get_user_model()
    tokens: dict[str, str] = {}
    for n in range(args.annotators):
        user = User.objects.create_user(username=f"load{n}", password=None)
        user_set_role(user=user, role="annotator")
        project.members.add(user)
        tokens[user.username] = Token.objects.create(user=user).key
    from django.db import connection, connections

    with connection.cursor() as cursor:
        # Fresh statistics after the bulk load, as autovacuum would have them on a live system.
        cursor.execute("ANALYZE")
    connections.close_all()
    return project.pk, tokens


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(args: argparse.Namespace, port: int, db: str = DB_NAME) -> subprocess.Popen:
    cmd = [
        str(VENV_BIN / "gunicorn"), "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
        "--workers", str(args.workers), "--threads", str(args.threads), "--worker-class", "gthread",
        "--keep-alive", "30", "--log-level", "warning",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=django_env(db), start_new_session=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/accounts/login/")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("gunicorn did not start within 30 s")


class Annotator(threading.Thread):
    def __init__(self, *, name: str, token: str, port: int, project_id: int, args: argparse.Namespace,
                 stop_at: float, seed: int) -> None:
        super().__init__(daemon=True)
        self.token, self.port, self.project_id, self.args, self.stop_at = token, port, project_id, args, stop_at
        self.rng = random.Random(seed)
        self.name = name
        self.latencies: dict[str, list[float]] = {"next": [], "submit": []}
        self.acknowledged: list[tuple[str, int | None, str]] = []  # (protocol, rating-response id, view key)
        self.errors: Counter = Counter()
        self.replays_stored = 0
        self.timeline: list[tuple[float, str, float]] = []
        self.conn: http.client.HTTPConnection | None = None

    def call(self, kind: str, path: str, body: dict) -> tuple[int, dict]:
        payload = json.dumps(body)
        headers = {"Authorization": f"Token {self.token}", "Content-Type": "application/json"}
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            started = time.perf_counter()
            try:
                self.conn.request("POST", path, payload, headers)
                response = self.conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.connection_error(kind or "replay", exc)
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
                continue
            if kind:
                self.latencies[kind].append((time.perf_counter() - started) * 1000)
                self.timeline.append((started, kind, (time.perf_counter() - started) * 1000))
            return response.status, (json.loads(data) if data else {})
        raise RuntimeError("unreachable")

    def connection_error(self, kind: str, exc: Exception) -> None:
        """Called on every failed attempt (the first is retried once on a new connection); a hook
        for subclasses, nothing here."""

    def think(self) -> None:
        if self.args.think_ms > 0:
            time.sleep(self.args.think_ms * self.rng.uniform(0.5, 1.5) / 1000)

    def run(self) -> None:
        try:
            # People do not all press "start" in the same millisecond: arrive within one think time.
            time.sleep(self.rng.uniform(0, self.args.think_ms) / 1000)
            while time.time() < self.stop_at:
                status, body = self.call("next", f"/api/projects/{self.project_id}/queue/next/", {})
                if status != 200:
                    self.errors[f"next {status}"] += 1
                    continue
                task = body["task"]
                if task is None:
                    break
                self.think()
                if task["protocol"] == "rating":
                    submit = {"view_key": task["view_key"], "values": {a: self.rng.randint(0, 4) for a in ATTRIBUTES}}
                    rid = task["response"]["id"]
                else:
                    submit = {"view_key": task["view_key"], "shown_strength": self.rng.randint(-2, 2)}
                    rid = None
                status, body = self.call("submit", "/api/queue/submit/", submit)
                if status == 201:
                    self.acknowledged.append((task["protocol"], rid, task["view_key"]))
                else:
                    self.errors[f"submit {status}"] += 1
                if self.rng.random() < self.args.replay_rate:
                    status, body = self.call("", "/api/queue/submit/", submit)
                    if status != 200 or not body.get("duplicate"):
                        self.replays_stored += 1
                self.think()
        except Exception as exc:  # counted, never hidden
            self.errors[type(exc).__name__] += 1
        finally:
            if self.conn is not None:
                self.conn.close()


def warm_up(port: int, project_id: int, requests: int) -> None:
    """Untimed requests through every server thread first: imports, URL resolver and one
    persistent database connection per thread are set up before the clock starts."""

    def hit() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(3):
            conn.request("POST", f"/api/projects/{project_id}/queue/next/", "{}",
                         {"Authorization": "Token warmup-none", "Content-Type": "application/json"})
            conn.getresponse().read()
        conn.close()

    threads = [threading.Thread(target=hit) for _ in range(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def verify(project_id: int, annotators: list[Annotator], overlap: int) -> dict[str, int]:
    """Compare what the server acknowledged with what the database holds."""
    from django.db.models import Count

    from annotate.models import Assignment, Preference, Rating

    done = Assignment.objects.filter(project_id=project_id, status="done")
    done_keys = set(str(k) for k in done.values_list("view_key", flat=True))
    acknowledged = [ack for a in annotators for ack in a.acknowledged]
    lost = sum(1 for _, _, key in acknowledged if key not in done_keys)
    ratings = Rating.objects.filter(response__item__project_id=project_id).count()
    preferences = Preference.objects.filter(pair__item__project_id=project_id).count()
    ack_ratings = sum(1 for p, _, _ in acknowledged if p == "rating")
    ack_rankings = len(acknowledged) - ack_ratings
    # Rows beyond one annotation per acknowledged submit, plus replays that were stored again.
    duplicated = max(0, ratings - ack_ratings * len(ATTRIBUTES)) + max(0, preferences - ack_rankings)
    duplicated += sum(a.replays_stored for a in annotators)
    lost += max(0, ack_ratings * len(ATTRIBUTES) - ratings) // len(ATTRIBUTES) + max(0, ack_rankings - preferences)
    over = 0
    regular = done.filter(**{"response__item__role": "task"}) | done.filter(**{"pair__item__role": "task"})
    for field in ("response", "pair"):
        over += (
            regular.exclude(**{f"{field}__isnull": True}).values(field).annotate(n=Count("pk")).filter(n__gt=overlap).count()
        )
    return {"lost": lost, "duplicated": duplicated, "overlap_exceeded": over, "done_in_db": len(done_keys)}


def main() -> None:
    args = parse_args()
    print(f"PostgreSQL: (re)creating database {DB_NAME} at {pg_url('')}")
    prepare_database()
    project_id, tokens = setup_data(args)
    port = free_port()
    print(f"gunicorn: {args.workers} workers x {args.threads} threads on 127.0.0.1:{port} (started by this script)")
    server = start_gunicorn(args, port)
    try:
        warm_up(port, project_id, args.workers * args.threads)
        stop_at = time.time() + args.seconds
        annotators = [
            Annotator(name=name, token=token, port=port, project_id=project_id, args=args, stop_at=stop_at, seed=n)
            for n, (name, token) in enumerate(tokens.items())
        ]
        started = time.perf_counter()
        for a in annotators:
            a.start()
        for a in annotators:
            a.join(timeout=args.seconds + 120)
        elapsed = time.perf_counter() - started
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    checks = verify(project_id, annotators, args.overlap)
    if os.environ.get("BENCH_TIMELINE"):
        slow = sorted((t - started, k, ms) for a in annotators for t, k, ms in a.timeline if ms > 300)
        print("slow requests (offset s, kind, ms):", [(round(o, 1), k, round(ms)) for o, k, ms in slow[:40]])
    next_ms = [x for a in annotators for x in a.latencies["next"]]
    submit_ms = [x for a in annotators for x in a.latencies["submit"]]
    errors = sum(sum(a.errors.values()) for a in annotators)
    rps = (len(next_ms) + len(submit_ms)) / elapsed if elapsed else 0.0
    print(f"\n{args.annotators} annotators, think time {args.think_ms:.0f} ms, {elapsed:.1f} s, "
          f"{len(next_ms) + len(submit_ms)} timed requests, {rps:.1f} requests/s, errors {errors}")
    for label, values in (("next-task", next_ms), ("submit", submit_ms)):
        print(f"  {label:<10} n={len(values):<6} p50={percentile(values, 50):6.1f} ms  p95={percentile(values, 95):6.1f} ms  "
              f"p99={percentile(values, 99):6.1f} ms  mean={statistics.fmean(values) if values else 0:6.1f} ms")
    print(f"  done in database: {checks['done_in_db']}; lost {checks['lost']}, duplicated {checks['duplicated']}, "
          f"overlap exceeded {checks['overlap_exceeded']}")
    if errors:
        print("  errors:", dict(sum((a.errors for a in annotators), Counter())))
    result = {
        "annotators": args.annotators,
        "think_ms": args.think_ms,
        "seconds": round(elapsed, 1),
        "requests": len(next_ms) + len(submit_ms),
        "requests_per_s": round(rps, 1),
        "p50_ms": round(max(percentile(next_ms, 50), percentile(submit_ms, 50)), 1),
        "p95_ms": round(max(percentile(next_ms, 95), percentile(submit_ms, 95)), 1),
        "p99_ms": round(max(percentile(next_ms, 99), percentile(submit_ms, 99)), 1),
        "next_p95_ms": round(percentile(next_ms, 95), 1),
        "submit_p95_ms": round(percentile(submit_ms, 95), 1),
        "errors": errors,
        "lost": checks["lost"],
        "duplicated": checks["duplicated"],
        "overlap_exceeded": checks["overlap_exceeded"],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
