"""What an absorbed report page reads from the database besides the new rows: the fingerprint
and the only-added check in one scan per table, the response styles counted only for new
responses, the human labels by a subquery, the filter form's raters by EXISTS, and fresh
planner statistics after a bulk import (session 17: each was a measured cost of the second view
at 1M annotations, bench/report_page.py)."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from annotate.models import Item, Pair, Preference, Rater, Response
from annotate.routing_services import human_verdicts
from reports.cache import annotations_fingerprint, fingerprint_since
from reports.selectors import response_styles


def _pairs(project, n: int, raters: list[Rater]) -> list[Pair]:
    pairs = []
    for i in range(n):
        item = Item.objects.create(project=project, external_id=f"i{i}", prompt=f"p{i}")
        ra = Response.objects.create(item=item, external_id="a", text="# Title\n- one\n- two" * (i + 1), model="alpha")
        rb = Response.objects.create(item=item, external_id="b", text="**bold** text", model="beta")
        pair = Pair.objects.create(item=item, response_a=ra, response_b=rb)
        for k, r in enumerate(raters):
            Preference.objects.create(rater=r, rater_kind=r.kind, pair=pair, strength=(i + k) % 7 - 3, shown_order="ab")
        pairs.append(pair)
    return pairs


@pytest.fixture
def humans(db) -> list[Rater]:
    return [Rater.objects.create(kind="human", name=f"h{k}") for k in range(3)]


def test_fingerprint_since_tells_additions_from_edits_and_deletions(project, humans, django_assert_num_queries):
    pairs = _pairs(project, 4, humans)
    seen = annotations_fingerprint(project)[:2]
    fingerprint, unchanged = fingerprint_since(project, seen)
    assert fingerprint == annotations_fingerprint(project) and unchanged
    assert fingerprint_since(project, None) == (annotations_fingerprint(project), False)  # nothing kept

    late = Rater.objects.create(kind="judge", name="late")
    Preference.objects.create(rater=late, rater_kind="judge", pair=pairs[0], strength=2, shown_order="ba")
    fingerprint, unchanged = fingerprint_since(project, seen)
    assert fingerprint != seen and unchanged  # a row above the seen top id: added only

    # The check rides on the fingerprint's own scans: no query more than the fingerprint alone.
    with django_assert_num_queries(_queries(lambda: annotations_fingerprint(project))):
        fingerprint_since(project, seen)

    edited = Preference.objects.filter(pair=pairs[1]).first()
    edited.strength = -edited.strength or 1
    edited.save()
    assert not fingerprint_since(project, seen)[1]  # an edit below the top id moves its updated_at
    edited.delete()
    seen_after_edit = annotations_fingerprint(project)[:2]
    assert fingerprint_since(project, seen_after_edit)[1]
    Preference.objects.filter(pair=pairs[2]).first().delete()
    assert not fingerprint_since(project, seen_after_edit)[1]  # a deletion lowers the count


def _queries(fn) -> int:
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        fn()
    return len(captured)


def test_response_styles_count_only_the_responses_added_since(project, humans):
    pairs = _pairs(project, 3, humans)
    known = response_styles(project)
    assert len(known) == 6
    assert response_styles(project, known) is known  # nothing new: the same frame, for the memo
    item = Item.objects.create(project=project, external_id="late", prompt="p")
    Response.objects.create(item=item, external_id="a", text="## Late\n1. first", model="alpha")
    extended = response_styles(project, known)
    assert extended.equals(response_styles(project))  # as counting every text again
    # An edit to an old text is the rebuild's (reports.cache: item and response edits wait for it).
    Response.objects.filter(pk=pairs[0].response_a_id).update(text="plain")
    assert response_styles(project, known).iloc[:6].equals(known)


def test_human_verdicts_by_subquery_are_those_by_list(project, humans):
    pairs = _pairs(project, 5, humans)
    judge = Rater.objects.create(kind="judge", name="j")
    Preference.objects.create(rater=judge, rater_kind="judge", pair=pairs[0], strength=3, shown_order="ab")
    tasks = Pair.objects.filter(item__project=project).values_list("pk", flat=True)
    by_list = human_verdicts(list(tasks))
    assert human_verdicts(tasks) == by_list
    assert sorted(by_list) == sorted(p.pk for p in pairs) and all(len(v) == 3 for v in by_list.values())


def test_the_filter_forms_raters_are_those_with_preferences_in_the_project(project, humans):
    from annotate.services import project_create
    from reports.forms import ReportFilterForm

    _pairs(project, 2, humans[:2])
    other = project_create(name="Other project")
    _pairs(other, 1, humans[2:])
    choices = [value for value, _ in ReportFilterForm(None, project=project).fields["rater_group"].choices]
    assert choices == ["", "humans", "judges", humans[0].label, humans[1].label]


def _reltuples(table: str) -> float:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = %s", [table])
        return float(cursor.fetchone()[0])


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner statistics")
def test_a_bulk_import_refreshes_the_planner_statistics(db, tmp_path):
    from annotate.importers import import_files
    from annotate.importers.writer import ANALYZE_MIN_ROWS

    def write(name: str, items: int) -> object:
        path = tmp_path / f"{name}.jsonl"
        with path.open("w") as out:
            for i in range(items):
                out.write(json.dumps({
                    "id": f"{name}{i}", "prompt": "q",
                    "responses": [{"id": "a", "model": "m1", "text": "A"}, {"id": "b", "model": "m2", "text": "B"}],
                    "preferences": [{"rater": f"human:h{k}", "pair": ["a", "b"], "strength": (i + k) % 7 - 3}
                                    for k in range(3)],
                }) + "\n")  # fmt: skip
        return path

    before = _reltuples("annotate_preference")
    items = ANALYZE_MIN_ROWS // 3 + 1
    import_files(project_name="small", fmt="jsonl", paths=[write("s", 10)])
    assert _reltuples("annotate_preference") == before  # 30 rows: left to autovacuum
    import_files(project_name="bulk", fmt="jsonl", paths=[write("b", items)])
    # The planner now knows the rows are there (a fresh table reads as empty: -1 or 0).
    assert _reltuples("annotate_preference") >= 3 * items
