"""Soak and failure run of the annotator queue: minutes of load, a killed worker, abandoned claims.

    python bench/soak.py [--annotators 50] [--seconds 180] [--claim-seconds 20] [--kill-at 0.4]

Built on bench/annotate_load.py (same database set-up, data, gunicorn, annotator client and
database checks), in its own database `concordance_bench_soak` (dropped and re-made each run)
on the PostgreSQL at $BENCH_PG (default postgres://postgres@127.0.0.1:5432), with gunicorn on a
free 127.0.0.1 port, started and stopped by this script. What it adds:

- Mixed think times: each annotator has their own pace (median `--think-ms` x e^U(-0.9, 0.9),
  about 0.6-3.7 s), each task a log-normal draw around it (rankings read 1.5x longer), and now
  and then a 5-20 s distraction. People take 10-60 s a task, so 50 of these are the load of
  several hundred people.
- Abandoned claims: the project's claim time is cut to `--claim-seconds` (20 s), and with
  `--abandon-rate` per task an annotator walks away from a claimed task for longer than that.
  The claim expires and the task goes back to the pool; on return the annotator either submits
  the old task late (stored if the task still has room, else a 409 "timed out", an expected
  answer, as for a slow annotator's submit after the claim time) or asks for the next one. The database check counts abandoned tasks that another
  annotator claimed after the expiry.
- A killed worker: at `--kill-at` of the run one gunicorn worker gets SIGKILL; the master starts
  a new one. Requests cut off by it are errors (counted by kind) and retried on a new connection
  with backoff; submits are retried with the same view key, so a submit stored just before the
  kill comes back as "duplicate" and counts as acknowledged once.
- Annotators keep going after errors until the deadline (bounded loops; all threads are joined
  with a timeout).

At the end the database is checked (lost, duplicated, overlap_exceeded must be 0; also no
annotator holding one task twice) and latency and throughput are printed per `--window`
seconds, so drift over the run shows. The last line is one JSON object. gunicorn's and Django's own
log lines go to stderr as they happen: "Unauthorized" from the untimed warm-up (a dummy token, on
purpose), the master's notice of the SIGKILL, and a "Conflict" line for each expected 409 on a
submit after its claim expired.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import signal
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from annotate_load import (  # noqa: E402  (bench/ is not a package)
    ATTRIBUTES,
    Annotator,
    free_port,
    percentile,
    pg_url,
    prepare_database,
    setup_data,
    start_gunicorn,
    verify,
    warm_up,
)

DB_NAME = "concordance_bench_soak"
SUBMIT_PATH = "/api/queue/submit/"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotators", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=180.0, help="stop claiming after this long")
    parser.add_argument("--think-ms", type=float, default=1500.0, help="median of the annotators' median think times")
    parser.add_argument("--items", type=int, default=600, help="items of 3 responses and 3 pairs each")
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker")
    parser.add_argument("--replay-rate", type=float, default=0.02, help="submits sent twice (a double click)")
    parser.add_argument("--claim-seconds", type=int, default=20, help="the bench project's claim time")
    parser.add_argument("--abandon-rate", type=float, default=0.03, help="share of claimed tasks walked away from")
    parser.add_argument("--late-submit", type=float, default=0.5, help="share of abandoned tasks submitted on return")
    parser.add_argument("--kill-at", type=float, default=0.4, help="SIGKILL one worker at this fraction of the run (<0: never)")
    parser.add_argument("--window", type=float, default=30.0, help="seconds per line of the latency timeline")
    return parser.parse_args()


class SoakAnnotator(Annotator):
    """The load bench's annotator with human-like pacing, walk-aways and error resilience."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        # Each person their own pace: a log-uniform spread of about 6x around --think-ms.
        self.pace_s = self.args.think_ms / 1000 * math.exp(self.rng.uniform(-0.9, 0.9))
        self.error_times: list[tuple[float, str]] = []
        self.connection_failures = 0
        self.requests_untimed = 0  # replays that got an answer
        self.abandoned: list[dict] = []
        self.late: Counter = Counter()
        self.recovered = 0  # submits answered "duplicate" after a cut-off attempt: stored once, acknowledged
        self.unknown: list[str] = []  # submits whose outcome never came back
        self.finished = False

    def connection_error(self, kind: str, exc: Exception) -> None:
        self.errors[f"{kind} {type(exc).__name__}"] += 1
        self.connection_failures += 1
        self.error_times.append((time.perf_counter(), kind))

    def error(self, label: str) -> None:
        self.errors[label] += 1
        self.error_times.append((time.perf_counter(), label))

    def request(self, kind: str, path: str, body: dict) -> tuple[int, dict] | None:
        """`call` (two attempts) up to three times with backoff; None when every attempt failed."""
        for attempt in range(3):
            try:
                return self.call(kind, path, body)
            except (OSError, http.client.HTTPException):  # counted in connection_error
                time.sleep(0.5 * 2**attempt)
        return None

    def task_think_s(self, task: dict) -> float:
        seconds = self.pace_s * self.rng.lognormvariate(0, 0.5) * (1.5 if task["protocol"] == "ranking" else 1.0)
        if self.rng.random() < 0.03:
            seconds += self.rng.uniform(5, 20)  # a distraction
        return min(seconds, 25.0)  # under gunicorn's 30 s keep-alive

    def drop_connection(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def submit(self, task: dict) -> None:
        """Submit with retries. After the claim's expiry (a walk-away, or a slow annotator) the
        server stores it if the task still has room, else answers 409: both expected."""
        late = datetime.now(UTC) >= datetime.fromisoformat(task["expires_at"])
        if task["protocol"] == "rating":
            payload = {"view_key": task["view_key"], "values": {a: self.rng.randint(0, 4) for a in ATTRIBUTES}}
            rid = task["response"]["id"]
        else:
            payload = {"view_key": task["view_key"], "shown_strength": self.rng.randint(-2, 2)}
            rid = None
        failed_before = sum(self.errors.values())
        answer = self.request("submit", SUBMIT_PATH, payload)
        if answer is None:
            self.unknown.append(task["view_key"])
            return
        status, body = answer
        if status == 201 or (status == 200 and body.get("duplicate")):
            self.acknowledged.append((task["protocol"], rid, task["view_key"]))
            if status == 200:
                self.recovered += 1
                if sum(self.errors.values()) == failed_before:
                    self.error("submit duplicate without a cut-off attempt")
            if late:
                self.late["stored"] += 1
        elif late and status == 409:
            self.late["rejected"] += 1  # timed out and went to others: the expected answer
        else:
            self.error(f"submit {status}")
            return
        if not late and self.rng.random() < self.args.replay_rate:
            try:
                status, body = self.call("", SUBMIT_PATH, payload)
            except (OSError, http.client.HTTPException):
                return
            self.requests_untimed += 1
            if status != 200 or not body.get("duplicate"):
                self.replays_stored += 1

    def abandon(self, task: dict) -> None:
        self.abandoned.append({"view_key": task["view_key"], "expires_at": task["expires_at"]})
        self.drop_connection()  # an idle connection would be closed by the server meanwhile anyway
        time.sleep(self.args.claim_seconds + self.rng.uniform(3, 15))
        if self.rng.random() < self.args.late_submit:
            self.submit(task)
        # Otherwise the next "next" resumes it (renewed if it still has room) or moves on.

    def run(self) -> None:
        try:
            time.sleep(self.rng.uniform(0, self.pace_s))  # arrivals spread over one think time
            while time.time() < self.stop_at:
                try:
                    answer = self.request("next", f"/api/projects/{self.project_id}/queue/next/", {})
                    if answer is None:
                        continue
                    status, body = answer
                    if status != 200:
                        self.error(f"next {status}")
                        time.sleep(1)
                        continue
                    task = body["task"]
                    if task is None:
                        self.finished = True
                        break
                    time_left = self.stop_at - time.time()
                    if time_left > self.args.claim_seconds + 30 and self.rng.random() < self.args.abandon_rate:
                        self.abandon(task)
                        continue
                    time.sleep(self.task_think_s(task))
                    self.submit(task)
                    time.sleep(self.rng.uniform(0.2, 1.0))  # reading the next page
                except Exception as exc:  # counted, never hidden; the annotator carries on
                    self.error(type(exc).__name__)
                    time.sleep(1)
        finally:
            self.drop_connection()


def worker_pids(master: int) -> set[int]:
    try:
        return {int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()}
    except OSError:
        pids = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master:
                pids.add(int(stat.parent.name))
        return pids


class WorkerKiller(threading.Thread):
    """SIGKILL one gunicorn worker at a set time and watch the master start its replacement."""

    def __init__(self, *, master: int, workers: int, at: float, done: threading.Event) -> None:
        super().__init__(daemon=True)
        self.master, self.workers, self.at, self.done = master, workers, at, done
        self.killed_pid: int | None = None
        self.killed_at: float | None = None  # perf_counter
        self.respawned_s: float | None = None
        self.new_pid: int | None = None

    def run(self) -> None:
        if self.done.wait(max(0.0, self.at - time.perf_counter())):
            return
        before = worker_pids(self.master)
        if not before:
            return
        self.killed_pid = sorted(before)[0]
        self.killed_at = time.perf_counter()
        os.kill(self.killed_pid, signal.SIGKILL)
        while time.perf_counter() - self.killed_at < 60 and not self.done.is_set():
            now = worker_pids(self.master)
            fresh = now - before
            if fresh and len(now) >= self.workers:
                self.new_pid = min(fresh)
                self.respawned_s = time.perf_counter() - self.killed_at
                return
            time.sleep(0.05)


def check_abandoned(annotators: list[SoakAnnotator]) -> dict[str, int]:
    """Abandoned claims: how they ended, and whether another annotator took the task after expiry."""
    from annotate.models import Assignment

    outcome: Counter = Counter()
    reclaimed = 0
    for a in annotators:
        for record in a.abandoned:
            mine = Assignment.objects.get(view_key=record["view_key"])
            outcome[mine.status] += 1
            task = {"response_id": mine.response_id} if mine.response_id else {"pair_id": mine.pair_id}
            expired_at = datetime.fromisoformat(record["expires_at"])
            if Assignment.objects.filter(**task, claimed_at__gte=expired_at).exclude(rater_id=mine.rater_id).exists():
                reclaimed += 1
    return {"reclaimed": reclaimed, **{f"ended_{k}": v for k, v in sorted(outcome.items())}}


def seen_twice(project_id: int) -> int:
    """Tasks handed to the same annotator more than once (the constraints should make this 0)."""
    from django.db.models import Count

    from annotate.models import Assignment

    qs = Assignment.objects.filter(project_id=project_id)
    return sum(
        qs.exclude(**{f"{field}__isnull": True}).values("rater", field).annotate(n=Count("pk")).filter(n__gt=1).count()
        for field in ("response", "pair")
    )


def timeline(annotators: list[SoakAnnotator], started: float, elapsed: float, window: float,
             kill_at: float | None) -> list[dict]:
    rows = []
    n_windows = max(1, math.ceil(elapsed / window))
    by_window: list[dict[str, list[float]]] = [{"next": [], "submit": []} for _ in range(n_windows)]
    errors = [0] * n_windows
    for a in annotators:
        for t, kind, ms in a.timeline:
            by_window[min(n_windows - 1, int((t - started) // window))][kind].append(ms)
        for t, _ in a.error_times:
            errors[min(n_windows - 1, max(0, int((t - started) // window)))] += 1
    for w in range(n_windows):
        lo, hi = w * window, min(elapsed, (w + 1) * window)
        nxt, sub = by_window[w]["next"], by_window[w]["submit"]
        both = nxt + sub
        rows.append({
            "from_s": round(lo), "to_s": round(hi), "requests": len(both),
            "requests_per_s": round(len(both) / (hi - lo), 1) if hi > lo else 0.0,
            "next_p50": percentile(nxt, 50), "next_p95": percentile(nxt, 95), "next_p99": percentile(nxt, 99),
            "submit_p50": percentile(sub, 50), "submit_p95": percentile(sub, 95), "submit_p99": percentile(sub, 99),
            "p95": percentile(both, 95), "errors": errors[w],
            "kill": kill_at is not None and lo <= kill_at - started < hi,
        })
    return rows


def main() -> None:
    args = parse_args()
    print(f"PostgreSQL: (re)creating database {DB_NAME} at {pg_url('')}")
    prepare_database(DB_NAME)
    project_id, tokens = setup_data(args, DB_NAME)
    from annotate.models import Project

    Project.objects.filter(pk=project_id).update(claim_seconds=args.claim_seconds)
    port = free_port()
    print(f"gunicorn: {args.workers} workers x {args.threads} threads on 127.0.0.1:{port} (started by this script)")
    print(f"soak: {args.annotators} annotators for {args.seconds:.0f} s, median think {args.think_ms:.0f} ms "
          f"(per-annotator spread), claim time {args.claim_seconds} s, abandon rate {args.abandon_rate:.0%}, "
          f"worker SIGKILL at {args.kill_at:.0%} of the run")
    server = start_gunicorn(args, port, DB_NAME)
    done = threading.Event()
    killer = None
    try:
        warm_up(port, project_id, args.workers * args.threads)
        started = time.perf_counter()
        stop_at = time.time() + args.seconds
        annotators = [
            SoakAnnotator(name=name, token=token, port=port, project_id=project_id, args=args, stop_at=stop_at, seed=n)
            for n, (name, token) in enumerate(tokens.items())
        ]
        if args.kill_at >= 0:
            killer = WorkerKiller(master=server.pid, workers=args.workers, at=started + args.kill_at * args.seconds,
                                  done=done)
            killer.start()
        for a in annotators:
            a.start()
        # Bounded: the longest an annotator can run past the deadline is one think (25 s), a
        # submit with retries and a walk-away that began before it (which fits by construction).
        join_by = time.time() + args.seconds + 120
        for a in annotators:
            a.join(timeout=max(0.0, join_by - time.time()))
        elapsed = time.perf_counter() - started
        done.set()
        still_running = sum(a.is_alive() for a in annotators)
    finally:
        done.set()
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    checks = verify(project_id, annotators, args.overlap)
    abandoned = check_abandoned(annotators)
    twice = seen_twice(project_id)
    kill_at = killer.killed_at if killer else None
    rows = timeline(annotators, started, elapsed, args.window, kill_at)

    next_ms = [x for a in annotators for x in a.latencies["next"]]
    submit_ms = [x for a in annotators for x in a.latencies["submit"]]
    errors_by_kind = sum((a.errors for a in annotators), Counter())
    errors = sum(errors_by_kind.values())
    answered = len(next_ms) + len(submit_ms) + sum(a.requests_untimed for a in annotators)
    requests = answered + sum(a.connection_failures for a in annotators)
    rps = answered / elapsed if elapsed else 0.0
    acknowledged = sum(len(a.acknowledged) for a in annotators)
    late = sum((a.late for a in annotators), Counter())
    n_abandoned = sum(len(a.abandoned) for a in annotators)
    recovered = sum(a.recovered for a in annotators)
    unknown = sum(len(a.unknown) for a in annotators)

    print(f"\nlatency and throughput per {args.window:.0f} s window (ms; requests answered in the window):")
    print(f"  {'window':>9} {'req':>6} {'req/s':>6}   {'next p50/p95/p99':>20}   {'submit p50/p95/p99':>20}  errors")
    for r in rows:
        print(f"  {r['from_s']:>4}-{r['to_s']:<4} {r['requests']:>6} {r['requests_per_s']:>6.1f}   "
              f"{r['next_p50']:6.0f}/{r['next_p95']:5.0f}/{r['next_p99']:5.0f}     "
              f"{r['submit_p50']:6.0f}/{r['submit_p95']:5.0f}/{r['submit_p99']:5.0f}   {r['errors']:>5}"
              + ("   <- worker SIGKILLed" if r["kill"] else "")
              + ("   (after the deadline: finishing)" if r["from_s"] >= args.seconds else ""))
    # Drift: full windows inside the claiming period (after it, annotators only finish their tasks).
    full = [r for r in rows if r["to_s"] - r["from_s"] >= args.window * 0.99 and r["to_s"] <= args.seconds + 1
            and r["requests"]]
    first_p95 = full[0]["p95"] if full else 0.0
    last_p95 = full[-1]["p95"] if full else 0.0
    print(f"\n{args.annotators} annotators, {elapsed:.1f} s, {requests} requests ({answered} answered, "
          f"{rps:.1f}/s), {acknowledged} submits acknowledged, errors {errors}")
    for label, values in (("next-task", next_ms), ("submit", submit_ms)):
        print(f"  {label:<10} n={len(values):<6} p50={percentile(values, 50):6.1f} ms  p95={percentile(values, 95):6.1f} ms  "
              f"p99={percentile(values, 99):6.1f} ms")
    print(f"  p95 drift: first full window {first_p95:.0f} ms, last full window {last_p95:.0f} ms")
    if killer and killer.killed_pid:
        respawn = f"master forked replacement pid {killer.new_pid} {killer.respawned_s:.2f} s later" if killer.respawned_s else "no replacement seen"
        print(f"  worker kill: pid {killer.killed_pid} SIGKILLed at {killer.killed_at - started:.1f} s; {respawn}")
    print(f"  errors by kind: {dict(sorted(errors_by_kind.items())) or 'none'}")
    print(f"  submits recovered after a cut-off (stored once, acknowledged as duplicate): {recovered}; "
          f"outcome never known: {unknown}")
    print(f"  abandoned claims: {n_abandoned}; taken by another annotator after expiry: {abandoned['reclaimed']}; "
          f""
          f"submits after expiry (walk-aways and slow annotators) stored {late['stored']}, rejected as timed out "
          f"{late['rejected']}; "
          f"ended as {', '.join(f'{k[6:]} {v}' for k, v in abandoned.items() if k.startswith('ended_')) or '-'}")
    print(f"  done in database: {checks['done_in_db']}; lost {checks['lost']}, duplicated {checks['duplicated']}, "
          f"overlap exceeded {checks['overlap_exceeded']}, task seen twice by one annotator {twice}")
    if still_running:
        print(f"  WARNING: {still_running} annotator threads still running at the join deadline")
    result = {
        "annotators": args.annotators,
        "seconds": round(elapsed, 1),
        "requests": requests,
        "errors": errors,
        "lost": checks["lost"],
        "duplicated": checks["duplicated"],
        "overlap_exceeded": checks["overlap_exceeded"],
        "requests_per_s": round(rps, 1),
        "acknowledged_submits": acknowledged,
        "done_in_db": checks["done_in_db"],
        "p50_ms": round(max(percentile(next_ms, 50), percentile(submit_ms, 50)), 1),
        "p95_ms": round(max(percentile(next_ms, 95), percentile(submit_ms, 95)), 1),
        "p99_ms": round(max(percentile(next_ms, 99), percentile(submit_ms, 99)), 1),
        "p95_first_window_ms": round(first_p95, 1),
        "p95_last_window_ms": round(last_p95, 1),
        "window_p95_ms": [round(r["p95"], 1) for r in rows],
        "window_requests_per_s": [r["requests_per_s"] for r in rows],
        "errors_by_kind": dict(sorted(errors_by_kind.items())),
        "worker_killed": bool(killer and killer.killed_pid),
        "worker_respawn_s": round(killer.respawned_s, 2) if killer and killer.respawned_s else None,
        "submits_recovered": recovered,
        "submits_unknown": unknown,
        "claim_seconds": args.claim_seconds,
        "abandoned": n_abandoned,
        "abandoned_reclaimed": abandoned["reclaimed"],
        "late_stored": late["stored"],
        "late_rejected": late["rejected"],
        "seen_twice": twice,
        "threads_still_running": still_running,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
