from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from annotate.errors import ValidationError
from annotate.models import Pair, Preference, Rater
from annotate.services import preference_submit, ratings_submit


@pytest.fixture
def pair(project):
    item = project.items.create(external_id="i1", prompt="Say hi")
    a = item.responses.create(external_id="r1", text="Hi", model="m1")
    b = item.responses.create(external_id="r2", text="Hello there", model="m2")
    return Pair.objects.create(item=item, response_a=a, response_b=b)


def test_default_project_has_helpsteer2_attributes(project):
    assert [a.name for a in project.attributes.all()] == [
        "helpfulness", "correctness", "coherence", "complexity", "verbosity",
    ]
    assert {(a.min_value, a.max_value) for a in project.attributes.all()} == {(0, 4)}


def test_rating_outside_scale_is_rejected_with_field(project, pair):
    rater = Rater.objects.create(kind="human", name="h")
    with pytest.raises(ValidationError) as err:
        ratings_submit(rater=rater, response=pair.response_a, values={"helpfulness": 5})
    assert err.value.field == "helpfulness"
    assert "0-4" in str(err.value)


def test_human_has_one_preference_per_pair_judge_one_per_order(project, pair):
    human = Rater.objects.create(kind="human", name="h")
    judge = Rater.objects.create(kind="judge", name="j")
    _, created = preference_submit(rater=human, pair=pair, strength=-2)
    assert created
    _, created = preference_submit(rater=human, pair=pair, strength=1, shown_order="ba")
    assert not created
    preference_submit(rater=judge, pair=pair, strength=1, shown_order="ab")
    preference_submit(rater=judge, pair=pair, strength=1, shown_order="ba")
    assert Preference.objects.filter(rater=judge).count() == 2
    assert Preference.objects.filter(rater=human).count() == 1


def test_database_rejects_second_human_preference_and_bad_strength(project, pair):
    human = Rater.objects.create(kind="human", name="h")
    Preference.objects.create(rater=human, rater_kind="human", pair=pair, strength=1, shown_order="ab")
    with pytest.raises(IntegrityError), transaction.atomic():
        Preference.objects.create(rater=human, rater_kind="human", pair=pair, strength=1, shown_order="ba")
    with pytest.raises(IntegrityError), transaction.atomic():
        Preference.objects.create(
            rater=Rater.objects.create(kind="judge", name="j"), rater_kind="judge", pair=pair, strength=7
        )


def test_favicon_is_served_not_a_404(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("favicon.svg")
