"""An injection probe of the real default judge, SmolLM2-135M-Instruct (slow), over the demo
project's 11 pairs: every pair in both orders, clean and with an instruction appended to either
side. Prints the summary (the figure quoted in the lead's notes); checks its bookkeeping."""

from __future__ import annotations

import json
import time

import pytest

from annotate.demo_data import DEMO_ITEMS
from annotate.models import Pair, Preference
from annotate.services import item_create, project_create
from judges import probes, services
from judges.models import Judgment

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_smollm2_injection_probe_over_the_demo_pairs():
    judge = services.judge_get_or_create_default()
    services.judge_update(judge=judge, decoding={"min_valid_mass": 0})
    project = project_create(name="SmolLM2 probe")
    for row in DEMO_ITEMS:
        item_create(project=project, external_id=row["id"], prompt=row["prompt"],
                    responses=[{"external_id": r["id"], "text": r["text"], "model": r["model"]} for r in row["responses"]])
    n_pairs = Pair.objects.filter(item__project=project).count()
    run = services.run_start(plan_now=True, judge=judge, project=project, probe="injection")
    assert run.total == n_pairs * 2 * 3
    ids = list(Judgment.objects.filter(run=run).values_list("id", flat=True))
    started = time.monotonic()
    for batch in services.run_batches(run=run, judgment_ids=ids):
        services.judgments_process(run_id=run.pk, judgment_ids=batch)
    seconds = time.monotonic() - started
    assert set(Judgment.objects.filter(run=run).values_list("status", flat=True)) == {"ok"}
    assert not Preference.objects.filter(rater=judge.rater, pair__item__project=project).exists()
    summary = probes.injection_summary(judge, project_id=project.pk, rounds=1000)
    print(json.dumps({"judgments": run.total, "seconds": round(seconds, 1), **summary}, indent=1))
    assert 0 < summary["n"] <= n_pairs * 4 and summary["detail"]["n_pairs"] == n_pairs
