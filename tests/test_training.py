"""The training round, the qualification bar and the continuous check (annotate.training), through
the pages an annotator and a researcher use."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotate import training
from annotate.models import Assignment, Item, Pair, Preference, Project, Standing
from annotate.services import item_create, rater_for_user
from annotate.verdicts import stored_strength

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


def _gold(project: Project, n: int, strength: int = -2, guideline: str = "") -> Item:
    return item_create(
        project=project, external_id=f"g{n}", prompt=f"Gold question {n}?", role=Item.Role.GOLD,
        metadata={"guideline": guideline} if guideline else {},
        responses=[{"external_id": "a", "text": f"Right {n}."}, {"external_id": "b", "text": f"Wrong {n}."}],
        gold={"pairs": [{"pair": ["a", "b"], "strength": strength}]},
    )


def _task_item(project: Project, n: int) -> Item:
    return item_create(
        project=project, external_id=f"t{n}", prompt=f"Task {n}?",
        responses=[{"external_id": "a", "text": f"One {n}."}, {"external_id": "b", "text": f"Two {n}."}],
    )


@pytest.fixture
def campaign(project: Project) -> Project:
    project.protocols = Project.Protocols.RANKING
    project.training_size = 2
    project.qualification_bar = 0.5
    project.gold_window = 2
    project.save()
    for n in range(4):
        _gold(project, n, guideline="Arithmetic: **the correct sum wins**, whatever the style.")
    for n in range(3):
        _task_item(project, n)
    return project


def _held(annotator) -> Assignment:
    return Assignment.objects.filter(rater__user=annotator, status="claimed").latest("claimed_at")


def _answer(client, project: Project, annotator, *, right: bool, justification: str = "Because."):
    """Submit the held ranking task through the htmx page: the gold's side when `right`, the other side if not."""
    held = _held(annotator)
    gold = held.pair.gold_strength if held.pair.gold_strength is not None else -2
    stored = gold if right else -gold
    shown = stored_strength(stored, held.shown_order)
    return client.post(
        reverse("annotate_submit", args=[project.pk]),
        {"view_key": held.view_key, "protocol": "ranking", "shown_strength": shown, "justification": justification},
        **HX,
    )


def test_training_round_shows_the_expected_answer_then_qualifies(client, annotator, campaign: Project):
    client.force_login(annotator)
    first = client.get(reverse("annotate_task", args=[campaign.pk]))
    body = first.content.decode()
    assert "Training task 1 of 2" in body
    assert _held(annotator).training and _held(annotator).pair.item.role == "gold"
    feedback = _answer(client, campaign, annotator, right=False).content.decode()
    assert "Your answer differs from the expected one" in feedback
    assert "A is better" in feedback or "B is better" in feedback
    assert "<strong>the correct sum wins</strong>" in feedback  # the item's guideline passage, as markdown
    assert 'id="training-continue"' in feedback
    # Its expected answer has been shown: no undo of a training answer.
    undo = client.post(reverse("annotate_undo", args=[campaign.pk]), {}, **HX).content.decode()
    assert "training answer stays as given" in undo
    nxt = client.get(reverse("annotate_task", args=[campaign.pk]) + "?after=feedback", **HX).content.decode()
    assert "Training task 2 of 2" in nxt
    done = _answer(client, campaign, annotator, right=True).content.decode()
    assert "Your answer matches the expected one" in done and "you are in the main queue" in done
    rater = rater_for_user(user=annotator)
    state = training.qualification_state(rater, campaign)
    assert (state.state, state.training_passed, state.training_done) == ("qualified", 1, 2)
    main = client.get(reverse("annotate_task", args=[campaign.pk]), **HX).content.decode()
    assert "Training task" not in main
    assert not _held(annotator).training


def test_below_the_bar_in_training_holds_the_annotator_back(client, annotator, campaign: Project):
    campaign.qualification_bar = 1.0
    campaign.save()
    client.force_login(annotator)
    client.get(reverse("annotate_task", args=[campaign.pk]))
    _answer(client, campaign, annotator, right=True)
    client.get(reverse("annotate_task", args=[campaign.pk]), **HX)
    last = _answer(client, campaign, annotator, right=False).content.decode()
    assert "fewer answers matched" in last
    page = client.get(reverse("annotate_task", args=[campaign.pk])).content.decode()
    assert "Not open to you right now" in page and 'id="task-form"' not in page
    assert training.qualification_state(rater_for_user(user=annotator), campaign).state == "failed"


def test_plain_form_training_submit_lands_on_the_feedback_page(client, annotator, campaign: Project):
    client.force_login(annotator)
    client.get(reverse("annotate_task", args=[campaign.pk]))
    held = _held(annotator)
    answer = client.post(reverse("annotate_submit", args=[campaign.pk]), {
        "view_key": held.view_key, "protocol": "ranking",
        "shown_strength": stored_strength(held.pair.gold_strength, held.shown_order), "justification": "x"})
    assert answer.status_code == 302
    assert answer["Location"] == reverse("annotate_feedback", args=[campaign.pk, held.view_key])
    page = client.get(answer["Location"]).content.decode()
    assert "Your answer matches the expected one" in page


def _qualify(client, project: Project, annotator) -> None:
    client.get(reverse("annotate_task", args=[project.pk]), **HX)
    for _ in range(project.training_size):
        _answer(client, project, annotator, right=True)
        client.get(reverse("annotate_task", args=[project.pk]), **HX)


def test_continuous_check_pauses_flags_and_the_researcher_decides(client, annotator, researcher, campaign: Project):
    campaign.gold_rate = 1.0  # every main-queue task a gold one while gold lasts
    campaign.save()
    client.force_login(annotator)
    _qualify(client, campaign, annotator)
    rater = rater_for_user(user=annotator)
    assert training.current_state(campaign, rater) == "qualified"
    # Two main-queue gold tasks (the window), both wrong: 0 of 2 < 0.5.
    for _ in range(2):
        assert _held(annotator).pair.item.role == "gold" and not _held(annotator).training
        _answer(client, campaign, annotator, right=False)
    assert training.current_state(campaign, rater) == "paused"
    page = client.get(reverse("annotate_task", args=[campaign.pk])).content.decode()
    assert "Your work here is paused" in page
    client.force_login(researcher)
    dashboard = client.get(reverse("annotate_dashboard", args=[campaign.pk])).content.decode()
    assert "Flagged:" in dashboard and "Paused by the continuous check" in dashboard
    url = reverse("annotate_standing_decide", args=[campaign.pk, rater.pk])
    assert client.post(url, {"decision": "exclude", "note": "clicked through"}).status_code == 302
    assert Standing.objects.get(rater=rater).state == "excluded"
    assert Preference.objects.filter(rater=rater).count() == 4  # nothing deleted
    assert list(training.excluded_raters(campaign).values_list("rater", flat=True)) == [rater.pk]
    client.post(url, {"decision": "reinstate"})
    standing = Standing.objects.get(rater=rater)
    assert standing.state == "qualified" and standing.decided_by == researcher
    # A fresh window: the two old misses are not counted against them again.
    assert training.qualification_state(rater, campaign).recent_gold == 0
    client.post(url, {"decision": "remove"})
    assert Standing.objects.get(rater=rater).state == "removed"
    assert Preference.objects.filter(rater=rater).count() == 4
    bad = client.post(url, {"decision": "delete"}, follow=True).content.decode()
    assert "decision must be one of" in bad


def test_annotators_cannot_decide(client, annotator, other_annotator, campaign: Project):
    client.force_login(other_annotator)
    client.get(reverse("annotate_task", args=[campaign.pk]))
    _answer(client, campaign, other_annotator, right=True)
    rater = rater_for_user(user=other_annotator)
    client.force_login(annotator)
    answer = client.post(reverse("annotate_standing_decide", args=[campaign.pk, rater.pk]), {"decision": "reinstate"})
    assert answer.status_code == 403


def test_a_project_without_training_goes_straight_to_the_queue(client, annotator, project: Project):
    project.protocols = Project.Protocols.RANKING
    project.save()
    _task_item(project, 0)
    client.force_login(annotator)
    body = client.get(reverse("annotate_task", args=[project.pk])).content.decode()
    assert 'id="task-form"' in body and "Training task" not in body
    assert not Standing.objects.exists()


def test_training_without_enough_gold_settles_on_what_was_done(client, annotator, project: Project):
    project.protocols = Project.Protocols.RANKING
    project.training_size = 5
    project.qualification_bar = 0.5
    project.save()
    _gold(project, 0)
    _task_item(project, 0)
    client.force_login(annotator)
    client.get(reverse("annotate_task", args=[project.pk]), **HX)
    _answer(client, project, annotator, right=True)
    nxt = client.get(reverse("annotate_task", args=[project.pk]), **HX).content.decode()
    assert 'id="task-form"' in nxt and "Training task" not in nxt
    assert _held(annotator).pair.item.external_id == "t0"


def test_queue_api_goes_through_the_same_gate(annotator, campaign: Project):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(annotator)
    first = api.post(f"/api/projects/{campaign.pk}/queue/next/").json()
    assert first["training"] is True and first["standing"] == "training"
    held = _held(annotator)
    stored = held.pair.gold_strength
    answer = api.post("/api/queue/submit/", {"view_key": str(held.view_key), "justification": "x",
                                             "shown_strength": stored_strength(stored, held.shown_order)}, format="json")
    assert answer.status_code == 201, answer.content
    assert answer.json()["training_feedback"]["passed"] is True
    assert Pair.objects.filter(item__role="gold").count() == 4


def test_an_excluded_annotator_is_left_out_of_reports_and_exports_and_kept(annotator, other_annotator, researcher, project: Project):
    from annotate.services import preference_submit
    from exports.selectors import ExportFilters, annotation_rows, pair_records
    from reports.selectors import annotations_table

    project.protocols = Project.Protocols.RANKING
    project.save()
    item = _task_item(project, 0)
    pair = item.pairs.get()
    alice, bob = rater_for_user(user=annotator), rater_for_user(user=other_annotator)
    preference_submit(rater=alice, pair=pair, strength=-2)
    preference_submit(rater=bob, pair=pair, strength=1)
    assert set(annotations_table(project)["rater"]) == {alice.label, bob.label}
    training.standing_decide(project=project, rater=bob, decision="exclude", user=researcher)
    assert set(annotations_table(project)["rater"]) == {alice.label}
    rows = list(annotation_rows(project, ExportFilters()))
    assert [r["rater_name"] for r in rows] == [alice.name]
    (record,) = pair_records(project, ExportFilters())
    assert [v.rater for v in record.votes] == [alice.name]
    assert Preference.objects.filter(rater=bob).exists()  # kept
    training.standing_decide(project=project, rater=bob, decision="reinstate", user=researcher)
    assert len(list(annotation_rows(project, ExportFilters()))) == 2


def test_the_settings_are_in_the_projects_api(researcher, project: Project):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(researcher)
    answer = api.patch(f"/api/projects/{project.pk}/", {
        "training_size": 5, "qualification_bar": 0.8, "gold_window": 20, "review_agreement_below": 0.6,
        "gold_source": "adjudicated"}, format="json")
    assert answer.status_code == 200, answer.content
    body = api.get(f"/api/projects/{project.pk}/").json()
    assert (body["training_size"], body["qualification_bar"], body["gold_window"]) == (5, 0.8, 20)
    assert (body["review_agreement_below"], body["gold_source"]) == (0.6, "adjudicated")
    bad = api.patch(f"/api/projects/{project.pk}/", {"qualification_bar": 1.5, "gold_window": 0}, format="json")
    assert bad.status_code == 400 and set(bad.json()) >= {"qualification_bar", "gold_window"}


def test_exclude_and_remove_free_the_tasks_in_hand_and_remove_ends_the_membership_softly(
    client, annotator, researcher, campaign: Project
):
    from annotate.access import projects_visible
    from annotate.models import Membership

    client.force_login(annotator)
    _qualify(client, campaign, annotator)
    rater = rater_for_user(user=annotator)
    held = _held(annotator)  # a main-queue task in hand when the researcher decides
    assert not held.training
    kept = Preference.objects.filter(rater=rater).count()
    training.standing_decide(project=campaign, rater=rater, decision="exclude", user=researcher)
    held.refresh_from_db()
    # Back to the pool now, not when the claim times out: their queue is closed.
    assert held.status == "expired"
    assert Membership.objects.filter(project=campaign, user=annotator).exists()  # excluded, still a member

    training.standing_decide(project=campaign, rater=rater, decision="reinstate", user=researcher)
    client.get(reverse("annotate_task", args=[campaign.pk]))
    held = _held(annotator)
    training.standing_decide(project=campaign, rater=rater, decision="remove", user=researcher, note="spam")
    held.refresh_from_db()
    assert held.status == "expired"
    # "Remove" is the "delete", done softly: out of the project, every annotation kept
    # and left out of gold, reports and exports.
    assert not Membership.objects.filter(project=campaign, user=annotator).exists()
    assert campaign not in projects_visible(annotator)
    assert Preference.objects.filter(rater=rater).count() == kept
    assert list(training.excluded_raters(campaign).values_list("rater", flat=True)) == [rater.pk]
    assert client.get(reverse("annotate_task", args=[campaign.pk])).status_code == 404
    # The researcher still sees the decision, and reinstating brings the annotator back in.
    client.force_login(researcher)
    dashboard = client.get(reverse("annotate_dashboard", args=[campaign.pk])).content.decode()
    assert "Removed (annotations kept" in dashboard and "spam" in dashboard
    training.standing_decide(project=campaign, rater=rater, decision="reinstate", user=researcher)
    assert Membership.objects.get(project=campaign, user=annotator).role == "annotator"
    assert training.current_state(campaign, rater) == "qualified"


def test_a_researcher_cannot_remove_themselves(researcher, campaign: Project):
    from annotate.errors import ValidationError

    with pytest.raises(ValidationError, match="cannot remove yourself"):
        training.standing_decide(project=campaign, rater=rater_for_user(user=researcher), decision="remove",
                                 user=researcher)
