"""The API's list endpoints answer in a number of queries that does not grow with the rows
(annotate.access's scopes are subqueries, not per-row checks)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from annotate.models import Pair
from annotate.services import preference_submit, project_create, rater_for_user, ratings_submit
from judges.models import Judgment, Run
from judges.services import judge_create
from tests.conftest import _user

LISTS = ["projects", "items", "responses", "pairs", "raters", "ratings", "preferences", "judges", "runs"]


def _fill(n: int, researcher, annotator) -> None:
    for k in range(n):
        project = project_create(name=f"P{k}")
        project.members.add(researcher, annotator)
        item = project.items.create(external_id="q", prompt="p")
        a = item.responses.create(external_id="a", text="a", model="m1")
        b = item.responses.create(external_id="b", text="b", model="m2")
        pair = Pair.objects.create(item=item, response_a=a, response_b=b)
        judge = judge_create(name=f"j{k}", model_ref="m", owner=researcher)
        judge.shared_with.add(project)
        run = Run.objects.create(judge=judge, project=project, protocols=["ranking"], total=1)
        Judgment.objects.create(run=run, protocol="ranking", item=item, pair=pair, shown_order="ab")
        for user in (researcher, annotator):
            rater = rater_for_user(user=user)
            ratings_submit(rater=rater, response=a, values={"helpfulness": 2})
            preference_submit(rater=rater, pair=pair, strength=1)


@pytest.fixture
def users(db):
    return _user("r", "researcher"), _user("a", "annotator")


def _counts(django_assert_max_num_queries, user, limit: int) -> None:
    client = APIClient()
    client.force_authenticate(user)
    for name in LISTS:
        with django_assert_max_num_queries(limit, info=name):
            response = client.get(f"/api/{name}/")
        assert response.status_code in (200, 403), name


@pytest.mark.parametrize("n", [2, 12])
def test_list_endpoints_answer_in_a_fixed_number_of_queries(users, django_assert_max_num_queries, n):
    researcher, annotator = users
    _fill(n, researcher, annotator)
    # Session-free token auth: the role (1), the count and the page (2), prefetches (<= 2).
    _counts(django_assert_max_num_queries, researcher, 6)
    _counts(django_assert_max_num_queries, annotator, 6)
    client = APIClient()
    client.force_authenticate(researcher)
    assert client.get("/api/runs/").json()["count"] == n
    assert client.get("/api/judges/").json()["count"] == n
