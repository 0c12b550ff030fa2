"""The report page as a researcher meets it at scale: a project of about N annotations in
PostgreSQL, its report page opened (the selector's load, a full build, the state kept), a
judge's run of K new annotations imported (or, with --arrival human, K preferences of a new
annotator spread over K items drawn at random: the rows touch K items' gold, every judge's
figures against it and the humans' boards), and the page opened again (the new rows loaded and
absorbed into the kept state), through the real view (`/reports/projects/<id>/`, a signed-in
researcher, the shipped file cache). Beside them, in the same cycle: a rebuild of the same
report from the database (build_report: no cache, no state), and what the second view cost
before session 16, when the state was kept in the file cache (storing it after each view and
reading it back before each absorb; bench/reports.py's keeping figures).

Each cycle starts cold (the report cache, the kept states and the replayed effort curves emptied)
and ends by deleting the rows that arrived, so every cycle is the same two views. Seconds are
medians over the cycles.

Run: python bench/report_page.py [--items 25641] [--judge-rows 10000] [--arrival judge|human] [--cycles 3]
[--profile FILE]
(25,641 items of 39 annotations: 1,000,000 annotations, bench/reports.py's shape.) The last
line is one JSON object.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import json
import os
import pstats
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._django import drop, setup  # noqa: E402
from bench._machine import describe, summary  # noqa: E402

MODELS = [f"m{k}" for k in range(8)]
HUMANS = [f"h{k}" for k in range(3)]
JUDGES = ["m0-judge", "positional", "verbose", "plain"]
LATE = "plain"  # the judge whose last run arrives between the two views
NEWCOMER = "h3"  # --arrival human: the annotator whose first preferences arrive between them
ATTRIBUTES = ["helpfulness", "correctness"]
PER_ITEM = len(HUMANS) + 2 * len(JUDGES) + 2 * (len(HUMANS) + len(JUDGES)) * len(ATTRIBUTES)  # 39


def _item(i: int, rng: random.Random, *, late_only: bool, late_too: bool) -> dict:
    """Item i: two responses of two models, the humans' and judges' preferences (a judge in both
    shown orders) and everyone's ratings of both responses; late_only: only the late judge's
    preferences (its run), late_too: with them (else without)."""
    a, b = rng.sample(MODELS, 2)
    row: dict = {"id": f"q{i}", "prompt": f"Question {i}: explain something.",
                 "responses": [{"id": "a", "model": a, "text": "Answer A " * rng.randint(5, 40)},
                               {"id": "b", "model": b, "text": "Answer B " * rng.randint(5, 40)}]}  # fmt: skip
    late = [{"rater": f"judge:{LATE}", "pair": ["a", "b"], "strength": rng.randint(-3, 3), "shown_order": order}
            for order in ("ab", "ba")]  # fmt: skip
    if late_only:
        row["preferences"] = late
        return row
    prefs = [{"rater": f"human:{h}", "pair": ["a", "b"], "strength": rng.randint(-3, 3)} for h in HUMANS]
    prefs += [{"rater": f"judge:{j}", "pair": ["a", "b"], "strength": rng.randint(-3, 3), "shown_order": order}
              for j in JUDGES if j != LATE for order in ("ab", "ba")]  # fmt: skip
    row["preferences"] = prefs + (late if late_too else [])
    row["ratings"] = [{"rater": rater, "response": resp, "attribute": attr, "value": rng.randint(0, 4)}
                      for rater in [f"human:{h}" for h in HUMANS] + [f"judge:{j}" for j in JUDGES]
                      for resp in ("a", "b") for attr in ATTRIBUTES]  # fmt: skip
    return row


def write_files(where: Path, items: int, judge_rows: int, arrival: str = "judge") -> tuple[Path, Path]:
    """The project's file (every annotation but what arrives between the two views) and the
    arriving rows' file: the late judge's last run (its rows on the last items), or a new
    annotator's preferences on judge_rows items drawn at random (arrival "human")."""
    late_items = max(1, judge_rows // 2) if arrival == "judge" else 0  # two shown orders an item
    first, run = where / "project.jsonl", where / "run.jsonl"
    raters = [{"name": h, "kind": "human"} for h in HUMANS]
    raters += [{"name": j, "kind": "judge", **({"model": "m0"} if j == "m0-judge" else {})} for j in JUDGES]
    with first.open("w") as fh:
        fh.write(json.dumps({"raters": raters}) + "\n")
        rng = random.Random(0)
        for i in range(items):
            fh.write(json.dumps(_item(i, rng, late_only=False, late_too=i < items - late_items)) + "\n")
    with run.open("w") as fh:
        if arrival == "human":
            fh.write(json.dumps({"raters": [{"name": NEWCOMER, "kind": "human"}]}) + "\n")
        chosen = set(random.Random(1).sample(range(items), min(judge_rows, items))) if arrival == "human" else set()
        rng = random.Random(0)
        for i in range(items):
            row = _item(i, rng, late_only=False, late_too=False)  # the same draws, so the same responses
            if arrival == "judge" and i >= items - late_items:
                fh.write(json.dumps({**_item(i, random.Random(i), late_only=True, late_too=True),
                                     "responses": row["responses"]}) + "\n")  # fmt: skip
            elif i in chosen:
                vote = {"rater": f"human:{NEWCOMER}", "pair": ["a", "b"], "strength": random.Random(i).randint(-3, 3)}
                fh.write(json.dumps({"id": row["id"], "prompt": row["prompt"], "responses": row["responses"],
                                     "preferences": [vote]}) + "\n")  # fmt: skip
    return first, run


def _keeping(state) -> dict:
    spec = importlib.util.spec_from_file_location("bench_reports", Path(__file__).with_name("reports.py"))
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._keeping_figures(state)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=25_641)
    parser.add_argument("--judge-rows", type=int, default=10_000)
    parser.add_argument("--arrival", choices=("judge", "human"), default="judge",
                        help="what arrives between the two views: a judge's run, or a new annotator's spread-out rows")
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--db", default="concordance_bench_report_page")
    parser.add_argument("--profile", metavar="FILE",
                        help="cProfile the first cycle's second view into FILE (pstats), and print its top entries")  # fmt: skip
    args = parser.parse_args()
    machine = describe()  # before the database and the import: the machine quiet
    print(summary(machine), flush=True)
    setup(args.db)
    from django.conf import settings

    settings.DEBUG = False  # as in production (no SQL kept per query)
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    from django.contrib.auth import get_user_model
    from django.core.cache import caches
    from django.test import Client

    from annotate.importers import import_files
    from annotate.models import Preference, Project
    from annotate.roles import user_set_role
    from reports.build import build_report
    from reports.cache import KEPT_STATES, state_cache_key
    from reports.effort import _CURVES
    from reports.selectors import ReportFilters


    user = get_user_model().objects.create_user("bench-researcher", password="x")
    user_set_role(user=user, role="researcher")
    client = Client()
    client.force_login(user)
    cycles: list[dict] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            first, run = write_files(Path(tmp), args.items, args.judge_rows, args.arrival)
            t0 = time.perf_counter()
            result = import_files(project_name="bench-report-page", fmt="jsonl", paths=[first], user=user)
            n = result.counts.get("ratings", 0) + result.counts.get("preferences", 0)
            print(f"project: {n:,} annotations on {args.items:,} items imported in {time.perf_counter() - t0:.1f} s",
                  flush=True)  # fmt: skip
            project = Project.objects.get(name="bench-report-page")
            page = f"/reports/projects/{project.pk}/"
            who = f"judge:{LATE}" if args.arrival == "judge" else f"human:{NEWCOMER}"
            skey = state_cache_key(project, ReportFilters(), {"rounds": settings.CONCORDANCE["BOOTSTRAP_ROUNDS"]})
            for cycle in range(args.cycles):
                top = Preference.objects.filter(pair__item__project=project).order_by("-id").values_list("id", flat=True)[0]
                # A cold start: nothing cached, nothing kept (else the first view of a later cycle
                # would be the first cycle's cached report: the same rows; and its second view
                # the first cycle's replayed effort curve, when the same human rows arrive).
                caches["default"].clear()
                KEPT_STATES.clear()
                _CURVES.clear()  # the human-effort section's replayed curves too
                t0 = time.perf_counter()
                response = client.get(page)
                t_first = time.perf_counter() - t0
                assert response.status_code == 200, response.status_code
                assert skey in KEPT_STATES, "the first view kept no state"
                added = import_files(project_name="bench-report-page", fmt="jsonl", paths=[run], user=user)
                k = added.counts.get("preferences", 0)
                profiler = cProfile.Profile() if args.profile and cycle == 0 else None
                t0 = time.perf_counter()
                if profiler is not None:
                    profiler.enable()
                response = client.get(page)
                t_second = time.perf_counter() - t0
                if profiler is not None:
                    profiler.disable()
                    profiler.dump_stats(args.profile)
                    pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
                assert response.status_code == 200, response.status_code
                _, _, state = KEPT_STATES.get(skey)
                absorbed = state.absorbed
                t0 = time.perf_counter()
                build_report(project, details=True)
                t_rebuild = time.perf_counter() - t0
                keeping = _keeping(state)
                before = t_second + keeping["state_file_cache_store_seconds"] + keeping["state_file_cache_read_seconds"]
                load = os.getloadavg()[0]
                print(f"cycle {cycle + 1}: first view {t_first:.2f} s (full build); {k:,} rows of {who} "
                      f"imported; second view {t_second:.2f} s ({absorbed:,} absorbed); a rebuild {t_rebuild:.2f} s; "
                      f"with the state in the file cache the second view would take {before:.2f} s; load {load:.2f}",
                      flush=True)  # fmt: skip
                cycles.append({"first": t_first, "second": t_second, "rebuild": t_rebuild, "before": before,
                               "absorbed": absorbed, "load": load})  # fmt: skip
                # The arrived rows out again: the next cycle's first view is a full build.
                Preference.objects.filter(pair__item__project=project, id__gt=top).delete()
    finally:
        drop(args.db)
        print(f"dropped database {args.db}", flush=True)

    def median(key: str) -> float:
        return round(statistics.median(c[key] for c in cycles), 3)

    print(json.dumps({"annotations": n, "arrival": args.arrival, "absorbed": cycles[-1]["absorbed"], "first_view_seconds": median("first"),
                      "second_view_seconds": median("second"), "rebuild_seconds": median("rebuild"),
                      "second_view_ratio": round(median("second") / median("rebuild"), 3),
                      "second_view_with_file_cache_seconds": median("before"),
                      "runs": [{k: round(v, 3) if isinstance(v, float) else v for k, v in c.items()} for c in cycles],
                      "load_average": median("load"), **machine}))  # fmt: skip


if __name__ == "__main__":
    main()
