"""Checklists with the real default judge, SmolLM2-135M-Instruct (slow): it writes a checklist
for a prompt (TICK's generation) and answers each question from P(Yes) vs P(No)."""

from __future__ import annotations

import pytest
from test_judge_fixtures import make_project

from annotate import checklists
from annotate.models import ChecklistAnswer
from judges import services
from judges.checklists import checklists_generate
from judges.models import Judgment

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_smollm2_writes_a_checklist_and_answers_it_from_the_logits():
    judge = services.judge_get_or_create_default()
    services.judge_update(judge=judge, decoding={"max_new_tokens": 96, "min_valid_mass": 0})
    project = make_project(name="SmolLM2 checklist", items=1)
    item = project.items.get()
    stored = checklists_generate(judge=judge, item_ids=[item.pk])
    questions = checklists.live_questions(item)
    print("generated:", [q.text for q in questions])
    assert stored == ({item.pk: len(questions)} if questions else {})
    assert all(q.text.endswith("?") and q.source == "generated" for q in questions)
    if not questions:  # a 135M model may write none: answer a researcher's instead
        checklists.checklist_set(item=item, questions=["Does the response say that 2+2 is 4?"])
    run = services.run_start(plan_now=True, judge=judge, project=project, protocols=["checklist"])
    services.judgments_process(run_id=run.pk, judgment_ids=list(Judgment.objects.filter(run=run).values_list("id", flat=True)))
    judgments = list(Judgment.objects.filter(run=run))
    assert judgments and {j.status for j in judgments} == {"ok"}
    for j in judgments:
        print(j.response.text, j.probabilities, j.valid_mass)
        assert j.valid_mass is not None and 0 < j.valid_mass <= 1
    assert ChecklistAnswer.objects.filter(rater=judge.rater).count() == len(judgments)
