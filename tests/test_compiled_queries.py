"""annotate.compiled: a query compiled once per process answers as the ORM does, for every
request's own values, and a shape it cannot keep still answers through the ORM."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.backends.db import SessionStore as DjangoDbSessionStore
from django.db.models import Exists, OuterRef
from django.utils import timezone

from annotate import compiled
from annotate.models import ChecklistQuestion, Pair, Response
from config.sessions import SessionStore
from tests.test_queue import populate


def _pairs_with_checklist(item_id: int):
    return (
        Pair.objects.filter(item_id=item_id).select_related("item", "response_a", "response_b")
        .annotate(has_checklist=Exists(ChecklistQuestion.objects.filter(item=OuterRef("item"), retired_at__isnull=True)))
        .order_by("pk")[:1]
    )


def _fields(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}


@pytest.mark.django_db
def test_each_request_gets_its_own_row_with_relations_and_annotations(project, django_assert_num_queries):
    populate(project, items=3)
    items = list(project.items.order_by("pk"))
    ChecklistQuestion.objects.create(item=items[1], text="Is it right?", position=0)
    key = ("test_pairs_with_checklist",)
    for item in items + items:  # the second round runs the kept SQL only
        expected = _pairs_with_checklist(item.pk).get()
        with django_assert_num_queries(1):
            got = compiled.first(key, _pairs_with_checklist, item_id=item.pk)
        assert got is not None and _fields(got) == _fields(expected)
        assert got.has_checklist is (item == items[1])
        with django_assert_num_queries(0):  # loaded with it, as select_related does
            assert (got.item.prompt, got.response_a.text, got.response_b.text) == (
                expected.item.prompt, expected.response_a.text, expected.response_b.text)
        assert got._state.adding is False and got._state.db == "default"
    assert compiled.first(key, _pairs_with_checklist, item_id=-1) is None


@pytest.mark.django_db
def test_json_and_datetime_values_are_converted_as_the_orm_does(project):
    populate(project, items=2)
    rows = compiled.many(
        ("test_responses_since",),
        lambda project_id, since: Response.objects.filter(item__project_id=project_id, created_at__gte=since).order_by("pk"),
        project_id=project.pk, since=timezone.now() - timedelta(days=1),
    )
    expected = list(Response.objects.filter(item__project=project).order_by("pk"))
    assert [_fields(r) for r in rows] == [_fields(r) for r in expected]
    assert compiled.many(
        ("test_responses_since",),
        lambda project_id, since: Response.objects.filter(item__project_id=project_id, created_at__gte=since).order_by("pk"),
        project_id=project.pk, since=timezone.now() + timedelta(days=1),
    ) == []


@pytest.mark.django_db
def test_a_value_the_orm_inlines_is_not_kept_and_still_answers(project):
    populate(project, items=3)
    key = ("test_inlined_offset",)

    # A slice bound is written into the SQL text, not bound (and a negative sentinel is refused):
    # the shape is not kept and every call goes through the ORM.
    def build(offset: int):
        return Response.objects.filter(item__project=project).order_by("pk")[offset : offset + 1]

    expected = list(Response.objects.filter(item__project=project).order_by("pk"))
    assert [compiled.first(key, build, offset=n) for n in range(3)] == expected[:3]
    assert not isinstance(compiled._cache[(key, "postgresql")], compiled._Compiled)


@pytest.mark.django_db
def test_sessions_are_read_as_djangos_database_sessions():
    written = DjangoDbSessionStore()
    written["who"] = "annotator"
    written.create()
    assert SessionStore(written.session_key)["who"] == "annotator"
    mine = SessionStore()
    mine["study"] = 7
    mine.create()
    assert DjangoDbSessionStore(mine.session_key)["study"] == 7
    # Expired or unknown: an empty session with a fresh key, as Django's.
    written.set_expiry(-10)
    written.save()
    expired = SessionStore(written.session_key)
    assert expired.get("who") is None and expired.session_key != written.session_key
    unknown = SessionStore("x" * 32)
    assert dict(unknown.items()) == {} and unknown.session_key is None
