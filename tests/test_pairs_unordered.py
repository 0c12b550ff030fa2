"""A pair is unordered: the database holds one of (a, b) and (b, a), every creation path maps a
mirror onto the stored pair, and the migration merges the mirrored pairs an older database has."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from annotate.models import Pair
from annotate.services import item_create, pair_get_or_create, project_create

BEFORE = [("annotate", "0003_assignment_live_count_indexes"), ("judges", "0003_run_filters")]


def _item(project, ext="q", n=2):
    return item_create(project=project, external_id=ext, prompt="Which?",
                       responses=[{"external_id": c, "text": c * 3} for c in "abc"[:n]], pairs=[])


@pytest.mark.django_db
def test_the_database_refuses_a_mirror():
    item = _item(project_create(name="p"))
    a, b = item.responses.order_by("external_id")
    Pair.objects.create(item=item, response_a=a, response_b=b)
    with pytest.raises(IntegrityError), transaction.atomic():
        Pair.objects.create(item=item, response_a=b, response_b=a)


@pytest.mark.django_db
def test_pair_get_or_create_maps_a_mirror_onto_the_stored_pair():
    item = _item(project_create(name="p"))
    a, b = item.responses.order_by("external_id")
    pair, mirrored = pair_get_or_create(item=item, response_a=a, response_b=b)
    assert not mirrored and (pair.response_a_id, pair.response_b_id) == (a.pk, b.pk)
    same, mirrored = pair_get_or_create(item=item, response_a=b, response_b=a)
    assert same.pk == pair.pk and mirrored
    assert Pair.objects.count() == 1


@pytest.mark.django_db
def test_item_create_names_both_orders_once():
    project = project_create(name="p")
    item = item_create(project=project, external_id="q", prompt="Which?",
                       responses=[{"external_id": "a", "text": "A"}, {"external_id": "b", "text": "B"}],
                       pairs=[("b", "a"), ("a", "b")])
    (pair,) = item.pairs.all()
    assert (pair.response_a.external_id, pair.response_b.external_id) == ("b", "a")  # the first named


@pytest.mark.django_db(transaction=True)
def test_migration_merges_mirrored_pairs_and_keeps_every_annotation(capsys):
    try:
        _merge_and_check(capsys)
    finally:
        # Whatever happened, leave the database at the latest state the other tests expect.
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


def _merge_and_check(capsys) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    apps = executor.loader.project_state(BEFORE).apps
    Project, Item, Response = (apps.get_model("annotate", m) for m in ("Project", "Item", "Response"))
    OldPair, Rater, Preference = (apps.get_model("annotate", m) for m in ("Pair", "Rater", "Preference"))
    Assignment = apps.get_model("annotate", "Assignment")
    Judge, Run, Judgment = (apps.get_model("judges", m) for m in ("Judge", "Run", "Judgment"))
    PromptTemplate = apps.get_model("judges", "PromptTemplate")

    project = Project.objects.create(name="old")
    item = Item.objects.create(project=project, external_id="q", prompt="Which?")
    a = Response.objects.create(item=item, external_id="a", text="A")
    b = Response.objects.create(item=item, external_id="b", text="B")
    keep = OldPair.objects.create(item=item, response_a=a, response_b=b)
    mirror = OldPair.objects.create(item=item, response_a=b, response_b=a, gold_strength=2)
    h1 = Rater.objects.create(kind="human", name="h1")
    h2 = Rater.objects.create(kind="human", name="h2")
    h3 = Rater.objects.create(kind="human", name="h3")
    j = Rater.objects.create(kind="judge", name="j")
    Preference.objects.create(rater=h1, rater_kind="human", pair=keep, strength=-2, shown_order="ab")
    Preference.objects.create(rater=h2, rater_kind="human", pair=mirror, strength=1, shown_order="ab",
                              justification="a reads better")
    Preference.objects.create(rater=j, rater_kind="judge", pair=keep, strength=-3, shown_order="ab")
    # h3 answered both the pair and its mirror (two tasks then): its later answer is its last word.
    Preference.objects.create(rater=h3, rater_kind="human", pair=keep, strength=1, shown_order="ab")
    Preference.objects.create(rater=h3, rater_kind="human", pair=mirror, strength=3, shown_order="ab")
    moved = Preference.objects.create(rater=j, rater_kind="judge", pair=mirror, strength=2, shown_order="ab",
                                      probabilities={"A": 0.1, "tie": 0.2, "B": 0.7})
    Assignment.objects.create(project=project, rater=h2, protocol="ranking", pair=mirror, status="done",
                              shown_order="ba", view_key="00000000-0000-0000-0000-000000000001",
                              expires_at=timezone.now())
    rating_t = PromptTemplate.objects.create(name="mig-r", protocol="rating", user="{response}")
    ranking_t = PromptTemplate.objects.create(name="mig-p", protocol="ranking", user="{response_first}")
    judge = Judge.objects.create(rater=j, model_ref="x", rating_template=rating_t, ranking_template=ranking_t)
    run = Run.objects.create(project=project, judge=judge)
    # The same run judged the pair and its mirror in the same presentation (a shown first).
    Judgment.objects.create(run=run, protocol="ranking", item=item, pair=keep, shown_order="ba", status="pending")
    Judgment.objects.create(run=run, protocol="ranking", item=item, pair=mirror, shown_order="ab",
                            status="ok", verdict="B", preference=moved)
    Judgment.objects.create(run=run, protocol="ranking", item=item, pair=mirror, shown_order="ba",
                            status="ok", verdict="A")

    # 0005: what was only ever a verdict is marked as one (a ternary project's preferences).
    tern = Project.objects.create(name="tern", ranking_scale="ternary")
    t_item = Item.objects.create(project=tern, external_id="t", prompt="?")
    t_pair = OldPair.objects.create(item=t_item, response_a=Response.objects.create(item=t_item, external_id="a", text="x"),
                                    response_b=Response.objects.create(item=t_item, external_id="b", text="y"))
    ternary = Preference.objects.create(rater=h1, rater_kind="human", pair=t_pair, strength=1, shown_order="ab")

    # Forward to the latest state (0004 merges; later migrations must keep what it did).
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    from annotate.models import Preference as NewPreference

    assert NewPreference.objects.get(pk=ternary.pk).verdict_only
    assert not NewPreference.objects.filter(pair__item__project__name="old", verdict_only=True).exists()
    (pair,) = Pair.objects.filter(item__project__name="old")
    assert pair.pk == keep.pk and pair.gold_strength == -2
    stored = {(p.rater.name, p.shown_order): (p.strength, p.justification, p.probabilities)
              for p in pair.preferences.select_related("rater")}
    assert stored == {
        ("h1", "ab"): (-2, "", None),
        ("h2", "ba"): (-1, "a reads better", None),  # b was shown first: order ba of (a, b)
        ("h3", "ba"): (-3, "", None),
        ("j", "ab"): (-3, "", None),
        ("j", "ba"): (-2, "", {"A": 0.7, "tie": 0.2, "B": 0.1}),
    }
    assert "rater" in capsys.readouterr().out  # the replaced duplicate is printed, not silently dropped
    (assignment,) = pair.assignments.all()
    assert assignment.shown_order == "ab"
    from judges.models import Judgment as NewJudgment

    judgments = {j.shown_order: j for j in NewJudgment.objects.filter(pair=pair)}
    # The finished one of the two "a first" judgments stays, still linked to its preference.
    assert judgments["ba"].status == "ok" and judgments["ba"].preference_id == moved.pk
    assert judgments["ab"].verdict == "A"  # shown order: the same response is still first
    assert NewJudgment.objects.count() == 2
