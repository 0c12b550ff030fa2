"""Query-parameter filtering for the API lists.

Each list declares its filters once; the same declaration filters the queryset, rejects a bad
value with a 400 naming the parameter, and documents the parameter in the OpenAPI schema. Written
by hand rather than with django-filter: a dozen parameters did not justify another dependency.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import ValidationError as ApiValidationError

from .bounds import BIGINT_MAX, SMALLINT_MAX, SMALLINT_MIN, text_problem

# Every parser raises ValueError on a value the database could not compare (past a column's
# width, a NUL character, a moment outside the calendar): the caller's 400 names the parameter.


def parse_id(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= BIGINT_MAX:
        raise ValueError
    return value


def parse_int(raw: str) -> int:
    """A rated value or a strength: both are smallint columns."""
    value = int(raw)
    if not SMALLINT_MIN <= value <= SMALLINT_MAX:
        raise ValueError
    return value


def parse_text(raw: str) -> str:
    if not raw or text_problem(raw):
        raise ValueError
    return raw


def parse_moment(raw: str) -> dt.datetime:
    """An ISO 8601 date-time, or a date meaning its midnight (UTC when no zone is given),
    returned in UTC: PostgreSQL refuses offsets past 15:59 that ISO 8601 allows."""
    moment = parse_datetime(raw)
    if moment is None:
        day = parse_date(raw)
        if day is None:
            raise ValueError
        moment = dt.datetime.combine(day, dt.time.min)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, dt.UTC)
    try:
        return moment.astimezone(dt.UTC)
    except OverflowError as exc:  # 0001-01-01T00:00+05:00 is before year 1 in UTC
        raise ValueError from exc


def choice(values: Iterable[str]) -> Callable[[str], str]:
    allowed = tuple(values)

    def parse(raw: str) -> str:
        if raw not in allowed:
            raise ValueError
        return raw

    parse.choices = allowed  # type: ignore[attr-defined]
    return parse


# Each parser's bounds, written into the schema so clients (and schemathesis) know them.
_OPENAPI_TYPES: dict[Callable, OpenApiTypes | dict] = {
    parse_id: {"type": "integer", "minimum": 1, "maximum": BIGINT_MAX},
    parse_int: {"type": "integer", "minimum": SMALLINT_MIN, "maximum": SMALLINT_MAX},
    parse_text: {"type": "string", "minLength": 1},
    parse_moment: OpenApiTypes.DATETIME,
}

_HINTS: dict[Callable, str] = {
    parse_id: f"a positive integer id up to {BIGINT_MAX}",
    parse_int: f"an integer from {SMALLINT_MIN} to {SMALLINT_MAX}",
    parse_text: "a non-empty string without NUL characters",
    parse_moment: "an ISO 8601 date or date-time",
}


@dataclass(frozen=True)
class Filter:
    """One query parameter: how to parse it and the condition it adds."""

    param: str
    parse: Callable[[str], object]
    # Takes what `parse` returned; Any because each filter pairs its own parse and condition.
    condition: Callable[[Any], Q]
    description: str
    # Filters that would reveal which model wrote a response are not offered to annotators.
    researcher_only: bool = False

    def hint(self) -> str:
        choices = getattr(self.parse, "choices", None)
        if choices is not None:
            return "one of " + ", ".join(choices)
        return _HINTS.get(self.parse, "a valid value")

    def openapi(self) -> OpenApiParameter:
        choices = getattr(self.parse, "choices", None)
        return OpenApiParameter(
            name=self.param,
            type=_OPENAPI_TYPES.get(self.parse, OpenApiTypes.STR),
            location=OpenApiParameter.QUERY,
            required=False,
            enum=list(choices) if choices is not None else None,
            description=self.description + (" (researchers and admins only)" if self.researcher_only else ""),
        )


def lookup(path: str) -> Callable[[object], Q]:
    return lambda value: Q(**{path: value})


def created_filters(prefix: str = "") -> list[Filter]:
    return [
        Filter("created_after", parse_moment, lookup(f"{prefix}created_at__gte"), "Created at or after."),
        Filter("created_before", parse_moment, lookup(f"{prefix}created_at__lt"), "Created before."),
    ]


def filter_queryset(
    queryset: QuerySet, params: Mapping[str, str], filters: Sequence[Filter], *, researcher: bool
) -> QuerySet:
    """Apply every filter present in params; a bad or forbidden value is a 400 naming it."""
    errors: dict[str, list[str]] = {}
    for spec in filters:
        raw = params.get(spec.param)
        if raw is None or raw == "":
            continue
        if spec.researcher_only and not researcher:
            errors[spec.param] = ["This filter is not available to annotators."]
            continue
        try:
            value = spec.parse(raw)
        except (TypeError, ValueError):
            errors[spec.param] = [f"Expected {spec.hint()}, got {raw[:80]!r}."]
            continue
        queryset = queryset.filter(spec.condition(value))
    if errors:
        raise ApiValidationError(errors)
    return queryset


def openapi_parameters(filters: Sequence[Filter]) -> list[OpenApiParameter]:
    return [spec.openapi() for spec in filters]
