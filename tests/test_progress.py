"""progress_for, one SQL statement, against counts made by hand."""

from __future__ import annotations

import uuid

from annotate.models import Assignment, Item, Pair, Project
from annotate.queue import progress_for, task_slots
from annotate.services import rater_for_user


def _item(project: Project, n: int, role: str = Item.Role.TASK) -> Pair:
    item = project.items.create(external_id=f"i{n}", prompt="q", role=role)
    a = item.responses.create(external_id="a", text="a", model="m1")
    b = item.responses.create(external_id="b", text="b", model="m2")
    return Pair.objects.create(item=item, response_a=a, response_b=b)


def _done(project: Project, rater, *, pair: Pair | None = None, response=None, status: str = "done") -> None:
    Assignment.objects.create(
        project=project, rater=rater, protocol="ranking" if pair else "rating", pair=pair, response=response,
        status=status, view_key=uuid.uuid4(), expires_at="2100-01-01T00:00:00Z",
    )


def test_progress_counts_regular_done_tasks_and_a_fair_share(project, annotator, other_annotator, researcher):
    pairs = [_item(project, n) for n in range(3)]  # 3 regular items: 6 responses, 3 pairs
    gold = _item(project, 9, role=Item.Role.GOLD)
    me, other = rater_for_user(user=annotator), rater_for_user(user=other_annotator)
    _done(project, me, pair=pairs[0])
    _done(project, me, response=pairs[0].response_a)
    _done(project, me, pair=gold)  # a main-queue gold check counts like any task (issue 12: indistinguishable)
    _done(project, me, pair=pairs[1], status="skipped")  # skipped: not done
    _done(project, other, pair=pairs[0])
    progress = progress_for(project=project, rater=me)
    # Slots: (6 responses + 3 pairs) x overlap 3 = 27; two annotators (the researcher is a
    # member but not an annotator): a share of ceil(27 / 2) = 14, capped at the 9 tasks.
    assert task_slots(project=project) == 27
    assert (progress.project_target, progress.rater_target) == (27, 9)
    assert (progress.rater_done, progress.project_done) == (3, 4)
    project.protocols = Project.Protocols.RANKING
    project.save()
    ranking_only = progress_for(project=project, rater=me)
    assert (ranking_only.project_target, ranking_only.rater_target) == (9, 3) == (task_slots(project=project), 3)
    # Done counts are of what was done, whatever the protocol setting is now.
    assert (ranking_only.rater_done, ranking_only.project_done) == (3, 4)
