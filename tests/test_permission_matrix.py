"""Every route x every kind of caller, generated from the URL configuration.

The routes are read from `get_resolver()`; each must have a row in EXPECTED naming, per method,
the answer each caller gets. A new route (or a new method on a class-based view) without a row
fails `test_every_route_has_an_expected_answer`, so nobody ships a page whose permissions were
never decided. Answers are classes, not exact codes: OK (the view ran: 2xx, a redirect that is
not to a login page, or a 4xx about the request body such as 400/409/422), LOGIN (redirected to
a login page), 401, 403, 404.

Callers: anonymous, a user without a role, an annotator of this project P, an annotator of
another project Q, a researcher of P (who owns judge J, shared with P), a researcher of Q, and
an admin who is a member of nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from annotate.models import Assignment, Pair, Standing
from annotate.services import project_create, rater_for_user, ratings_submit
from judges.models import Run
from judges.services import judge_create
from tests.conftest import _user

CALLERS = ("anon", "norole", "ann_this", "ann_other", "res_this", "res_other", "admin")
OK, LOGIN = "OK", "LOGIN"


def _profile(*answers: object) -> dict[str, object]:
    assert len(answers) == len(CALLERS)
    return dict(zip(CALLERS, answers, strict=True))


#                            anon   norole ann_this ann_other res_this res_other admin
PUBLIC = _profile(OK, OK, OK, OK, OK, OK, OK)
ALL_LOGIN = _profile(LOGIN, LOGIN, LOGIN, LOGIN, LOGIN, LOGIN, LOGIN)
STAFF = _profile(LOGIN, LOGIN, LOGIN, LOGIN, LOGIN, LOGIN, OK)
PAGE_ANY = _profile(LOGIN, OK, OK, OK, OK, OK, OK)
PAGE_MEMBER = _profile(LOGIN, 403, OK, 404, OK, 404, OK)
PAGE_RESEARCH_P = _profile(LOGIN, 403, 403, 404, OK, 404, OK)
PAGE_RESEARCHER = _profile(LOGIN, 403, 403, 403, OK, OK, OK)
PAGE_JUDGE = _profile(LOGIN, 403, 403, 403, OK, 404, OK)
API_ANY_ROLE = _profile(401, 403, OK, OK, OK, OK, OK)
API_MEMBER = _profile(401, 403, OK, 404, OK, 404, OK)
API_RESEARCHER = _profile(401, 403, 403, 403, OK, OK, OK)
API_RESEARCH_P = _profile(401, 403, 403, 404, OK, 404, OK)
# Researcher-only API views refuse annotators by role before looking the object up.
API_RESEARCH_OBJ = _profile(401, 403, 403, 403, OK, 404, OK)
API_JUDGE = _profile(401, 403, 403, 403, OK, 404, OK)
# A study participant's own session only (none of these callers is one).
PARTICIPANT = _profile(LOGIN, 403, 403, 403, 403, 403, 403)

# route -> {method: expected answers}; "pk" routes also say what their pk is.
EXPECTED: dict[str, dict[str, dict[str, object]]] = {
    "admin:*": {"get": STAFF},  # Django's admin site: staff only, every page behind admin_view
    "favicon.ico": {"get": PUBLIC},
    "login": {"get": PUBLIC, "post": PUBLIC, "put": PUBLIC},
    "logout": {"post": ALL_LOGIN},
    # Behind login outside DEBUG (config.docs), which is how tests run: any signed-in user.
    "schema": {"get": _profile(401, OK, OK, OK, OK, OK, OK)},
    "api-docs": {"get": PAGE_ANY},
    "api-redoc": {"get": PAGE_ANY},
    "home": {"get": PAGE_ANY},
    "import": {"get": PAGE_RESEARCHER, "post": PAGE_RESEARCHER},
    "annotate_task": {"get": PAGE_MEMBER},
    "annotate_submit": {"post": PAGE_MEMBER},
    "annotate_skip": {"post": PAGE_MEMBER},
    "annotate_undo": {"post": PAGE_MEMBER},
    "annotate_dashboard": {"get": PAGE_RESEARCH_P},
    "annotate_pair": {"get": PAGE_RESEARCH_P},
    # A training task's expected answer: only the annotator who did it (view_key is theirs).
    "annotate_feedback": {"get": _profile(LOGIN, 403, OK, 404, 404, 404, 404)},
    "annotate_standing_decide": {"post": PAGE_RESEARCH_P},
    # Adjudication: reviewers and researchers of P (annotators never see others' labels).
    "annotate_review": {"get": PAGE_RESEARCH_P},
    "annotate_review_pair": {"get": PAGE_RESEARCH_P, "post": PAGE_RESEARCH_P},
    "annotate_routing": {"get": PAGE_RESEARCH_P, "post": PAGE_RESEARCH_P},
    "annotate_panel_create": {"post": PAGE_RESEARCH_P},
    "reports:qualify": {"post": PAGE_RESEARCH_P},
    "item_checklist": {"get": PAGE_RESEARCH_P, "post": PAGE_RESEARCH_P},
    "judges:judges": {"get": PAGE_RESEARCHER, "post": PAGE_RESEARCHER},
    "judges:judge": {"get": PAGE_JUDGE, "post": PAGE_JUDGE},
    "judges:judge-template": {"post": PAGE_JUDGE},
    "judges:judge-archive": {"post": PAGE_JUDGE},
    "judges:template-preview": {"post": PAGE_JUDGE},
    "judges:runs": {"get": PAGE_RESEARCH_P, "post": PAGE_RESEARCH_P},
    "judges:probes": {"get": PAGE_RESEARCH_P, "post": PAGE_RESEARCH_P},
    "judges:checklist-generate": {"post": PAGE_RESEARCH_P},
    "judges:run": {"get": PAGE_RESEARCH_P},
    "judges:run-progress": {"get": PAGE_RESEARCH_P},
    "judges:run-cancel": {"post": PAGE_RESEARCH_P},
    "judges:run-resume": {"post": PAGE_RESEARCH_P},
    "reports:project": {"get": PAGE_RESEARCH_P},
    "reports:page": {"get": PAGE_RESEARCH_P},
    "reports:evaluators": {"get": PAGE_RESEARCHER},  # rows of the caller's own projects only
    "exports:project": {"get": PAGE_RESEARCH_P, "post": PAGE_RESEARCH_P},
    "exports:job": {"get": PAGE_RESEARCH_P},
    "exports:job_file": {"get": PAGE_RESEARCH_P},
    # Issue 12: membership and invitations (the project's researchers; the link is for anyone)...
    "project_members": {"get": PAGE_RESEARCH_P, "post": PAGE_RESEARCH_P},
    "project_member_remove": {"post": PAGE_RESEARCH_P},
    "project_invite_create": {"post": PAGE_RESEARCH_P},
    "project_invite_revoke": {"post": PAGE_RESEARCH_P},
    "invite_accept": {"get": PUBLIC, "post": PUBLIC},
    # ...and crowd studies: the study link is public (a bearer link, annotate.crowd); completing
    # and returning are for the participant the session was opened for, nobody else.
    "project_studies": {"get": PAGE_RESEARCH_P, "post": PAGE_RESEARCH_P},
    "study_close": {"post": PAGE_RESEARCH_P},
    "study_payments": {"get": PAGE_RESEARCH_P},
    "study_payments_csv": {"get": PAGE_RESEARCH_P},
    "study_entry": {"get": PUBLIC, "post": PUBLIC},
    "study_complete": {"get": PARTICIPANT},
    "study_return": {"post": PARTICIPANT},
    "study_screened_out": {"get": PARTICIPANT},
    "api-projects": {"get": API_ANY_ROLE, "post": API_RESEARCHER},
    "api-projects-import": {"post": API_RESEARCHER},
    "api-project": {"get": API_MEMBER, "put": API_RESEARCH_OBJ, "patch": API_RESEARCH_OBJ,
                    "delete": API_RESEARCH_OBJ},
    "api-items": {"get": API_RESEARCHER, "post": API_RESEARCHER},
    "api-item": {"get": API_RESEARCH_OBJ},
    "api-responses": {"get": API_RESEARCHER},
    "api-response": {"get": API_RESEARCH_OBJ},
    "api-pairs": {"get": API_RESEARCHER},
    "api-pair": {"get": API_RESEARCH_OBJ},
    "api-raters": {"get": API_ANY_ROLE},
    "api-rater": {"get": API_MEMBER},
    "api-ratings": {"get": API_ANY_ROLE, "post": API_RESEARCHER},
    "api-preferences": {"get": API_ANY_ROLE, "post": API_RESEARCHER},
    "api-queue-next": {"post": API_MEMBER},
    "api-queue-undo": {"post": API_MEMBER},
    "api-queue-submit": {"post": API_ANY_ROLE},
    "api-queue-skip": {"post": API_ANY_ROLE},
    "api-judges": {"get": API_RESEARCHER, "post": API_RESEARCHER},
    "api-judge": {"get": API_JUDGE, "patch": API_JUDGE, "delete": API_JUDGE},
    "api-judge-templates": {"get": API_JUDGE, "post": API_JUDGE},
    "api-runs": {"get": API_RESEARCHER, "post": API_RESEARCHER},
    "api-run": {"get": API_RESEARCH_P},
    "api-run-cancel": {"post": API_RESEARCH_P},
    "api-run-resume": {"post": API_RESEARCH_P},
    "api-project-report": {"get": API_RESEARCH_P},
    "api-judge-card": {"get": API_JUDGE},
    "api-evaluators": {"get": API_RESEARCHER},
    "api-project-export": {"get": API_RESEARCH_P},
}
PK_OF = {
    "api-project": "project", "api-project-report": "project", "api-project-export": "project",
    "api-item": "item", "api-response": "response", "api-pair": "pair", "api-rater": "rater",
}
IGNORED_METHODS = {"options", "head", "trace"}


def _routes(resolver: URLResolver | None = None, namespace: str = "", prefix: str = "") -> Iterator[tuple]:
    """(key, pattern text, callback, kwarg names) of every route; the admin site as one key."""
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            ns = entry.namespace
            if ns == "admin":
                yield "admin:*", "admin/", None, ()
                continue
            child_ns = f"{namespace}{ns}:" if ns else namespace
            yield from _routes(entry, child_ns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            pattern = prefix + str(entry.pattern)
            key = f"{namespace}{entry.name}" if entry.name else pattern
            yield key, pattern, entry.callback, tuple(entry.pattern.converters)


def _class_methods(callback: object) -> set[str] | None:
    """The HTTP methods a class-based view (Django or DRF) implements; None for a function view."""
    view_class = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
    if view_class is None:
        return None
    return {m for m in view_class.http_method_names if m not in IGNORED_METHODS and hasattr(view_class, m)}


def test_every_route_has_an_expected_answer():
    routes = {key: (callback, pattern) for key, pattern, callback, _ in _routes()}
    missing = sorted(set(routes) - set(EXPECTED))
    assert not missing, f"routes without an expected answer in EXPECTED: {missing}"
    stale = sorted(set(EXPECTED) - set(routes))
    assert not stale, f"EXPECTED names routes that no longer exist: {stale}"
    for key, (callback, _) in routes.items():
        methods = _class_methods(callback) if callback is not None else None
        if methods is not None:
            assert methods == set(EXPECTED[key]), f"{key}: the view answers {sorted(methods)}"


@pytest.fixture
def world(db, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    users = {
        "norole": _user("norole", None),
        "ann_this": _user("ann_this", "annotator"),
        "ann_other": _user("ann_other", "annotator"),
        "res_this": _user("res_this", "researcher"),
        "res_other": _user("res_other", "researcher"),
        "admin": _user("root", "admin", is_staff=True, is_superuser=True),
    }
    p = project_create(name="P")
    q = project_create(name="Q")
    p.members.add(users["ann_this"], users["res_this"])
    q.members.add(users["ann_other"], users["res_other"])
    item = p.items.create(external_id="q1", prompt="Say hi")
    a = item.responses.create(external_id="a", text="Hi", model="m1")
    b = item.responses.create(external_id="b", text="Hello", model="m2")
    pair = Pair.objects.create(item=item, response_a=a, response_b=b)
    q.items.create(external_id="q1", prompt="Other").responses.create(external_id="a", text="x")
    rater = rater_for_user(user=users["ann_this"])
    ratings_submit(rater=rater, response=a, values={"helpfulness": 3})
    # A training task ann_this has done, and their standing (annotate.training's routes).
    training_task = Assignment.objects.create(
        project=p, rater=rater, protocol="rating", response=b, status="done", training=True,
        view_key=uuid.uuid4(), expires_at=timezone.now(),
    )
    Standing.objects.create(project=p, rater=rater, state="paused")
    judge = judge_create(name="j", model_ref="/nowhere", owner=users["res_this"])
    judge.shared_with.add(p)
    run = Run.objects.create(judge=judge, project=p, protocols=["rating"], status="done", total=0)
    job_id, file_name = "0" * 31 + "1", "P-annotations.jsonl"
    folder = tmp_path / "exports" / job_id
    (folder / "out").mkdir(parents=True)
    (folder / "out" / file_name).write_text("{}\n")
    (folder / "status.json").write_text(json.dumps(
        {"id": job_id, "project_id": p.pk, "state": "done", "files": [file_name], "done": 1, "total": 1,
         "rows": {}, "error": "", "format": "annotations", "user_id": users["res_this"].pk, "started_at": 0}
    ))
    from annotate.crowd import study_create, study_token
    from annotate.members import invite_create, invite_token

    study = study_create(project=p, creator=users["res_this"], name="S", completion_code="C")
    invite = invite_create(inviter=users["res_this"], project=p, role="annotator")
    objects = {"project": p.pk, "item": item.pk, "response": a.pk, "pair": pair.pk, "rater": rater.pk}
    args = {"project_id": p.pk, "judge_id": judge.pk, "run_id": run.pk, "pair_id": pair.pk,
            "job_id": job_id, "name": file_name, "page": "agreement", "item_id": item.pk,
            "user_id": users["ann_this"].pk, "invite_id": invite.pk, "invite_token": invite_token(invite),
            "study_id": study.pk, "study_token": study_token(study),
            "view_key": training_task.view_key, "rater_id": rater.pk}
    return {"users": users, "objects": objects, "args": args}


def _classify(response) -> object:
    code = response.status_code
    if code in (301, 302, 303) and "login" in response.get("Location", ""):
        return LOGIN
    if code in (401, 403, 404, 405):
        return code
    assert code < 500, f"{code}: {response.content[:300]!r}"
    return OK


def _url(key: str, pattern: str, kwargs: tuple, world: dict) -> str:
    if key == "admin:*":
        return reverse("admin:index")
    if key == pattern:  # an unnamed route: a fixed path
        return "/" + pattern
    values = {name: (world["objects"][PK_OF[key]] if name == "pk" else world["args"][name]) for name in kwargs}
    return reverse(key, kwargs=values)


ROUTES = sorted({(key, pattern, kwargs) for key, pattern, _, kwargs in _routes()})
CASES = [(key, pattern, kwargs, method) for key, pattern, kwargs in ROUTES for method in EXPECTED.get(key, {})]


@pytest.mark.parametrize(("key", "pattern", "kwargs", "method"), CASES, ids=[f"{c[3]} {c[0]}" for c in CASES])
def test_route_answers_each_caller_as_expected(world, key, pattern, kwargs, method):
    url = _url(key, pattern, kwargs, world)
    got: dict[str, object] = {}
    for caller in CALLERS:
        client = Client()
        if caller != "anon":
            client.force_login(world["users"][caller])
        # Each caller sees the world as it was: what one caller's request changed is undone.
        with transaction.atomic():
            send = getattr(client, method)
            response = send(url) if method == "get" else send(url, data={}, content_type="application/json") \
                if url.startswith("/api/") else send(url, data={})
            got[caller] = _classify(response)
            transaction.set_rollback(True)
    assert got == EXPECTED[key][method], f"{method.upper()} {url}"


# With P archived, what its researcher still gets: reading, reports and exports stay; new work
# (the queue, a run, settings changes, imports) is refused with 403 and the reason.
ARCHIVED_REFUSED = {
    ("annotate_task", "get"), ("annotate_submit", "post"), ("annotate_skip", "post"), ("annotate_undo", "post"),
    ("api-queue-next", "post"), ("api-queue-undo", "post"), ("judges:runs", "post"), ("judges:probes", "post"),
    ("api-project", "put"), ("api-project", "patch"), ("annotate_routing", "post"), ("annotate_panel_create", "post"),
    ("reports:qualify", "post"),
    # Membership changes and new studies are new work; reading old studies' payments is not.
    ("project_members", "get"), ("project_members", "post"), ("project_member_remove", "post"),
    ("project_invite_create", "post"), ("project_invite_revoke", "post"), ("project_studies", "post"),
    ("annotate_feedback", "get"), ("annotate_standing_decide", "post"), ("annotate_review_pair", "post"),
}
P_ROUTES = [c for c in CASES if {"project_id", "run_id", "job_id"} & set(c[2]) or PK_OF.get(c[0]) == "project"]


@pytest.mark.parametrize(("key", "pattern", "kwargs", "method"), P_ROUTES, ids=[f"{c[3]} {c[0]}" for c in P_ROUTES])
def test_an_archived_project_keeps_its_history_and_takes_no_new_work(world, key, pattern, kwargs, method):
    from annotate.models import Project

    Project.objects.filter(pk=world["objects"]["project"]).update(archived_at="2026-01-01T00:00:00Z")
    url = _url(key, pattern, kwargs, world)
    client = Client()
    client.force_login(world["users"]["res_this"])
    send = getattr(client, method)
    response = send(url) if method == "get" else send(url, data={}, content_type="application/json") \
        if url.startswith("/api/") else send(url, data={})
    expected = 403 if (key, method) in ARCHIVED_REFUSED else OK
    assert _classify(response) == expected, f"{method.upper()} {url}"
    if expected == 403 and not url.startswith("/api/"):
        assert "archived" in response.content.decode()
