from __future__ import annotations

import random
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from annotate.errors import ValidationError
from annotate.models import Assignment, Item, Pair, Preference, Project, Rating
from annotate.queue import (
    AssignmentNotFound,
    AssignmentStale,
    QueueError,
    assignment_claim_next,
    assignment_skip,
    assignment_submit_preference,
    assignment_submit_rating,
    assignment_undo,
    progress_for,
)
from annotate.roles import user_set_role
from annotate.services import rater_for_user

ALL_FOUR = {"helpfulness": 3, "correctness": 2, "coherence": 4, "complexity": 1, "verbosity": 2}


def populate(project: Project, *, items: int = 3, role: str = Item.Role.TASK, prefix: str = "i") -> None:
    for n in range(items):
        item = project.items.create(external_id=f"{prefix}{n}", prompt=f"Prompt {n}", role=role)
        gold = ALL_FOUR if role != Item.Role.TASK else None
        a = item.responses.create(external_id="a", text=f"Answer A{n}", model="model-x", gold_ratings=gold)
        b = item.responses.create(external_id="b", text=f"Answer B{n}", model="model-y", gold_ratings=gold)
        Pair.objects.create(
            item=item, response_a=a, response_b=b, gold_strength=-2 if role != Item.Role.TASK else None
        )


def annotator_rater(name: str, project: Project):
    user = get_user_model().objects.create_user(username=name, password="pw")
    user_set_role(user=user, role="annotator")
    project.members.add(user)
    return rater_for_user(user=user)


def finish(assignment: Assignment, rater) -> None:
    if assignment.protocol == "rating":
        assignment_submit_rating(rater=rater, view_key=assignment.view_key, values=ALL_FOUR)
    else:
        assignment_submit_preference(rater=rater, view_key=assignment.view_key, shown_strength=1)


@pytest.fixture
def rater(project, annotator):
    return rater_for_user(user=annotator)


def test_reload_shows_the_same_open_task(project, rater):
    populate(project)
    first = assignment_claim_next(project=project, rater=rater)
    again = assignment_claim_next(project=project, rater=rater)
    assert first is not None and again is not None
    assert first.pk == again.pk


def test_annotator_never_gets_a_task_twice_and_finishes(project, rater):
    populate(project, items=3)  # 6 responses + 3 pairs = 9 tasks
    seen = set()
    while (a := assignment_claim_next(project=project, rater=rater)) is not None:
        key = (a.protocol, a.response_id or a.pair_id)
        assert key not in seen
        seen.add(key)
        finish(a, rater)
    assert len(seen) == 9
    assert Rating.objects.filter(rater=rater).count() == 6 * 5
    assert Preference.objects.filter(rater=rater).count() == 3


def test_no_task_gets_more_than_overlap_annotators(project):
    project.overlap = 2
    project.protocols = Project.Protocols.RANKING
    project.save()
    populate(project, items=2)
    raters = [annotator_rater(f"r{n}", project) for n in range(5)]
    for rater in raters:
        while (a := assignment_claim_next(project=project, rater=rater)) is not None:
            finish(a, rater)
    for pair in Pair.objects.all():
        assert Preference.objects.filter(pair=pair).count() == 2
    # 2 pairs x overlap 2 = 4 slots: the first two annotators take all.
    assert Assignment.objects.filter(status="done").count() == 4


def test_expired_claim_goes_back_to_the_pool(project):
    project.overlap = 1
    project.protocols = Project.Protocols.RANKING
    project.save()
    populate(project, items=1)
    first, second = annotator_rater("r1", project), annotator_rater("r2", project)
    held = assignment_claim_next(project=project, rater=first)
    assert held is not None
    assert assignment_claim_next(project=project, rater=second) is None
    later = timezone.now() + timedelta(seconds=project.claim_seconds + 1)
    taken = assignment_claim_next(project=project, rater=second, now=later)
    assert taken is not None and taken.pair_id == held.pair_id
    finish(taken, second)
    # The first annotator comes back too late: told clearly, nothing stored.
    with pytest.raises(AssignmentStale):
        assignment_submit_preference(rater=first, view_key=held.view_key, shown_strength=1, now=later)
    assert Preference.objects.count() == 1
    assert assignment_claim_next(project=project, rater=first, now=later) is None


def test_late_submit_is_kept_when_the_task_still_has_room(project, rater):
    populate(project, items=1)
    held = assignment_claim_next(project=project, rater=rater)
    later = timezone.now() + timedelta(seconds=project.claim_seconds + 5)
    finish_result = (
        assignment_submit_rating(rater=rater, view_key=held.view_key, values=ALL_FOUR, now=later)
        if held.protocol == "rating"
        else assignment_submit_preference(rater=rater, view_key=held.view_key, shown_strength=0, now=later)
    )
    assert not finish_result.duplicate
    held.refresh_from_db()
    assert held.status == "done"


def test_double_submit_stores_one_annotation(project, rater):
    project.protocols = Project.Protocols.RANKING
    project.save()
    populate(project, items=1)
    a = assignment_claim_next(project=project, rater=rater)
    first = assignment_submit_preference(rater=rater, view_key=a.view_key, shown_strength=-1)
    again = assignment_submit_preference(rater=rater, view_key=a.view_key, shown_strength=3, justification="x")
    assert not first.duplicate and again.duplicate
    assert "once" in again.message
    assert Preference.objects.get().strength in (-1, 1)


def test_shown_order_is_stored_and_strength_converted(project):
    project.protocols = Project.Protocols.RANKING
    project.save()
    populate(project, items=6)
    rater = annotator_rater("r1", project)
    orders = []
    rng = random.Random(4)
    while (a := assignment_claim_next(project=project, rater=rater, rng=rng)) is not None:
        assignment_submit_preference(rater=rater, view_key=a.view_key, shown_strength=-1)  # left better
        orders.append(a.shown_order)
        pref = Preference.objects.get(pair_id=a.pair_id)
        assert pref.shown_order == a.shown_order
        assert pref.strength == (-1 if a.shown_order == "ab" else 1)
    assert set(orders) == {"ab", "ba"}


def test_justification_required_above_threshold(project, rater):
    project.protocols = Project.Protocols.RANKING
    project.save()
    populate(project, items=1)
    a = assignment_claim_next(project=project, rater=rater)
    with pytest.raises(ValidationError) as err:
        assignment_submit_preference(rater=rater, view_key=a.view_key, shown_strength=3)
    assert err.value.field == "justification"
    assignment_submit_preference(rater=rater, view_key=a.view_key, shown_strength=3, justification="Correct code")
    assert Preference.objects.get().justification == "Correct code"


def test_rating_requires_every_attribute(project, rater):
    project.protocols = Project.Protocols.RATING
    project.save()
    populate(project, items=1)
    a = assignment_claim_next(project=project, rater=rater)
    with pytest.raises(ValidationError) as err:
        assignment_submit_rating(rater=rater, view_key=a.view_key, values={"helpfulness": 2})
    assert err.value.field == "correctness"
    assert Rating.objects.count() == 0


def test_skip_frees_the_slot_and_is_never_served_again(project):
    project.overlap = 1
    project.protocols = Project.Protocols.RANKING
    project.save()
    populate(project, items=1)
    first, second = annotator_rater("r1", project), annotator_rater("r2", project)
    a = assignment_claim_next(project=project, rater=first)
    with pytest.raises(ValidationError):
        assignment_skip(rater=first, view_key=a.view_key, reason=" ")
    assignment_skip(rater=first, view_key=a.view_key, reason="I can't judge this")
    assert assignment_claim_next(project=project, rater=first) is None
    assert assignment_claim_next(project=project, rater=second) is not None


def test_undo_only_the_newest_and_it_comes_back_prefilled(project, rater):
    project.protocols = Project.Protocols.RATING
    project.save()
    populate(project, items=1)
    a1 = assignment_claim_next(project=project, rater=rater)
    finish(a1, rater)
    a2 = assignment_claim_next(project=project, rater=rater)
    finish(a2, rater)
    with pytest.raises(QueueError):
        assignment_undo(project=project, rater=rater, view_key=a1.view_key)
    undone = assignment_undo(project=project, rater=rater, view_key=a2.view_key)
    assert undone.draft == ALL_FOUR
    assert Rating.objects.filter(response_id=a2.response_id).count() == 0
    # The old view is dead: a replay stores nothing.
    with pytest.raises(AssignmentNotFound):
        assignment_submit_rating(rater=rater, view_key=a2.view_key, values=ALL_FOUR)
    assert assignment_claim_next(project=project, rater=rater).pk == a2.pk
    assignment_submit_rating(rater=rater, view_key=undone.view_key, values={**ALL_FOUR, "helpfulness": 0})
    assert Rating.objects.get(response_id=a2.response_id, attribute__name="helpfulness").value == 0


def test_undo_of_a_ranking_restores_the_shown_strength(project, rater):
    project.protocols = Project.Protocols.RANKING
    project.save()
    populate(project, items=1)
    a = assignment_claim_next(project=project, rater=rater)
    assignment_submit_preference(rater=rater, view_key=a.view_key, shown_strength=-3, justification="why")
    undone = assignment_undo(project=project, rater=rater)
    assert undone.draft == {"shown_strength": -3, "justification": "why"}
    assert Preference.objects.count() == 0


def test_other_annotators_view_key_is_not_found(project, rater, other_annotator):
    populate(project, items=1)
    a = assignment_claim_next(project=project, rater=rater)
    with pytest.raises(AssignmentNotFound):
        assignment_skip(rater=rater_for_user(user=other_annotator), view_key=a.view_key, reason="x")


def test_gold_is_mixed_in_at_the_rate_and_not_capped(project):
    project.gold_rate = 1.0
    project.overlap = 1
    project.save()
    populate(project, items=2)
    populate(project, items=1, role=Item.Role.GOLD, prefix="g")
    raters = [annotator_rater(f"r{n}", project) for n in range(3)]
    for rater in raters:
        a = assignment_claim_next(project=project, rater=rater)
        assert (a.response or a.pair).item.role == Item.Role.GOLD
        finish(a, rater)


def test_checks_stop_when_regular_tasks_are_done(project, rater):
    project.attention_rate = 0.5
    project.protocols = Project.Protocols.RANKING
    project.save()
    populate(project, items=1)
    populate(project, items=5, role=Item.Role.ATTENTION, prefix="att")
    served = []
    rng = random.Random(1)
    while (a := assignment_claim_next(project=project, rater=rater, rng=rng)) is not None:
        served.append(a.pair.item.role)
        finish(a, rater)
    assert served[-1] == Item.Role.TASK
    assert served.count(Item.Role.TASK) == 1


def test_same_rater_both_protocols_keeps_an_item_together(project, rater):
    project.same_rater_both_protocols = True
    project.save()
    populate(project, items=3)
    last_item = Item.objects.order_by("pk").last()
    # The annotator has rated one response of the last item (lowest ids would come first otherwise).
    started = Assignment.objects.create(
        project=project, rater=rater, protocol="rating", response=last_item.responses.first(),
        view_key=uuid.uuid4(), expires_at=timezone.now() + timedelta(minutes=5),
    )
    finish(started, rater)
    for seed in range(2):  # the other response and the pair, in either order
        nxt = assignment_claim_next(project=project, rater=rater, rng=random.Random(seed))
        assert (nxt.response or nxt.pair).item == last_item
        finish(nxt, rater)
    nxt = assignment_claim_next(project=project, rater=rater)
    assert (nxt.response or nxt.pair).item != last_item


def test_progress_counts_done_against_targets(project, rater, other_annotator):
    populate(project, items=2)  # 4 responses + 2 pairs = 6 tasks x overlap 3 = 18 slots
    a = assignment_claim_next(project=project, rater=rater)
    finish(a, rater)
    progress = progress_for(project=project, rater=rater)
    assert progress.project_target == 18
    assert progress.project_done == 1 and progress.rater_done == 1
    assert progress.rater_target == 6  # 18 slots over 2 annotators, capped at 6 tasks
