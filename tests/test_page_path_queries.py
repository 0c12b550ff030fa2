"""The annotator's requests answer in a fixed number of SQL queries, on the htmx page path the
browser takes and on the REST queue: next task and submit, for ratings and rankings.

The figures are what these requests cost now (bench/annotate_load.py's page and REST paths);
a change that adds a query per request shows here before it shows as latency. They must not
grow with the project either: the same requests against a project with ten times the items,
and other annotators' finished work, cost the same.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotate.models import Pair, Project
from annotate.queue import assignment_claim_next, assignment_submit_preference, assignment_submit_rating
from annotate.services import rater_for_user

ALL = {"helpfulness": 3, "correctness": 2, "coherence": 4, "complexity": 1, "verbosity": 2}

# Queries per request, as PostgreSQL sees them in production (a test's transaction turns
# BEGIN/COMMIT into SAVEPOINT/RELEASE: the same count).
AUTH = 3  # session, user, the user's role (groups), once per request
PROJECT = 3  # the project (with the access check and its routing policy), its attributes, the annotator's rater
SHOW = 4  # open claim looked up, the task with its item and responses, newest done (undo), progress
# A task claimed by this request comes with its item and responses (the candidate query loads
# them): no task query of its own, so showing it is the open-claim lookup, newest done, progress.
SHOW_CLAIMED = SHOW - 1
# Begin, the candidate under SKIP LOCKED (with the task it shows), one INSERT ... SELECT that
# recounts under the lock and inserts (ON CONFLICT DO NOTHING). Was 6: the recount, a savepoint,
# the insert and its release were four statements.
CLAIM = 3
# Added by issues 12-14, one query each: the annotator's standing (annotate.training's gate, before
# any claim), the task item's checklist questions (TICK). A task just claimed brings whether its
# item has a checklist (none here): no checklist query then.
STANDING, CHECKLIST = 1, 1
# The project's routing policy: loaded with the project (select_related), with the submit's
# locked assignment too; it was one query per request (two on a ranking submit).
ROUTING = 0
PAGE_GET_CLAIM = AUTH + PROJECT + SHOW_CLAIMED + CLAIM + 1 + STANDING + ROUTING  # 14 (was 20): + the claim's commit
PAGE_GET = AUTH + PROJECT + SHOW + STANDING + CHECKLIST  # 12: a reload resumes the open claim
# Submit: begin, the assignment locked with its task (and its project's policy), the stored rows
# before, the upsert, one insert of audit events, the assignment done, commit (a ranking: the
# existing preference, and the insert in a savepoint: two more); then the next task claimed and
# shown in the same answer (the undo link is the task just stored). Was 29: the attributes read
# again, the ratings read back after the upsert, the claim's four statements and its task query.
PAGE_SUBMIT = AUTH + PROJECT + 9 + STANDING + 1 + CLAIM + 1 + 1 + 2 * ROUTING  # 22: open claim, claim, commit, progress
REST_NEXT = 10 + STANDING  # 11 (was 15): token and user in one query, role, project, rater; open claim; claim; commit; attributes
REST_SUBMIT = 12 + ROUTING  # 12 (was 13): a rating's rows are not read back after the upsert

def _fill(project: Project, items: int) -> None:
    for n in range(items):
        item = project.items.create(external_id=f"i{n}", prompt=f"Question {n}: **why**?")
        a = item.responses.create(external_id="a", text="Answer **A**\n\n```python\nprint(1)\n```", model="m1")
        b = item.responses.create(external_id="b", text="Answer B", model="m2")
        Pair.objects.create(item=item, response_a=a, response_b=b)


def _others_work(project: Project, other_annotator, tasks: int) -> None:
    """Finished tasks of another annotator, so the queries run over a table that has rows."""
    rater = rater_for_user(user=other_annotator)
    for _ in range(tasks):
        assignment = assignment_claim_next(project=project, rater=rater)
        if assignment is None:
            return
        if assignment.protocol == "rating":
            assignment_submit_rating(rater=rater, view_key=assignment.view_key, values=ALL)
        else:
            assignment_submit_preference(rater=rater, view_key=assignment.view_key, shown_strength=1, justification="x")


def _view_key(html: str) -> tuple[str, str]:
    found = re.search(r'<section id="task"[^>]*data-view-key="([^"]*)"[^>]*data-protocol="([^"]*)"', html)
    assert found and found.group(1), "no task on the page"
    return found.group(1), found.group(2)


def _form(view_key: str, protocol: str) -> dict:
    form = {"view_key": view_key, "protocol": protocol, "time_on_task_ms": "1200"}
    if protocol == "rating":
        form.update({f"attr-{name}": str(value) for name, value in ALL.items()})
    else:
        form.update({"shown_strength": "2", "justification": "A answers it."})
    return form


@pytest.mark.parametrize("protocols", [Project.Protocols.RATING, Project.Protocols.RANKING])
@pytest.mark.parametrize("items", [3, 30])
def test_page_path_next_and_submit_take_a_fixed_number_of_queries(
    project, annotator, other_annotator, django_assert_max_num_queries, protocols, items
):
    project.protocols = protocols
    project.save()
    _fill(project, items)
    _others_work(project, other_annotator, tasks=items)
    rater_for_user(user=annotator)  # made on the annotator's first visit; every later one reads it
    client = Client()
    client.force_login(annotator)
    url = reverse("annotate_task", args=[project.pk])
    with django_assert_max_num_queries(PAGE_GET_CLAIM, info="task page, full, claims a task"):
        page = client.get(url)
    assert page.status_code == 200
    with django_assert_max_num_queries(PAGE_GET, info="task page, htmx partial, resumes the claim"):
        partial = client.get(url, HTTP_HX_REQUEST="true")
    view_key, protocol = _view_key(partial.content.decode())
    submit_url = reverse("annotate_submit", args=[project.pk])
    # htmx's own request: the CSRF token in a header, the answer the next task's partial.
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(annotator)
    token = re.search(r'"X-CSRFToken": "([^"]+)"', csrf_client.get(url).content.decode())
    assert token
    with django_assert_max_num_queries(PAGE_SUBMIT, info=f"submit {protocol} and the next task"):
        answer = csrf_client.post(submit_url, _form(view_key, protocol), HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=token.group(1))
    assert answer.status_code == 200
    assert "Saved." in answer.content.decode()
    assert _view_key(answer.content.decode())[0] != view_key


@pytest.mark.parametrize("protocols", [Project.Protocols.RATING, Project.Protocols.RANKING])
@pytest.mark.parametrize("items", [3, 30])
def test_rest_next_and_submit_take_a_fixed_number_of_queries(
    project, annotator, other_annotator, django_assert_max_num_queries, protocols, items
):
    project.protocols = protocols
    project.save()
    _fill(project, items)
    _others_work(project, other_annotator, tasks=items)
    rater_for_user(user=annotator)
    api = APIClient()
    # Token authentication as the load bench and API clients use it (force_authenticate would
    # skip the token's query).
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=annotator).key}")
    with django_assert_max_num_queries(REST_NEXT, info="REST next"):
        task = api.post(f"/api/projects/{project.pk}/queue/next/", {}, format="json").json()["task"]
    body: dict = {"view_key": task["view_key"]}
    if task["protocol"] == "rating":
        body["values"] = ALL
    else:
        body["shown_strength"], body["justification"] = 1, "x"
    with django_assert_max_num_queries(REST_SUBMIT, info=f"REST submit {task['protocol']}"):
        answer = api.post("/api/queue/submit/", body, format="json")
    assert answer.status_code == 201, answer.content
