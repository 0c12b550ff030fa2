"""Checklists (TICK): imported with the item (jsonl, csv, the items API), written on a
researcher's page, answered by annotators beside the response (one key per question,
idempotent), and the checklist score as a rating attribute."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import test_judge_fixtures
from django.urls import reverse
from test_judge_fixtures import make_project

from annotate import checklists
from annotate.errors import ImportFileError, ValidationError
from annotate.importers import import_files
from annotate.models import Assignment, ChecklistAnswer, ChecklistQuestion, Item, Pair, Project, Rating
from annotate.services import attribute_create, rater_for_user

pytestmark = pytest.mark.django_db


def _jsonl(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


ROW = {"id": "q1", "prompt": "Name three colours.", "responses": [{"id": "a", "text": "Red, blue, green."},
                                                                 {"id": "b", "text": "Red."}],
       "checklist": ["Does the response name exactly three colours?", "Is every item named a colour?"]}


def _questions(item: Item) -> list[str]:
    return [q.text for q in checklists.live_questions(item)]


# -- import ----------------------------------------------------------------------------------------


def test_a_jsonl_checklist_is_imported_with_its_item_once(tmp_path):
    path = _jsonl(tmp_path, [ROW])
    project = import_files(project_name="ck", fmt="jsonl", paths=[path]).project
    item = project.items.get()
    assert _questions(item) == ROW["checklist"]
    assert {q.source for q in item.checklist.all()} == {"imported"}
    import_files(project_name="ck", fmt="jsonl", paths=[path])  # a re-import adds nothing
    assert ChecklistQuestion.objects.filter(item=item).count() == 2


def test_an_edited_checklist_is_not_overwritten_by_a_re_import(tmp_path):
    path = _jsonl(tmp_path, [ROW])
    item = import_files(project_name="ck", fmt="jsonl", paths=[path]).project.items.get()
    checklists.checklist_set(item=item, questions=["Is it polite?"])
    import_files(project_name="ck", fmt="jsonl", paths=[path])
    assert _questions(item) == ["Is it polite?"]


@pytest.mark.parametrize(("checklist", "field"), [
    ("not a list", None), ({"q": 1}, "checklist"), (["fine", 3], "checklist[1]"), (["two\nlines"], "checklist[0]"),
    ([" "], "checklist[0]"),
])
def test_a_bad_checklist_fails_the_import_naming_line_and_field(tmp_path, checklist, field):
    if field is None:  # a plain string is read as questions one per line, which is fine
        project = import_files(project_name="ck", fmt="jsonl", paths=[_jsonl(tmp_path, [{**ROW, "checklist": checklist}])]).project
        assert _questions(project.items.get()) == ["not a list"]
        return
    with pytest.raises(ImportFileError) as exc:
        import_files(project_name="ck", fmt="jsonl", paths=[_jsonl(tmp_path, [{**ROW, "checklist": checklist}])])
    assert exc.value.line == 1 and exc.value.field == field
    assert not Project.objects.filter(name="ck").exists()  # all or nothing


def test_a_csv_checklist_column_holds_one_question_per_line(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text('item_id,prompt,response_id,text,checklist\nq1,Say hi,a,Hi,"Is it a greeting?\nIs it short?"\nq1,Say hi,b,Hello,\n')
    project = import_files(project_name="ckcsv", fmt="csv", paths=[path]).project
    assert _questions(project.items.get()) == ["Is it a greeting?", "Is it short?"]


def test_sanity_items_import_with_their_role(tmp_path):
    # A sanity item carries its known answer (the importers refuse a check without one).
    row = {**ROW, "role": "sanity", "gold": {"pairs": [{"pair": ["a", "b"], "strength": -2}]}}
    project = import_files(project_name="ck", fmt="jsonl", paths=[_jsonl(tmp_path, [row])]).project
    item = project.items.get()
    assert item.role == Item.Role.SANITY
    pair = item.pairs.get()
    # -2 is "A better" in the file's order; stored against the pair's own order.
    assert pair.gold_strength == (-2 if pair.response_a.external_id == "a" else 2)


def test_the_items_api_takes_and_returns_a_checklist(client, researcher, project):
    client.force_login(researcher)
    body = {"project": project.pk, "external_id": "api-1", "prompt": "Say hi",
            "responses": [{"external_id": "a", "text": "Hi"}], "checklist": ["Is it a greeting?", "Is it short?"]}
    response = client.post("/api/items/", body, content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["checklist"] == ["Is it a greeting?", "Is it short?"]
    item_id = response.json()["id"]
    assert client.get(f"/api/items/{item_id}/").json()["checklist"] == ["Is it a greeting?", "Is it short?"]
    bad = client.post("/api/items/", {**body, "external_id": "api-2", "checklist": ["a\nb"]},
                      content_type="application/json")
    assert bad.status_code == 400 and "checklist" in bad.content.decode()
    assert not Item.objects.filter(external_id="api-2").exists()  # item and checklist together or neither


# -- editing and answering -------------------------------------------------------------------------


def _item(project: Project, questions: list[str]) -> Item:
    item = project.items.create(external_id="i1", prompt="Name three colours.")
    a = item.responses.create(external_id="a", text="Red, blue, green.")
    b = item.responses.create(external_id="b", text="Red.")
    Pair.objects.create(item=item, response_a=a, response_b=b)
    checklists.checklist_set(item=item, questions=questions)
    return item


def test_editing_keeps_unchanged_questions_retires_answered_ones_and_deletes_unanswered(project, annotator):
    item = _item(project, ["Three colours?", "Only colours?", "Polite?"])
    q_three, q_only, q_polite = checklists.live_questions(item)
    rater = rater_for_user(user=annotator)
    checklists.answers_submit(rater=rater, response=item.responses.first(), answers={q_only.pk: True})
    kept = checklists.checklist_set(item=item, questions=["Only colours, nothing else?", "Three colours?"])
    assert [q.text for q in kept] == ["Only colours, nothing else?", "Three colours?"]
    assert kept[1].pk == q_three.pk  # kept word for word: the same row, its answers still apply
    q_only.refresh_from_db()
    assert q_only.retired_at is not None  # answered: retired, never rewritten
    assert not ChecklistQuestion.objects.filter(pk=q_polite.pk).exists()  # never answered: gone
    assert ChecklistAnswer.objects.filter(question=q_only).count() == 1
    before = ChecklistQuestion.objects.count()
    checklists.checklist_set(item=item, questions=["Only colours, nothing else?", "Three colours?"])
    assert ChecklistQuestion.objects.count() == before  # saving the same list changes nothing


@pytest.mark.parametrize(("yes", "total", "low", "high", "expected"), [
    (2, 3, 0, 4, 3),  # 8/3 = 2.67
    (1, 3, 0, 4, 1),  # 4/3 = 1.33
    (1, 2, 0, 3, 2),  # 1.5, half away from zero
    (0, 5, 1, 5, 1), (5, 5, 1, 5, 5), (1, 4, 1, 5, 2),
])
def test_the_checklist_score_on_an_attribute_scale(yes, total, low, high, expected):
    assert checklists.scaled(yes, total, low=low, high=high) == expected


def test_a_whole_checklist_answered_is_a_rating_on_the_checklist_attribute(project, annotator):
    attribute_create(project=project, name="checklist", description="Share of checklist questions met.",
                     min_value=0, max_value=4)
    item = _item(project, ["Three colours?", "Only colours?", "Polite?"])
    q1, q2, q3 = checklists.live_questions(item)
    rater = rater_for_user(user=annotator)
    response = item.responses.get(external_id="a")
    checklists.answers_submit(rater=rater, response=response, answers={q1.pk: True, q2.pk: True})
    assert not Rating.objects.filter(rater=rater, attribute__name="checklist").exists()  # partial: no score
    checklists.answers_submit(rater=rater, response=response, answers={q3.pk: False})
    assert Rating.objects.get(rater=rater, attribute__name="checklist", response=response).value == 3
    checklists.answers_submit(rater=rater, response=response, answers={q1.pk: True, q2.pk: True, q3.pk: False})
    assert ChecklistAnswer.objects.filter(rater=rater).count() == 3  # a replay stores the same rows
    with pytest.raises(ValidationError):
        checklists.answers_submit(rater=rater, response=response, answers={10**9: True})


def test_the_rating_task_shows_the_checklist_with_one_key_per_question_and_stores_answers(client, annotator, project):
    project.protocols = Project.Protocols.RATING
    project.save()
    item = _item(project, ["Three colours?", "Only colours?"])
    q1, q2 = checklists.live_questions(item)
    client.force_login(annotator)
    page = client.get(reverse("annotate_task", args=[project.pk])).content.decode()
    assert 'id="checklist"' in page and "Three colours?" in page
    assert 'data-checklist-key="q"' in page and 'data-checklist-key="w"' in page
    assert "js/checklist.js" in page
    a = Assignment.objects.get(rater__user=annotator, status="claimed")
    values = {f"attr-{attr.name}": 2 for attr in project.attributes.all()}
    data = {"view_key": a.view_key, "protocol": "rating", **values,
            "checklist-asked": [q1.pk, q2.pk], f"checklist-{q1.pk}": "yes"}
    url = reverse("annotate_submit", args=[project.pk])
    assert client.post(url, data).status_code == 302
    answers = dict(ChecklistAnswer.objects.filter(rater__user=annotator).values_list("question_id", "answer"))
    assert answers == {q1.pk: True, q2.pk: False}
    client.post(url, data)  # a replayed submit stores nothing new
    assert ChecklistAnswer.objects.filter(rater__user=annotator).count() == 2


def test_the_ranking_task_shows_the_checklist_as_guidance_only(client, annotator, project):
    project.protocols = Project.Protocols.RANKING
    project.save()
    _item(project, ["Three colours?"])
    client.force_login(annotator)
    page = client.get(reverse("annotate_task", args=[project.pk])).content.decode()
    assert "Three colours?" in page and "checklist-asked" not in page


def test_the_researcher_writes_and_edits_a_checklist_on_the_items_page(client, researcher, project):
    item = _item(project, [])
    client.force_login(researcher)
    url = reverse("item_checklist", args=[item.pk])
    assert "Save checklist" in client.get(url).content.decode()
    response = client.post(url, {"questions": "Three colours?\n\n  Only colours?  \n"})
    assert response.status_code == 302
    assert _questions(item) == ["Three colours?", "Only colours?"]
    assert {q.source for q in checklists.live_questions(item)} == {"researcher"}
    bad = client.post(url, {"questions": "\n".join(f"Q{i}?" for i in range(60))})
    assert bad.status_code == 422 and "at most 50" in bad.content.decode()
    pair = Pair.objects.get(item=item)
    assert url in client.get(reverse("annotate_pair", args=[pair.pk])).content.decode()


# -- a judge answers each question from the logits ------------------------------------------------


@pytest.fixture(scope="module")
def checklist_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model, its tokenizer also trained on the checklist answer line, so that Yes and
    No are single tokens after the cue as in real judge vocabularies (the backend refuses labels
    that are not)."""
    corpus = test_judge_fixtures.TINY_CORPUS
    saved = list(corpus)
    corpus.append("Output only your answer, [[Yes]] or [[No]]. [[Yes]] [[No]]")
    try:
        return test_judge_fixtures.build_tiny_model(tmp_path_factory.mktemp("tiny-checklist"))
    finally:
        corpus[:] = saved


def test_a_judge_answers_each_checklist_question_from_p_yes_vs_p_no(checklist_model_dir):
    from judges import services
    from judges.models import Judgment, Run

    judge = services.judge_create(name="tiny-checklist", model_ref=str(checklist_model_dir),
                                  decoding={"max_new_tokens": 8, "min_valid_mass": 0})
    project = make_project(items=2)
    attribute_create(project=project, name="checklist", min_value=0, max_value=4)
    first, second = project.items.order_by("id")
    checklists.checklist_set(item=first, questions=["Is it correct?", "Is it short?"])
    checklists.checklist_set(item=second, questions=["Is it a city?"])
    checklists.checklist_set(item=second, questions=["Is it a capital city?"])  # the first wording never ran
    run = services.run_start(plan_now=True, judge=judge, project=project, protocols=["checklist"])
    assert run.protocols == ["checklist"]
    assert run.total == 2 * 2 + 2 * 1  # every response of an item, against each live question
    ids = list(Judgment.objects.filter(run=run).values_list("id", flat=True))
    for batch in services.run_batches(run=run, judgment_ids=ids):
        services.judgments_process(run_id=run.pk, judgment_ids=batch)
    run.refresh_from_db()
    assert run.status == Run.Status.DONE
    judgments = list(Judgment.objects.filter(run=run).select_related("question"))
    assert {j.status for j in judgments} == {"ok"}, [j.error for j in judgments][:1]
    assert {j.question.text for j in judgments} == {"Is it correct?", "Is it short?", "Is it a capital city?"}
    for j in judgments:
        p = j.probabilities
        assert set(p) == {"Yes", "No"} and p["Yes"] + p["No"] == pytest.approx(1)
        assert j.verdict == max(p, key=p.get)  # the argmax of the two (min_valid_mass 0)
        answer = ChecklistAnswer.objects.get(rater=judge.rater, question=j.question, response=j.response)
        assert answer.answer == (j.verdict == "Yes") and answer.probability == pytest.approx(p["Yes"])
    # Each response answered in full: its checklist score is the judge's rating on the attribute.
    for response in [r for item in (first, second) for r in item.responses.all()]:
        yes, total = checklists.score(rater=judge.rater, response=response)
        rating = Rating.objects.get(rater=judge.rater, response=response, attribute__name="checklist")
        assert rating.value == checklists.scaled(yes, total, low=0, high=4)
    # A second run replaces the answers, never adds rows.
    again = services.run_start(plan_now=True, judge=judge, project=project, protocols=["checklist"])
    services.judgments_process(run_id=again.pk, judgment_ids=list(Judgment.objects.filter(run=again).values_list("id", flat=True)))
    assert ChecklistAnswer.objects.filter(rater=judge.rater).count() == 6


# -- the report: agreement with and without checklists -------------------------------------------


def _verdicts(rows: list[tuple[str, int, int, int]]):
    import pandas as pd

    return pd.DataFrame(rows, columns=["rater", "pair", "item", "verdict"])


def test_checklist_effect_pools_rater_pairs_per_group_as_sklearn_kappa_does():
    import numpy as np
    from sklearn.metrics import cohen_kappa_score

    from reports.metrics.bootstrap import Resampler
    from reports.metrics.checklists import checklist_effect

    kinds = {"human:a": "human", "human:b": "human", "judge:j": "judge"}
    # Items 0, 1 have a checklist; 2, 3 do not. One pair per item (pair = item + 10).
    votes = {0: (0, 0, 0), 1: (2, 2, 1), 2: (0, 2, 2), 3: (1, 0, 1)}  # (a, b, j) verdicts
    rows = [(r, item + 10, item, v) for item, vs in votes.items() for r, v in zip(kinds, vs, strict=True)]
    has = np.array([True, True, False, False])
    boot = Resampler(n_units=4, rounds=200)
    hh = checklist_effect(_verdicts(rows), kinds, has, boot, "human_human")
    jh = checklist_effect(_verdicts(rows), kinds, has, boot, "judge_human")
    boot.run()
    value = hh.estimate.value
    # human-human with: (0,0), (2,2) -> 100%, kappa 1; without: (0,2), (1,0) -> 0%.
    assert (hh.n_with, hh.n_without, hh.items_with, hh.items_without) == (2, 2, 2, 2)
    assert value[0] == 1.0 and value[1] == pytest.approx(cohen_kappa_score([0, 2], [0, 2]))
    assert value[2] == 0.0 and value[3] == pytest.approx(cohen_kappa_score([0, 1], [2, 0]))
    assert value[4] == 1.0
    # judge-human: each judge verdict against each human's, pooled.
    jv = jh.estimate.value
    with_j, with_h = [0, 0, 1, 1], [0, 0, 2, 2]
    without_j, without_h = [2, 2, 1, 1], [0, 2, 1, 0]
    assert jh.n_with == 4 and jh.n_without == 4
    assert jv[0] == pytest.approx(0.5) and jv[1] == pytest.approx(cohen_kappa_score(with_j, with_h, labels=[0, 1, 2]))
    assert jv[2] == pytest.approx(0.5) and jv[3] == pytest.approx(cohen_kappa_score(without_j, without_h, labels=[0, 1, 2]))
    assert jv[4] == pytest.approx(0.0) and jv[5] == pytest.approx(jv[1] - jv[3])
    lo, hi = jh.estimate.ci[:, 0]
    assert 0 <= lo <= 0.5 <= hi <= 1


def test_the_report_and_the_agreement_page_split_agreement_by_checklist(client, researcher, project, annotator,
                                                                      other_annotator):
    from annotate.services import preference_submit
    from reports.build import build_report

    items = []
    for n in range(4):
        item = project.items.create(external_id=f"r{n}", prompt=f"Q{n}?")
        a = item.responses.create(external_id="a", text="one")
        b = item.responses.create(external_id="b", text="two")
        pair = Pair.objects.create(item=item, response_a=a, response_b=b)
        items.append((item, pair))
    checklists.checklist_set(item=items[0][0], questions=["Is it right?"])
    checklists.checklist_set(item=items[1][0], questions=["Is it right?"])
    # Humans agree on the checklist items, disagree on the others.
    for (_item, pair), (sa, sb) in zip(items, [(-2, -1), (2, 1), (-2, 2), (1, -1)], strict=True):
        preference_submit(rater=rater_for_user(user=annotator), pair=pair, strength=sa)
        preference_submit(rater=rater_for_user(user=other_annotator), pair=pair, strength=sb)
    report = build_report(project, rounds=50)
    hh = report["checklists"]["human_human"]
    assert report["checklists"]["n_items_with_checklist"] == 2
    assert (hh["with"]["n"], hh["with"]["percent"], hh["without"]["n"], hh["without"]["percent"]) == (2, 1.0, 2, 0.0)
    assert hh["difference"]["percent"] == 1.0
    assert report["checklists"]["judge_human"]["with"]["n"] == 0
    client.force_login(researcher)
    page = client.get(reverse("reports:page", args=[project.pk, "agreement"])).content.decode()
    assert 'id="checklist-effect"' in page and "human–human, with a checklist" in page


# -- generated by a judge model (TICK) -------------------------------------------------------------


def test_questions_are_read_one_per_line_without_numbering_or_preamble():
    from judges.checklists import questions_from_text

    text = ("Here is the checklist:\n1. Does the response name three colours?\n- Are they all primary colours?\n"
            "2) Does the response name three colours?\nQ3: Is it under 20 words?\nThanks!\n\u2022 ok?")
    assert questions_from_text(text) == ["Does the response name three colours?", "Are they all primary colours?",
                                         "Is it under 20 words?"]
    assert questions_from_text("\n".join(f"{i}. Question {i}?" for i in range(30)), limit=3) == [
        "Question 0?", "Question 1?", "Question 2?"]


def test_a_judge_model_writes_checklists_for_items_that_have_none(checklist_model_dir):
    from judges import checklists as generation
    from judges import services

    judge = services.judge_create(name="tiny-writer", model_ref=str(checklist_model_dir), decoding={"max_new_tokens": 24})
    project = make_project(items=2)
    first, second = project.items.order_by("id")
    checklists.checklist_set(item=second, questions=["Kept as the researcher wrote it?"])
    # A random tiny model writes no question marks reliably: read what it wrote, the plain way.
    from judges.inference import load_backend

    backend = load_backend(services.judge_backend_config(judge=judge))
    (out,) = backend.generate([(first.pk, generation.generation_messages(first))], decoding=services.judge_decoding(judge=judge))
    expected = generation.questions_from_text(out.text)
    stored = generation.checklists_generate(judge=judge, item_ids=[first.pk, second.pk])
    assert stored == ({first.pk: len(expected)} if expected else {})
    assert _questions(first) == expected
    assert {q.source for q in checklists.live_questions(first)} <= {"generated"}
    assert _questions(second) == ["Kept as the researcher wrote it?"]  # not overwritten


def test_the_checklist_page_sends_generation_to_a_worker(client, researcher, project, settings):
    from judges import services

    judge = services.judge_create(name="writer", model_ref="/nowhere")
    item = _item(project, [])
    client.force_login(researcher)
    page = client.get(reverse("item_checklist", args=[item.pk])).content.decode()
    url = reverse("judges:checklist-generate", args=[item.pk])
    assert f'action="{url}"' in page and ">writer<" in page
    response = client.post(url, {"judge": judge.pk, "scope": "project"}, follow=True)
    assert "is writing checklists for 1 item(s)" in response.content.decode()
    response = client.post(url, {"judge": "999999"}, follow=True)
    assert "Choose a judge" in response.content.decode()


def test_the_checklist_attribute_is_the_score_not_a_scale_to_fill_in(client, annotator, project):
    from judges import services

    project.protocols = Project.Protocols.RATING
    project.save()
    attribute_create(project=project, name="checklist", min_value=0, max_value=4)
    item = _item(project, ["Three colours?", "Only colours?", "Polite?"])
    questions = checklists.live_questions(item)
    client.force_login(annotator)
    page = client.get(reverse("annotate_task", args=[project.pk])).content.decode()
    assert 'name="attr-checklist"' not in page and 'name="attr-helpfulness"' in page
    a = Assignment.objects.get(rater__user=annotator, status="claimed")
    values = {f"attr-{attr.name}": 2 for attr in project.attributes.exclude(name="checklist")}
    data = {"view_key": a.view_key, "protocol": "rating", **values,
            "checklist-asked": [q.pk for q in questions], f"checklist-{questions[0].pk}": "yes",
            f"checklist-{questions[1].pk}": "yes"}
    assert client.post(reverse("annotate_submit", args=[project.pk]), data).status_code == 302
    rating = Rating.objects.get(rater__user=annotator, attribute__name="checklist")
    assert rating.response_id == a.response_id and rating.value == 3  # 2 of 3 on 0..4
    # A judge's rating run leaves the attribute to the checklist protocol.
    judge = services.judge_create(name="no-checklist-rating", model_ref="/nowhere")
    run = services.run_start(plan_now=True, judge=judge, project=project, protocols=["rating"])
    assert not _judgments(run).filter(attribute__name="checklist").exists()
    assert _judgments(run).exists()


def _judgments(run):
    from judges.models import Judgment

    return Judgment.objects.filter(run=run)
