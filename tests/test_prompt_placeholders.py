"""Prompt templates accept plain `{name}` placeholders only (issue 10, item 4): a format spec,
attribute or index access, a conversion or a positional field is refused with a message naming
it, through the service and the API, before anything is stored."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from judges.prompts import template_problems

RATING = "{prompt} {response} {attribute} "


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("{prompt.__class__}", "attribute or index access"),
        ("{prompt.__class__.__mro__}", "attribute or index access"),
        ("{prompt[0]}", "attribute or index access"),
        ("{response!r}", "conversion"),
        ("{response!s}", "conversion"),
        ("{prompt:>99999999999}", "format spec"),
        ("{prompt:{response}}", "format spec"),
        ("{}", "positional"),
        ("{0}", "positional"),
    ],
)
def test_only_plain_placeholders(extra, expected):
    problems = template_problems(protocol="rating", system="", user=RATING + extra)
    assert any(expected in message and field == "user" for field, message in problems), problems


def test_the_system_message_is_checked_too():
    problems = template_problems(protocol="rating", system="{prompt.upper}", user=RATING)
    assert [field for field, _ in problems] == ["system"]


def test_plain_placeholders_and_escaped_braces_are_fine():
    assert template_problems(protocol="rating", system="Answer in {{JSON}}.", user=RATING + "{anchors}") == []


@pytest.mark.django_db
def test_api_refuses_attribute_access_with_a_400_naming_the_field(researcher):
    from judges.services import judge_create

    judge = judge_create(name="j", model_ref="some/model", owner=researcher)  # its owner may edit it
    client = APIClient()
    client.force_authenticate(researcher)
    response = client.post(
        f"/api/judges/{judge.pk}/templates/",
        {"protocol": "rating", "system": "", "user": RATING + "{prompt.__class__.__init__.__globals__}"},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert "user" in response.json()
