from __future__ import annotations

import re
import uuid

import pytest
from django.urls import reverse

from annotate.markdown import render_markdown
from annotate.models import Assignment, Item, Pair, Preference, Project, Rating
from annotate.queue import assignment_claim_next, assignment_submit_preference
from annotate.services import judge_rater_get_or_create, preference_submit, rater_for_user

ALL = {"helpfulness": 3, "correctness": 2, "coherence": 4, "complexity": 1, "verbosity": 2}
HOSTILE = (
    "Sure! <script>alert('x')</script> <img src=x onerror=\"alert(1)\"> "
    "[click me](javascript:alert(2)) <a href=\"javascript:alert(3)\">raw</a> "
    "<div onmouseover=\"alert(4)\">hover</div>\n\n```python\nprint('<b>hi</b>')\n```\n"
)


def _pair(project: Project, n: int = 0, text_a: str = "Answer **A**", text_b: str = "Answer B") -> Pair:
    item = project.items.create(external_id=f"i{n}", prompt=f"Question {n}?", context="Some context")
    a = item.responses.create(external_id="a", text=text_a, model="secret-model-alpha")
    b = item.responses.create(external_id="b", text=text_b, model="secret-model-beta")
    return Pair.objects.create(item=item, response_a=a, response_b=b)


def _task(client, project):
    return client.get(reverse("annotate_task", args=[project.pk]))


def _current(annotator) -> Assignment:
    return Assignment.objects.filter(rater__user=annotator, status="claimed").latest("claimed_at")


@pytest.fixture
def ranking_project(project):
    project.protocols = Project.Protocols.RANKING
    project.save()
    return project


@pytest.fixture
def rating_project(project):
    project.protocols = Project.Protocols.RATING
    project.save()
    return project


def test_markdown_is_rendered_and_hostile_html_is_inert():
    html = str(render_markdown(HOSTILE + "\n\n**bold** and `code`"))
    assert "<script" not in html
    assert not re.search(r"<[^>]+\son\w+\s*=", html), html  # no event handler attribute on any tag
    assert not re.search(r"<a\s[^>]*href=\"javascript", html)
    assert "<strong>bold</strong>" in html and "<code>code</code>" in html
    # Highlighted on the server (Pygments): token classes, no inline style (the CSP forbids it).
    assert '<div class="codehilite"><pre>' in html and '<span class="nb">print</span>' in html
    assert "style=" not in html
    assert "&lt;script&gt;" in html  # shown as text, not dropped silently


def test_task_page_renders_sanitised_response_without_model_names(client, annotator, ranking_project):
    _pair(ranking_project, text_a=HOSTILE)
    client.force_login(annotator)
    response = _task(client, ranking_project)
    assert response.status_code == 200
    body = response.content.decode()
    assert "secret-model" not in body
    assert "<script>alert" not in body
    assert not re.search(r"<[^>]+\son(error|mouseover)\s*=", body)  # handlers only ever as escaped text
    assert not re.search(r"<a\s[^>]*href=\"javascript", body)
    assert "Response A" in body and "Response B" in body
    assert "&lt;script&gt;alert" in body  # shown as text
    assert "Be <em>careful</em>." in body  # guidelines, markdown


def test_plain_form_rating_submit_redirects_and_stores(client, annotator, rating_project):
    _pair(rating_project)
    client.force_login(annotator)
    _task(client, rating_project)
    a = _current(annotator)
    data = {"view_key": a.view_key, "protocol": "rating", "time_on_task_ms": "4200",
            **{f"attr-{k}": v for k, v in ALL.items()}}
    response = client.post(reverse("annotate_submit", args=[rating_project.pk]), data)
    assert response.status_code == 302
    assert Rating.objects.filter(rater__user=annotator).count() == 5
    assert Rating.objects.filter(rater__user=annotator).first().time_on_task_ms == 4200
    page = client.get(response["Location"]).content.decode()
    assert "Saved." in page


def test_double_submit_and_replay_store_once_with_a_clear_message(client, annotator, ranking_project):
    _pair(ranking_project)
    client.force_login(annotator)
    _task(client, ranking_project)
    a = _current(annotator)
    data = {"view_key": a.view_key, "protocol": "ranking", "shown_strength": "-1", "justification": ""}
    url = reverse("annotate_submit", args=[ranking_project.pk])
    first = client.post(url, data, HTTP_HX_REQUEST="true")
    second = client.post(url, data, HTTP_HX_REQUEST="true")
    assert first.status_code == 200 and second.status_code == 200
    assert "stored once" in second.content.decode()
    assert Preference.objects.count() == 1
    replay = client.post(url, {**data, "view_key": str(uuid.uuid4())})
    assert replay.status_code == 302  # unknown view: a message, never a 500
    assert "no longer current" in client.get(replay["Location"]).content.decode()


def test_htmx_submit_swaps_in_the_next_task_partial(client, annotator, ranking_project):
    _pair(ranking_project, 0)
    _pair(ranking_project, 1)
    client.force_login(annotator)
    _task(client, ranking_project)
    a = _current(annotator)
    response = client.post(
        reverse("annotate_submit", args=[ranking_project.pk]),
        {"view_key": a.view_key, "protocol": "ranking", "shown_strength": "0"},
        HTTP_HX_REQUEST="true",
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="task"')
    assert "<html" not in body
    nxt = _current(annotator)
    assert nxt.pk != a.pk and str(nxt.view_key) in body
    assert "Undo last" in body


def test_missing_justification_returns_the_form_with_the_error(client, annotator, ranking_project):
    _pair(ranking_project)
    client.force_login(annotator)
    _task(client, ranking_project)
    a = _current(annotator)
    response = client.post(
        reverse("annotate_submit", args=[ranking_project.pk]),
        {"view_key": a.view_key, "protocol": "ranking", "shown_strength": "3"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 422
    body = response.content.decode()
    assert "Please say briefly why" in body
    assert 'value="3" checked' in body
    assert Preference.objects.count() == 0


def test_skip_and_undo_through_the_pages(client, annotator, rating_project):
    _pair(rating_project)
    client.force_login(annotator)
    _task(client, rating_project)
    first = _current(annotator)
    client.post(reverse("annotate_skip", args=[rating_project.pk]), {"view_key": first.view_key, "reason": "unsure"})
    first.refresh_from_db()
    assert first.status == "skipped" and first.skip_reason == "I can't judge this"
    _task(client, rating_project)
    second = _current(annotator)
    client.post(
        reverse("annotate_submit", args=[rating_project.pk]),
        {"view_key": second.view_key, "protocol": "rating", **{f"attr-{k}": v for k, v in ALL.items()}},
    )
    response = client.post(reverse("annotate_undo", args=[rating_project.pk]), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert "Undone" in body
    assert 'name="attr-coherence" value="4" checked' in body
    assert Rating.objects.count() == 0


def test_outsider_cannot_open_the_task_page(client, outsider, project):
    client.force_login(outsider)
    assert _task(client, project).status_code in (403, 404)


def test_home_lists_projects_with_links_by_role(client, annotator, researcher, project):
    client.force_login(annotator)
    body = client.get(reverse("home")).content.decode()
    assert "Test project" in body and reverse("annotate_task", args=[project.pk]) in body
    assert reverse("annotate_dashboard", args=[project.pk]) not in body
    client.force_login(researcher)
    body = client.get(reverse("home")).content.decode()
    assert reverse("annotate_dashboard", args=[project.pk]) in body


def test_dashboard_shows_progress_annotators_and_gold_quality(client, annotator, researcher, project):
    project.gold_rate = 1.0
    project.protocols = Project.Protocols.RANKING
    project.save()
    _pair(project, 0)
    gold_item = project.items.create(external_id="g", prompt="Gold?", role=Item.Role.GOLD)
    ga = gold_item.responses.create(external_id="a", text="right")
    gb = gold_item.responses.create(external_id="b", text="wrong")
    gold = Pair.objects.create(item=gold_item, response_a=ga, response_b=gb, gold_strength=-3)
    rater = rater_for_user(user=annotator)
    preference_submit(rater=rater, pair=gold, strength=-2)
    client.force_login(annotator)
    assert client.get(reverse("annotate_dashboard", args=[project.pk])).status_code == 403
    client.force_login(researcher)
    body = client.get(reverse("annotate_dashboard", args=[project.pk])).content.decode()
    assert "Ranking" in body and "annotator" in body
    assert "100%" in body  # the gold pair was answered on the right side
    assert reverse("annotate_pair", args=[gold.pk]) in body


def test_pair_view_shows_humans_and_judges_with_shown_order(client, researcher, annotator, project):
    pair = _pair(project)
    preference_submit(rater=rater_for_user(user=annotator), pair=pair, strength=2, shown_order="ba", justification="B is right")
    judge = judge_rater_get_or_create(name="gpt-judge")
    preference_submit(rater=judge, pair=pair, strength=-1, shown_order="ab")
    preference_submit(rater=judge, pair=pair, strength=1, shown_order="ba")
    client.force_login(researcher)
    body = client.get(reverse("annotate_pair", args=[pair.pk])).content.decode()
    assert body.count("B first") == 2 and body.count("A first") == 1
    assert "gpt-judge" in body and "annotator" in body and "B is right" in body
    assert "secret-model-alpha" in body  # researchers see which model wrote what


def _poll(client, project):
    return client.get(reverse("annotate_task", args=[project.pk]), HTTP_HX_REQUEST="true")


def test_all_done_with_no_open_claims_stops_the_poll(client, annotator, ranking_project):
    client.force_login(annotator)
    page = _task(client, ranking_project)
    assert page.status_code == 200  # a plain page load is never a 286
    body = page.content.decode()
    assert "All done here" in body and "No other annotator holds an open task" in body
    assert "hx-trigger" not in body.split('id="all-done"')[1].split(">")[0]  # nothing to poll for
    assert f'href="{reverse("annotate_task", args=[ranking_project.pk])}">Check again' in body
    response = _poll(client, ranking_project)
    assert response.status_code == 286
    assert response.content.decode().lstrip().startswith('<section id="task"')


def test_all_done_polls_while_another_annotator_holds_a_claim_and_gets_the_skipped_task(
    client, annotator, other_annotator, ranking_project
):
    ranking_project.overlap = 1
    ranking_project.save()
    pair = _pair(ranking_project)
    other = type(client)()  # a second browser
    other.force_login(other_annotator)
    _task(other, ranking_project)
    held = _current(other_annotator)
    assert held.pair_id == pair.pk

    client.force_login(annotator)
    body = _task(client, ranking_project).content.decode()
    assert "All done here" in body
    assert "Other annotators still hold <strong>1</strong> open task that you haven't done" in body
    assert "annotator2" not in body  # a count, never who
    # An event filter goes right after its event name, before modifiers (htmx syntax).
    assert 'hx-trigger="every 20s [!document.hidden], visibilitychange[!document.hidden] from:document"' in body
    waiting = _poll(client, ranking_project)
    assert waiting.status_code == 200 and "hx-trigger=\"every 20s" in waiting.content.decode()

    other.post(reverse("annotate_skip", args=[ranking_project.pk]), {"view_key": held.view_key, "reason": "unsure"})
    response = _poll(client, ranking_project)
    assert response.status_code == 200
    mine = _current(annotator)
    assert mine.pair_id == pair.pk
    body = response.content.decode()
    assert str(mine.view_key) in body and "A task has opened up" in body


def test_claims_on_tasks_already_done_do_not_keep_the_poll_going(client, annotator, other_annotator, ranking_project):
    pair = _pair(ranking_project)
    mine = assignment_claim_next(project=ranking_project, rater=rater_for_user(user=annotator))
    assert mine is not None and mine.pair_id == pair.pk
    assignment_submit_preference(rater=rater_for_user(user=annotator), view_key=mine.view_key, shown_strength=1)
    other = type(client)()
    other.force_login(other_annotator)
    _task(other, ranking_project)
    assert _current(other_annotator).pair_id == pair.pk
    client.force_login(annotator)
    assert _poll(client, ranking_project).status_code == 286
