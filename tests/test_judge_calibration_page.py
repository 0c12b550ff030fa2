"""The judge's page (/judges/ID/) shows, per project it was qualified on, its stored reliability
diagram before and after calibration with ECE and n, as inline SVG with a title, a description
and a table of the bins; and says plainly when there is no calibration yet."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from annotate.models import Item, Pair, Preference
from judges.services import judge_create
from reports.qualification import judge_qualify

pytestmark = pytest.mark.django_db

# (judge's verdict on a pair whose gold is A, its probability of that verdict, how many pairs):
# raw scores 0.55 (3 pairs, wrong), 0.75 (4, right), 0.95 (5, right): bins [0.5, 0.6), [0.7, 0.8),
# [0.9, 1.0] of ten over [0, 1]. ECE before = (3 * |0.55 - 0| + 4 * |0.75 - 1| + 5 * |0.95 - 1|) / 12.
CASE = (("B", 0.55, 3), ("A", 0.75, 4), ("A", 0.95, 5))
ECE_BEFORE = (3 * 0.55 + 4 * 0.25 + 5 * 0.05) / 12


def _calibrated_judge(project, researcher):
    judge = judge_create(name="calib", model_ref="m", owner=researcher)
    judge.shared_with.add(project)
    k = 0
    for verdict, p, count in CASE:
        for _ in range(count):
            item = project.items.create(external_id=f"g{k}", prompt=f"p{k}", role=Item.Role.GOLD)
            a = item.responses.create(external_id="a", text="a", model="m1")
            b = item.responses.create(external_id="b", text="b", model="m2")
            pair = Pair.objects.create(item=item, response_a=a, response_b=b, gold_strength=-1)
            rest = (1 - p) / 2
            probs = {"A": p if verdict == "A" else rest, "tie": rest, "B": p if verdict == "B" else rest}
            for order in ("ab", "ba"):
                Preference.objects.create(rater=judge.rater, rater_kind="judge", pair=pair, shown_order=order,
                                          strength=-1 if verdict == "A" else 1, verdict_only=True, probabilities=probs)
            k += 1
    return judge


def test_judge_page_shows_reliability_before_and_after(project, researcher):
    judge = _calibrated_judge(project, researcher)
    client = Client()
    client.force_login(researcher)
    before = client.get(reverse("judges:judge", args=[judge.pk])).content.decode()
    assert 'id="no-calibration"' in before and "no calibration yet" in before

    q = judge_qualify(project=project, judge=judge, rounds=50)
    assert q.n == 12
    assert q.reliability["before"]["ece"] == pytest.approx(ECE_BEFORE)
    page = client.get(reverse("judges:judge", args=[judge.pk])).content.decode()
    section = re.search(rf'id="calibration-{project.pk}".*?</section>', page, re.S)
    assert section, "no calibration section for the project"
    html = section.group(0)
    assert 'id="no-calibration"' not in page
    # Two diagrams (before, after), each an SVG with a title and a description of its bins.
    svgs = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(svgs) == 2
    assert all("<title>" in s and "<desc>" in s for s in svgs)
    assert "Before calibration" in svgs[0] and "n=12" in svgs[0] and "After calibration" in svgs[1]
    assert "confidence 0.50-0.60: n=3, agreement with gold 0.000" in svgs[0]
    # ECE before and after, and n, in the headline.
    assert f"{ECE_BEFORE:.3f}" in html and f"{q.reliability['after']['ece']:.3f}" in html and "n = 12" in html
    # The table alternative: the bins' counts before calibration, by hand (3, 4, 5), empty elsewhere.
    rows = dict(re.findall(r'<th scope="row">([0-9.]+–[0-9.]+)</th>\s*<td>([^<]*)</td>', html))
    assert rows["0.50–0.60"] == "3" and rows["0.70–0.80"] == "4" and rows["0.90–1.00"] == "5"
    assert rows["0.00–0.10"] == "0" and len(rows) == 10
    after_counts = [int(n) for n in re.findall(r'<tr><th scope="row">[^<]*</th>\s*(?:<td>[^<]*</td>){3}\s*<td>(\d+)</td>', html)]
    assert sum(after_counts) == 12
